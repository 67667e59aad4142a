"""Playlist pages. Owners edit (htmx swaps the entry list in place); a public playlist is
readable by anyone with its link; someone else's private playlist is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from playlists.models import Playlist
from playlists.selectors import (
    playlist_entries,
    playlist_for_reading,
    playlist_for_writing,
    playlists_generated_for,
    playlists_owned_by,
)
from playlists.services import (
    playlist_add_tracks,
    playlist_create,
    playlist_create_with_tracks,
    playlist_delete,
    playlist_move_entry,
    playlist_remove_entry,
    playlist_rename,
    playlist_save_copy,
    playlist_set_visibility,
)
from web import site_recommendations
from web.forms import AddTrackForm, EntryMoveForm, PlaylistForm, PlaylistTrackForm

N_SUGGESTIONS = 10


def _readable(request, playlist_id: int) -> Playlist:
    try:
        return playlist_for_reading(playlist_id=playlist_id, user=request.user)
    except Playlist.DoesNotExist as missing:
        raise Http404("No such playlist.") from missing


def _writable(request, playlist_id: int) -> Playlist:
    try:
        return playlist_for_writing(playlist_id=playlist_id, user=request.user)
    except Playlist.DoesNotExist as missing:
        raise Http404("No such playlist.") from missing


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _safe_next(request, fallback: str) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return next_url
    return fallback


def _render_entries(request, playlist: Playlist, *, status: str = "", code: int = 200, **extra):
    return render(
        request,
        "playlists/_entries.html",
        {
            "playlist": playlist,
            "entries": playlist_entries(playlist=playlist),
            "is_owner": True,
            "status": status,
            "error": code >= 400,
            **extra,
        },
        status=code,
    )


@login_required
@require_http_methods(["GET", "POST"])
def playlist_list(request):
    form = PlaylistForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            playlist = playlist_create(owner=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Created “{playlist.name}”. Add tracks from any page.")
            return redirect(playlist)
    return render(
        request,
        "playlists/list.html",
        {
            "form": form,
            "playlists": playlists_owned_by(user=request.user),
            "generated": playlists_generated_for(user=request.user),
        },
        status=400 if form.errors else 200,
    )


@require_GET
def playlist_detail(request, playlist_id: int):
    playlist = _readable(request, playlist_id)
    owns = playlist.owner_id == request.user.pk
    is_owner = owns and not playlist.is_generated  # a generated playlist is read-only
    entries = list(playlist_entries(playlist=playlist))
    # A generated playlist opened by its listener is a list shown to them (impressions).
    site_recommendations.generated_playlist_shown(
        playlist=playlist, user=request.user, track_ids=[entry.track_id for entry in entries]
    )
    context = {
        "playlist": playlist,
        "entries": entries,
        "is_owner": is_owner,
        "owns": owns,
        "share_url": request.build_absolute_uri(playlist.get_absolute_url()),
        "settings_form": PlaylistForm(
            initial={"name": playlist.name, "is_public": playlist.is_public}
        ),
    }
    if is_owner and request.GET.get("continue"):
        context["suggestions"] = site_recommendations.playlist_suggestions(
            playlist=playlist, k=N_SUGGESTIONS, user=request.user
        )
    return render(request, "playlists/detail.html", context)


@login_required
@require_POST
def playlist_settings(request, playlist_id: int):
    playlist = _writable(request, playlist_id)
    form = PlaylistForm(request.POST)
    if form.is_valid():
        try:
            playlist_rename(playlist=playlist, name=form.cleaned_data["name"])
        except ValidationError as error:
            form.add_error("name", error.message_dict.get("name"))
        else:
            playlist_set_visibility(playlist=playlist, is_public=form.cleaned_data["is_public"])
            messages.success(request, "Playlist saved.")
            return redirect(playlist)
    return render(
        request,
        "playlists/detail.html",
        {
            "playlist": playlist,
            "entries": playlist_entries(playlist=playlist),
            "is_owner": True,
            "owns": True,
            "settings_form": form,
        },
        status=400,
    )


@login_required
@require_http_methods(["GET", "POST"])
def playlist_delete_view(request, playlist_id: int):
    playlist = _writable(request, playlist_id)
    if request.method == "POST":
        name = playlist.name
        playlist_delete(playlist=playlist)
        messages.success(request, f"Deleted “{name}”.")
        return redirect("playlists:list")
    return render(request, "playlists/confirm_delete.html", {"playlist": playlist})


def _add_track_from_form(*, user, form: AddTrackForm) -> Playlist:
    """Validate the "Add to playlist" menu and add the track; ValidationError with the reason."""
    if not form.is_valid():
        raise ValidationError([e for errors in form.errors.values() for e in errors])
    track_ids = [form.cleaned_data["track"]]
    if form.cleaned_data["new_name"].strip():  # typing a name asks for a new playlist
        return playlist_create_with_tracks(
            owner=user, name=form.cleaned_data["new_name"], track_ids=track_ids
        )
    try:
        playlist = playlist_for_writing(playlist_id=form.cleaned_data["playlist"], user=user)
    except (Playlist.DoesNotExist, PermissionDenied) as missing:
        raise ValidationError("That playlist does not exist.") from missing
    return playlist_add_tracks(playlist=playlist, track_ids=track_ids)


@login_required
@require_POST
def add_to_playlist(request):
    """The "Add to playlist" menu on a track: into one of your playlists or a new one."""
    try:
        playlist = _add_track_from_form(user=request.user, form=AddTrackForm(request.POST))
    except ValidationError as error:
        if request.htmx:
            context = {"status": _error_text(error), "playlist": None}
            return render(request, "playlists/_add_status.html", context, status=400)
        messages.error(request, _error_text(error))
    else:
        if request.htmx:
            context = {"status": "", "playlist": playlist}
            return render(request, "playlists/_add_status.html", context)
        messages.success(request, f"Added to “{playlist.name}”.")
    return redirect(_safe_next(request, fallback="home"))


@login_required
@require_POST
def playlist_track_add(request, playlist_id: int):
    """Add one suggested track to this playlist; htmx swaps in the new entry list."""
    playlist = _writable(request, playlist_id)
    form = PlaylistTrackForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose a track to add.")
        playlist_add_tracks(playlist=playlist, track_ids=[form.cleaned_data["track"]])
    except ValidationError as error:
        if request.htmx:
            return _render_entries(request, playlist, status=_error_text(error), code=400)
        messages.error(request, _error_text(error))
        return redirect(playlist)
    if request.htmx:
        return _render_entries(request, playlist, added=form.cleaned_data["track"])
    messages.success(request, "Track added.")
    return redirect(playlist)


@login_required
@require_POST
def playlist_entry_remove(request, playlist_id: int, position: int):
    playlist = _writable(request, playlist_id)
    try:
        playlist_remove_entry(playlist=playlist, position=position)
    except ValidationError as error:
        status, code = _error_text(error), 400
    else:
        status, code = "Track removed.", 200
    if request.htmx:
        return _render_entries(request, playlist, status=status, code=code)
    (messages.success if code == 200 else messages.error)(request, status)
    return redirect(playlist)


@login_required
@require_POST
def playlist_entry_move(request, playlist_id: int, position: int):
    playlist = _writable(request, playlist_id)
    form = EntryMoveForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose to move the track up or down.")
        direction = form.cleaned_data["direction"]
        to_position = position - 1 if direction == "up" else position + 1
        playlist_move_entry(playlist=playlist, from_position=position, to_position=to_position)
    except ValidationError as error:
        status, code, focus = _error_text(error), 400, {}
    else:
        status, code = "", 200
        focus = {"focus_direction": direction, "focus_position": to_position}
    if request.htmx:
        return _render_entries(request, playlist, status=status, code=code, **focus)
    if code != 200:
        messages.error(request, status)
    return redirect(playlist)


@login_required
@require_GET
def playlist_continue(request, playlist_id: int):
    """Suggestions to continue the playlist (htmx fills them in under the entries)."""
    playlist = _writable(request, playlist_id)
    if not request.htmx:
        return redirect(f"{playlist.get_absolute_url()}?continue=1#continuation")
    suggestions = site_recommendations.playlist_suggestions(
        playlist=playlist, k=N_SUGGESTIONS, user=request.user
    )
    return render(
        request,
        "playlists/_suggestions.html",
        {"playlist": playlist, "suggestions": suggestions},
    )


@login_required
@require_POST
def playlist_save(request, playlist_id: int):
    """Save a playlist you can read (a generated one, someone's public one) as your own."""
    playlist = _readable(request, playlist_id)
    copy = playlist_save_copy(playlist=playlist, owner=request.user)
    messages.success(request, f"Saved as “{copy.name}”: yours to change.")
    return redirect(copy)
