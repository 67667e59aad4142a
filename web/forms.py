"""The site's forms: sign-up and onboarding, search and feedback, playlists."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone

from catalog.models import Artist, Tag
from feedback.models import Interaction
from playlists.services import NAME_MAX_LENGTH

MAX_FAVOURITES = 10
# Discover sends back the ids of the cards on its page; a page never holds this many.
MAX_SHOWN_TRACKS = 500
MAX_TRACK_ID = 2**63 - 1  # track ids are bigints


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional; only used to reset a forgotten password."
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


class OnboardingForm(forms.Form):
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Tags you like",
    )
    artists = forms.ModelMultipleChoiceField(
        queryset=Artist.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Artists you like",
    )

    def __init__(self, *args, tag_choices, artist_choices, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered choices are a short list; validation accepts any existing tag or artist.
        self.fields["tags"].queryset = Tag.objects.all()
        self.fields["artists"].queryset = Artist.objects.all()
        self.fields["tags"].choices = [(tag.pk, tag.name) for tag in tag_choices]
        self.fields["artists"].choices = [(artist.pk, artist.name) for artist in artist_choices]

    def clean(self):
        cleaned = super().clean()
        tags, artists = cleaned.get("tags") or [], cleaned.get("artists") or []
        if not tags and not artists:
            raise forms.ValidationError(
                "Pick at least one tag or artist, or choose “Skip for now”."
            )
        if len(tags) > MAX_FAVOURITES or len(artists) > MAX_FAVOURITES:
            raise forms.ValidationError(
                f"Pick at most {MAX_FAVOURITES} tags and {MAX_FAVOURITES} artists."
            )
        return cleaned


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, label="Search")
    kind = forms.ChoiceField(choices=[("tracks", "Tracks"), ("artists", "Artists")], required=False)


class TrackIdsField(forms.Field):
    """Track ids sent as repeated values (`shown=3&shown=7`), cleaned to a set of ints: each a
    positive ASCII integer that fits a bigint, at most `max_count` of them."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "invalid": "“%(value)s” is not a track id.",
        "too_many": "Send at most %(max_count)d track ids.",
    }

    def __init__(self, *, max_count: int, **kwargs):
        self.max_count = max_count
        super().__init__(**kwargs)

    def to_python(self, value) -> set[int]:
        values = value or []
        if len(values) > self.max_count:
            raise forms.ValidationError(
                self.error_messages["too_many"], "too_many", {"max_count": self.max_count}
            )
        for raw in values:
            # isdigit() alone accepts "²" and "٣"; 19 digits at most keep int() cheap.
            if not (
                raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) <= MAX_TRACK_ID
            ):
                raise forms.ValidationError(
                    self.error_messages["invalid"], "invalid", {"value": raw[:20]}
                )
        return {int(raw) for raw in values}


class ShownTracksForm(forms.Form):
    """The tracks already on the Discover page, so that what comes next skips them."""

    shown = TrackIdsField(max_count=MAX_SHOWN_TRACKS, required=False)


class FeedbackForm(ShownTracksForm):
    kind = forms.ChoiceField(
        choices=[(Interaction.Kind.LIKE, "Like"), (Interaction.Kind.SKIP, "Skip")]
    )


class PlaylistForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        label="Name",
        error_messages={"required": "Give the playlist a name."},
    )
    is_public = forms.BooleanField(
        required=False,
        label="Public",
        help_text="Anyone with the link can view a public playlist; only you can change it.",
    )


class AddTrackForm(forms.Form):
    """ "Add to playlist" on a track: an existing playlist, or a new one by name."""

    track = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    playlist = forms.IntegerField(min_value=1, required=False, label="Playlist")
    new_name = forms.CharField(
        max_length=NAME_MAX_LENGTH, required=False, label="New playlist name"
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("playlist") and not (cleaned.get("new_name") or "").strip():
            raise forms.ValidationError("Choose a playlist or name a new one.")
        return cleaned


class EntryMoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", "Up"), ("down", "Down")])


class PlaylistTrackForm(forms.Form):
    track = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class RecommendAgainForm(ShownTracksForm):
    """A track or an artist (exactly one) to take off the "don't recommend" list, sent from a
    Discover card (`card`: its track) or from a track or artist page (`page_track` /
    `page_artist`: what the page shows, so that its buttons can be drawn again)."""

    track = forms.IntegerField(min_value=1, max_value=MAX_TRACK_ID, required=False)
    artist = forms.IntegerField(min_value=1, max_value=MAX_TRACK_ID, required=False)
    card = forms.IntegerField(min_value=1, max_value=MAX_TRACK_ID, required=False)
    page_track = forms.IntegerField(min_value=1, max_value=MAX_TRACK_ID, required=False)
    page_artist = forms.IntegerField(min_value=1, max_value=MAX_TRACK_ID, required=False)

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("track")) == bool(cleaned.get("artist")):
            raise forms.ValidationError("Choose a track or an artist.")
        return cleaned


class DoNotRecommendForm(RecommendAgainForm):
    """ "Don't recommend" a track or an artist, optionally until a day (the mark lapses at the
    start of it, in the site's time zone)."""

    until = forms.DateField(
        required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for good.",
    )  # fmt: skip

    def clean_until(self):
        until = self.cleaned_data.get("until")
        if until is not None and until <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today, or leave it empty.")
        return until

    def until_moment(self):
        """The mark's `until`: the start of the chosen day, None for good."""
        until = self.cleaned_data.get("until")
        if until is None:
            return None
        return timezone.make_aware(datetime.combine(until, time.min))
