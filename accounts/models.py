from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A listener. Favourite tags and artists seed cold-start recommendations."""

    onboarded_at = models.DateTimeField(null=True, blank=True)
    favourite_tags = models.ManyToManyField("catalog.Tag", blank=True, related_name="fans")
    favourite_artists = models.ManyToManyField("catalog.Artist", blank=True, related_name="fans")
