"""Sign-up and onboarding (log-in, log-out and password change are Django's auth views)."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.selectors import user_favourites
from accounts.services import user_onboard, user_sign_up
from catalog.selectors import artists_by_popularity, tags_by_track_count
from web.forms import OnboardingForm, SignUpForm

N_TAG_CHOICES = 40
N_ARTIST_CHOICES = 24


@require_http_methods(["GET", "POST"])
def sign_up(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        user = user_sign_up(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data.get("email") or "",
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("onboarding")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def onboarding(request):
    user = request.user
    favourites = user_favourites(user=user)
    form = OnboardingForm(
        request.POST if request.method == "POST" else None,
        tag_choices=tags_by_track_count(limit=N_TAG_CHOICES),
        artist_choices=artists_by_popularity(limit=N_ARTIST_CHOICES),
        initial={"tags": favourites.tag_ids, "artists": favourites.artist_ids},
    )
    if request.method == "POST":
        if "skip" in request.POST:
            user_onboard(user=user)
            messages.info(request, "No favourites yet: Discover starts with popular tracks.")
            return redirect("home")
        if form.is_valid():
            user_onboard(
                user=user, tags=form.cleaned_data["tags"], artists=form.cleaned_data["artists"]
            )
            messages.success(request, "Thanks! Discover now starts from your favourites.")
            return redirect("home")
    return render(request, "accounts/onboarding.html", {"form": form})
