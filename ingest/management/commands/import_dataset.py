from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback.services import track_popularity_refresh
from ingest.importers import FORMATS, read_dataset
from ingest.records import ImportOptionError
from ingest.services import dataset_import
from mltasks.ml.data.parsing import DataFormatError


class Command(BaseCommand):
    help = (
        "Import listening histories, playlists or event logs: Spotify streaming history, "
        "ListenBrainz and Last.fm exports, the Last.fm 1K log, MPD slices or a CSV of events. "
        "All the paths go in one transaction; a malformed line stops it with file:line: reason "
        "and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS, dest="dataset_format")
        parser.add_argument(
            "--user",
            help="the listener the events belong to (spotify, listenbrainz: when the export "
            "names nobody, or instead of the name it has; lastfm-csv: required)",
        )
        parser.add_argument(
            "paths",
            nargs="+",
            type=Path,
            metavar="PATH",
            help="files; for spotify, listenbrainz and mpd also a directory or a zip archive",
        )

    def handle(self, *args, dataset_format: str, paths: list[Path], user: str | None, **options):
        try:
            records = read_dataset(dataset_format=dataset_format, paths=paths, user=user)
            added = dataset_import(records=records)
        except (DataFormatError, ImportOptionError) as error:
            raise CommandError(str(error)) from None
        track_popularity_refresh()
        duplicates, skipped = added.pop("duplicate_events"), added.pop("skipped")
        summary = ", ".join(f"{count:,} {name}" for name, count in added.items())
        notes = [f"{duplicates:,} events were already there"] if duplicates else []
        if skipped:
            notes.append(f"{skipped:,} rows skipped: not music tracks, or without a date")
        where = ", ".join(str(path) for path in paths)
        self.stdout.write(
            self.style.SUCCESS(f"Imported {where}: added {summary}")
            + (f" ({'; '.join(notes)})" if notes else "")
        )
