"""The site's catalog pages: Discover (home), track, artist and tag pages, search, feedback."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.forms import Form
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from catalog.models import Artist, Tag, Track
from catalog.selectors import (
    artist_detail,
    artist_top_tracks,
    artist_track_count,
    search_artists,
    search_tracks,
    tag_top_artists,
    tag_tracks,
    track_detail,
)
from feedback.models import Interaction
from feedback.selectors import do_not_recommend_marks_on, track_feedback_counts
from playlists.selectors import playlists_generated_for, playlists_owned_by
from web import site_recommendations
from web.forms import FeedbackForm, SearchForm, ShownTracksForm

DISCOVER_PAGE_SIZE = 12
POPULAR_PAGE_SIZE = 30
LIST_PAGE_SIZE = 25
N_SIMILAR = 10
# Discover excludes what is already on the page; past this many there is nothing more to load.
MAX_SHOWN = 180


class ShownFeedbackForm(FeedbackForm):
    """A like or a skip from a card, with the request id of the list that showed it."""

    request_id = forms.UUIDField(
        required=False,
        error_messages={"invalid": "The card's request_id is not a request id (a UUID)."},
    )


def own_playlists(request) -> list:
    """The user's playlists for the add-to-playlist menus (one query per page, not per card)."""
    if not request.user.is_authenticated:
        return []
    return list(playlists_owned_by(user=request.user).only("id", "name"))


def form_errors(form: Form) -> HttpResponse:
    """A 400 saying what is wrong, as the status line htmx swaps in for a card or the button."""
    reasons = " ".join(error for errors in form.errors.values() for error in errors)
    return HttpResponseBadRequest(
        format_html('<p class="card-status error" role="alert">{}</p>', reasons)
    )


@require_GET
def home(request):
    if not request.user.is_authenticated:
        popular = site_recommendations.popular_tracks(n=POPULAR_PAGE_SIZE)
        return render(request, "catalog/home_public.html", {"items": popular.items})
    if request.user.onboarded_at is None:
        return redirect("onboarding")
    recommendations = site_recommendations.discover_tracks(user=request.user, n=DISCOVER_PAGE_SIZE)
    return render(
        request,
        "catalog/discover.html",
        {
            "recommendations": recommendations,
            "request_id": recommendations.request_id,
            "playlists": own_playlists(request),
            "generated": playlists_generated_for(user=request.user),
            "has_more": len(recommendations.items) == DISCOVER_PAGE_SIZE,
        },
    )


@login_required
@require_GET
def discover_more(request):
    """The next cards of Discover (htmx appends them), skipping those already shown."""
    form = ShownTracksForm(request.GET)
    if not form.is_valid():
        return form_errors(form)
    shown = form.cleaned_data["shown"]
    items, request_id = [], None
    if len(shown) < MAX_SHOWN:
        more = site_recommendations.discover_tracks(
            user=request.user, n=DISCOVER_PAGE_SIZE, exclude_ids=shown
        )
        items, request_id = more.items, more.request_id
    return render(
        request,
        "catalog/_discover_more.html",
        {
            "items": items,
            "request_id": request_id,
            "playlists": own_playlists(request),
            "has_more": len(items) == DISCOVER_PAGE_SIZE,
        },
    )


@login_required
@require_POST
def track_feedback(request, track_id: int):
    """Like or skip a track, linked to the list that showed it (the card's request_id). From a
    Discover card (htmx) the answer is the card to put in its place: the next recommendation
    not already on the page."""
    track = get_object_or_404(Track, pk=track_id)
    form = ShownFeedbackForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    kind = form.cleaned_data["kind"]
    site_recommendations.feedback_record(
        user=request.user, track=track, kind=kind, request_id=form.cleaned_data["request_id"]
    )
    verb = "Liked" if kind == Interaction.Kind.LIKE else "Skipped"
    done = f"{verb} “{track.title}”."
    if not request.htmx:
        messages.success(request, done)
        next_url = request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            return redirect(next_url)
        return redirect("home")
    shown = form.cleaned_data["shown"] | {track.pk}
    replacement = site_recommendations.discover_tracks(user=request.user, n=1, exclude_ids=shown)
    return render(
        request,
        "catalog/_track_card.html",
        {
            "item": replacement.items[0] if replacement.items else None,
            "request_id": replacement.request_id,
            "replaced": track,
            "status": done,
            "playlists": own_playlists(request),
        },
    )


@require_GET
def track_page(request, track_id: int):
    try:
        track = track_detail(track_id=track_id)
    except Track.DoesNotExist as missing:
        raise Http404("No such track.") from missing
    return render(
        request,
        "catalog/track_detail.html",
        {
            "track": track,
            "artist": track.artist,
            "counts": track_feedback_counts(track=track),
            "similar": site_recommendations.similar_tracks(
                track=track, n=N_SIMILAR, user=request.user
            ).items,
            "playlists": own_playlists(request),
            "marks": do_not_recommend_marks_on(user=request.user, track=track),
        },
    )


@require_GET
def artist_page(request, artist_id: int):
    try:
        artist = artist_detail(artist_id=artist_id)
    except Artist.DoesNotExist as missing:
        raise Http404("No such artist.") from missing
    return render(
        request,
        "catalog/artist_detail.html",
        {
            "artist": artist,
            "top_tracks": artist_top_tracks(artist=artist, limit=20),
            "n_tracks": artist_track_count(artist=artist),
            "similar": site_recommendations.similar_artists(artist=artist, n=N_SIMILAR),
            "playlists": own_playlists(request),
            "marks": do_not_recommend_marks_on(user=request.user, artist_id=artist.pk),
        },
    )


@require_GET
def tag_page(request, tag_id: int):
    tag = get_object_or_404(Tag, pk=tag_id)
    page = Paginator(tag_tracks(tag=tag), LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "catalog/tag_detail.html",
        {
            "tag": tag,
            "page": page,
            "artists": tag_top_artists(tag=tag),
            "playlists": own_playlists(request),
        },
    )


@require_GET
def search(request):
    form = SearchForm(request.GET)
    text, kind = "", "tracks"
    if form.is_valid():
        text = form.cleaned_data["q"].strip()
        kind = form.cleaned_data["kind"] or "tracks"
    context = {"form": form, "text": text, "kind": kind, "playlists": own_playlists(request)}
    if text:
        tracks, artists = search_tracks(text=text), search_artists(text=text)
        paginator = Paginator(tracks if kind == "tracks" else artists, LIST_PAGE_SIZE)
        context["page"] = paginator.get_page(request.GET.get("page"))
        context["n_tracks"] = paginator.count if kind == "tracks" else tracks.count()
        context["n_artists"] = paginator.count if kind == "artists" else artists.count()
        if kind == "tracks":
            context["artist_preview"] = list(artists[:6])
    return render(request, "catalog/search.html", context)
