"""Listener control on the site: "don't recommend" a track or an artist from a Discover card, a
track page or an artist page (htmx swaps in the answer), and the list of those marks."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from catalog.models import Artist, Track
from feedback.selectors import do_not_recommend_marks, do_not_recommend_marks_on
from feedback.services import DoNotRecommendError, do_not_recommend_mark, do_not_recommend_unmark
from web import site_recommendations
from web.forms import DoNotRecommendForm, RecommendAgainForm
from web.views.catalog import form_errors, own_playlists


def _target_name(*, track: Track | None, artist: Artist | None) -> str:
    return f"“{track.title}”" if track is not None else artist.name


def _form_targets(form: RecommendAgainForm) -> tuple[Track | None, Artist | None] | None:
    """(track, artist) named by a valid form, one of them None; None when the form is not
    valid or names nothing that exists (the form then holds the reason)."""
    if not form.is_valid():
        return None
    cleaned = form.cleaned_data
    if cleaned.get("track"):
        track = Track.objects.select_related("artist").filter(pk=cleaned["track"]).first()
        if track is not None:
            return track, None
    elif artist := Artist.objects.filter(pk=cleaned["artist"]).first():
        return None, artist
    form.add_error(None, "That track or artist does not exist.")
    return None


def _back(request, done: str):
    """Without htmx: the page the form was on (or Discover), with what was done."""
    messages.success(request, done)
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("home")


def _page_buttons(request, cleaned: dict, *, status: str):
    """The "don't recommend" block of the track or artist page the form came from, drawn
    again with the marks now in force."""
    track = None
    if cleaned.get("page_track"):
        track = Track.objects.select_related("artist").filter(pk=cleaned["page_track"]).first()
    artist = track.artist if track is not None else None
    if artist is None and cleaned.get("page_artist"):
        artist = Artist.objects.filter(pk=cleaned["page_artist"]).first()
    if artist is None:  # not from a page: only say what was done
        return HttpResponse(format_html('<p class="card-status" role="status">{}</p>', status))
    marks = do_not_recommend_marks_on(user=request.user, track=track, artist_id=artist.pk)
    context = {"track": track, "artist": artist, "marks": marks, "status": status}
    return render(request, "includes/_not_for_me.html", context)


def _card_replacements(request, *, cleaned: dict, track, artist, status: str):
    """A Discover card's answer: the next recommendation in its place, and in the place of
    every other card on the page by the artist just marked (out-of-band swaps)."""
    shown = cleaned["shown"] | {cleaned["card"]}
    if track is not None:
        gone = {track.pk}
        others = []
    else:
        gone = set(Track.objects.filter(artist=artist).values_list("pk", flat=True))
        others = sorted((shown & gone) - {cleaned["card"]})
    shown_list = site_recommendations.discover_tracks(
        user=request.user, n=1 + len(others), exclude_ids=shown | gone
    )
    replacements = shown_list.items
    cards = [{"item": replacements[0] if replacements else None, "status": status}]
    for position, card_id in enumerate(others, start=1):
        item = replacements[position] if position < len(replacements) else None
        cards.append({"item": item, "oob_target": card_id})
    context = {
        "cards": cards,
        "playlists": own_playlists(request),
        "request_id": shown_list.request_id,  # the new cards' like/skip forms send it back
    }
    return render(request, "catalog/_replaced_cards.html", context)


@login_required
@require_POST
def do_not_recommend(request):
    """Mark a track or an artist "don't recommend", optionally until a day."""
    form = DoNotRecommendForm(request.POST)
    if (targets := _form_targets(form)) is None:
        return form_errors(form)
    track, artist = targets
    cleaned = form.cleaned_data
    try:
        mark, _ = do_not_recommend_mark(
            user=request.user, track_id=cleaned.get("track"), artist_id=cleaned.get("artist"),
            until=form.until_moment(),
        )  # fmt: skip
    except DoNotRecommendError as error:  # deleted meanwhile
        form.add_error(None, str(error))
        return form_errors(form)
    until = f" until {date_format(timezone.localtime(mark.until))}" if mark.until else ""
    done = f"We won't recommend {_target_name(track=track, artist=artist)} to you{until}."
    if not request.htmx:
        return _back(request, done)
    if cleaned.get("card"):
        return _card_replacements(request, cleaned=cleaned, track=track, artist=artist, status=done)
    return _page_buttons(request, cleaned, status=done)


@login_required
@require_POST
def recommend_again(request):
    """Take a track or an artist off the "don't recommend" list."""
    form = RecommendAgainForm(request.POST)
    if (targets := _form_targets(form)) is None:
        return form_errors(form)
    track, artist = targets
    cleaned = form.cleaned_data
    do_not_recommend_unmark(
        user=request.user, track_id=cleaned.get("track"), artist_id=cleaned.get("artist")
    )
    done = f"{_target_name(track=track, artist=artist)} can be recommended to you again."
    if not request.htmx:
        return _back(request, done)
    return _page_buttons(request, cleaned, status=done)


@login_required
@require_GET
def not_recommended(request):
    """The user's "don't recommend" marks, with a button to lift each."""
    now = timezone.now()
    marks = [
        {"mark": mark, "in_force": mark.applies_at(now)}
        for mark in do_not_recommend_marks(user=request.user)
    ]
    return render(request, "listener/not_recommended.html", {"marks": marks})
