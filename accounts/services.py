"""Writes on accounts: sign-up and the first-visit onboarding."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from catalog.models import Artist, Tag

User = get_user_model()


def user_sign_up(*, username: str, password: str, email: str = "") -> User:
    return User.objects.create_user(username=username, password=password, email=email)


@transaction.atomic
def user_onboard(*, user: User, tags: Iterable[Tag] = (), artists: Iterable[Artist] = ()) -> User:
    """Store the favourite tags and artists that seed cold-start recommendations (replacing any
    earlier choice) and mark onboarding done; with no tags and no artists it only skips it."""
    user.favourite_tags.set(tags)
    user.favourite_artists.set(artists)
    user.onboarded_at = timezone.now()
    user.save(update_fields=["onboarded_at"])
    return user
