"""Migration 0005 folds the per-track impression rows written before it into one row per
served list, and keeps the feedback linked to them."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("feedback", "0004_impression_schedules")]
AFTER = [("feedback", "0005_impression_lists")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_per_track_rows_become_one_list_each_and_their_feedback_follows():
    old = migrate(BEFORE)
    try:
        User = old.get_model(*settings.AUTH_USER_MODEL.split("."))
        Track = old.get_model("catalog", "Track")
        Artist = old.get_model("catalog", "Artist")
        Impression = old.get_model("feedback", "Impression")
        Interaction = old.get_model("feedback", "Interaction")
        user = User.objects.create(username="ada")
        artist = Artist.objects.create(name="Portishead")
        tracks = [Track.objects.create(title=f"t{i}", artist=artist) for i in range(4)]
        now = timezone.now()
        interleaved, plain = uuid.uuid4(), uuid.uuid4()
        rows = {}
        # Written out of order: the fold orders by position.
        for request_id, position, track, team in [
            (interleaved, 6, tracks[2], "A"), (interleaved, 5, tracks[1], "B"),
            (interleaved, 7, tracks[3], "B"), (plain, 0, tracks[0], ""),
            (plain, 1, tracks[1], ""),
        ]:  # fmt: skip
            rows[(request_id, track.pk)] = Impression.objects.create(
                request_id=request_id, user=user, track=track, position=position,
                surface="discover", model_version_id=3, pipeline="ease",
                interleaving_test_id=1 if request_id == interleaved else None, team=team,
                shown_at=now,
            )  # fmt: skip
        liked = Interaction.objects.create(
            user=user, track=tracks[3], kind="like", occurred_at=now, hour=now.hour,
            day_of_week=now.weekday(), request_id=interleaved,
            impression=rows[(interleaved, tracks[3].pk)],
        )  # fmt: skip

        new = migrate(AFTER)

        Impression = new.get_model("feedback", "Impression")
        Interaction = new.get_model("feedback", "Interaction")
        lists = {row.request_id: row for row in Impression.objects.all()}
        assert set(lists) == {interleaved, plain}
        drafted = lists[interleaved]
        assert drafted.track_ids == [tracks[1].pk, tracks[2].pk, tracks[3].pk]
        assert (drafted.first_position, drafted.teams) == (5, ["B", "A", "B"])
        assert (drafted.surface, drafted.model_version_id, drafted.interleaving_test_id) == (
            "discover", 3, 1,
        )  # fmt: skip
        assert lists[plain].track_ids == [tracks[0].pk, tracks[1].pk]
        assert (lists[plain].first_position, lists[plain].teams) == (0, [])
        assert Interaction.objects.get(pk=liked.pk).impression_id == drafted.pk
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
