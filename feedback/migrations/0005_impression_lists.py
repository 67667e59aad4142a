# One impression row per served list instead of one per track shown: the log's write cost is a
# row per request. The rows written so far are folded into lists (the tracks of a request_id in
# the order shown; the row that showed the list's first track keeps its id, and the feedback
# linked to any of the list's rows is linked to it). Migrating back empties the log.

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FOLD_INTO_LISTS = """
-- Foreign keys checked now, not at commit: the ALTER TABLEs below need no pending checks.
SET CONSTRAINTS ALL IMMEDIATE;

WITH lists AS (
    SELECT request_id,
           (array_agg(id ORDER BY position, id))[1] AS kept_id,
           array_agg(track_id ORDER BY position, id) AS track_ids,
           min(position) AS first_position,
           array_agg(team ORDER BY position, id) AS teams
    FROM feedback_impression
    GROUP BY request_id
)
UPDATE feedback_impression AS kept
SET track_ids = lists.track_ids,
    first_position = lists.first_position,
    teams = CASE WHEN lists.teams <@ ARRAY['']::varchar[] THEN '{}' ELSE lists.teams END
FROM lists
WHERE kept.id = lists.kept_id;

UPDATE feedback_interaction AS event
SET impression_id = kept.id
FROM feedback_impression AS folded
JOIN feedback_impression AS kept
    ON kept.request_id = folded.request_id AND kept.track_ids IS NOT NULL
WHERE event.impression_id = folded.id AND folded.track_ids IS NULL;

DELETE FROM feedback_impression WHERE track_ids IS NULL;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0004_impression_schedules"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="impression",
            name="track_ids",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.BigIntegerField(), null=True, size=None
            ),
        ),
        migrations.AddField(
            model_name="impression",
            name="first_position",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="impression",
            name="teams",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(
                    blank=True,
                    choices=[("", "outside a test"), ("A", "control"), ("B", "challenger")],
                    max_length=1,
                ),
                blank=True,
                default=list,
                size=None,
            ),
        ),
        migrations.RunSQL(FOLD_INTO_LISTS, reverse_sql=migrations.RunSQL.noop),
        migrations.RemoveConstraint(
            model_name="impression", name="unique_impression_track_per_request"
        ),
        migrations.RemoveIndex(model_name="impression", name="impression_user_track_time"),
        migrations.RemoveIndex(model_name="impression", name="impression_time"),
        migrations.RemoveIndex(model_name="impression", name="impression_version_time"),
        migrations.RemoveField(model_name="impression", name="track"),
        migrations.RemoveField(model_name="impression", name="position"),
        migrations.RemoveField(model_name="impression", name="team"),
        migrations.AlterField(
            model_name="impression",
            name="track_ids",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.BigIntegerField(), size=None
            ),
        ),
        migrations.AlterField(
            model_name="impression",
            name="request_id",
            field=models.UUIDField(unique=True),
        ),
        migrations.AlterField(
            model_name="impression",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="impressions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterModelOptions(name="impression", options={"ordering": ["-shown_at"]}),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(fields=["user", "shown_at"], name="impression_user_time"),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=django.contrib.postgres.indexes.BrinIndex(
                fields=["shown_at"], name="impression_time_brin"
            ),
        ),
        # Runs first when migrating back: per-track rows cannot be rebuilt without their
        # columns' old constraints, so the log is emptied (its feedback keeps its request_id).
        migrations.RunSQL(
            migrations.RunSQL.noop,
            reverse_sql=(
                "UPDATE feedback_interaction SET impression_id = NULL "
                "WHERE impression_id IS NOT NULL; DELETE FROM feedback_impression;"
            ),
        ),
    ]
