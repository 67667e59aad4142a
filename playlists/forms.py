from django import forms

from playlists.services import NAME_MAX_LENGTH


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
