from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from catalog.models import Artist, Tag

MAX_FAVOURITES = 10


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
