import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from catalog.models import Artist, Track, TrackTag
from feedback.models import Interaction
from playlists.models import Playlist, PlaylistEntry

SMALL = ["--users", "40", "--artists", "20", "--tracks", "200", "--events", "3000",
         "--playlists", "15"]  # fmt: skip


@pytest.mark.django_db
def test_seed_demo_fills_an_empty_database():
    call_command("seed_demo", *SMALL)
    assert Artist.objects.count() == 20
    assert Track.objects.count() == 200
    assert Interaction.objects.count() == 3000
    assert Playlist.objects.count() == 15
    assert TrackTag.objects.exists()
    assert get_user_model().objects.get(username="admin").is_staff
    assert get_user_model().objects.get(username="demo").check_password("tunedin-demo")
    # popularity was computed from the interactions
    assert Track.objects.filter(popularity__gt=0).count() > 100
    interaction = Interaction.objects.first()
    assert interaction.hour == interaction.occurred_at.hour
    assert interaction.day_of_week == interaction.occurred_at.weekday()
    for playlist in Playlist.objects.all()[:5]:
        positions = list(
            PlaylistEntry.objects.filter(playlist=playlist).values_list("position", flat=True)
        )
        assert sorted(positions) == list(range(len(positions)))


@pytest.mark.django_db
def test_seeding_leaves_planner_statistics_that_describe_the_loaded_tables():
    call_command("seed_demo", *SMALL)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)",
            [[Interaction._meta.db_table, Track._meta.db_table]],
        )
        estimates = dict(cursor.fetchall())
    # ANALYZE ran after the COPY: the planner knows the tables are not empty (reltuples is
    # -1 or 0 for a table never analysed), which keeps the next queries off nested loops.
    assert estimates[Interaction._meta.db_table] == pytest.approx(3000, rel=0.1)
    assert estimates[Track._meta.db_table] == pytest.approx(200, rel=0.1)


@pytest.mark.django_db
def test_seed_demo_refuses_a_filled_database_and_if_empty_skips_it():
    call_command("seed_demo", *SMALL)
    with pytest.raises(CommandError, match="not empty"):
        call_command("seed_demo", *SMALL)
    call_command("seed_demo", *SMALL, "--if-empty")
    assert Track.objects.count() == 200


@pytest.mark.django_db
def test_seed_demo_rejects_nonsense_sizes():
    with pytest.raises(CommandError, match="--tracks"):
        call_command("seed_demo", "--artists", "100", "--tracks", "10")


@pytest.mark.django_db
def test_seed_demo_with_fewer_artists_than_genres_is_refused_before_generating():
    with pytest.raises(CommandError, match="--artists must be at least 16"):
        call_command("seed_demo", "--artists", "6", "--tracks", "40")
    assert not Track.objects.exists()
