import factory
from django.contrib.auth import get_user_model

from catalog.models import Artist, Tag, Track


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"listener{n}")
    # Hashed before the insert, so the stored user can log in (and force_login sessions hold).
    password = factory.django.Password("correct-horse-battery")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag {n}")


class ArtistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Artist

    name = factory.Sequence(lambda n: f"Artist {n}")


class TrackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Track

    title = factory.Sequence(lambda n: f"Track {n}")
    artist = factory.SubFactory(ArtistFactory)
    duration_ms = 200_000
