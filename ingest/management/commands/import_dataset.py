from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback.services import track_popularity_refresh
from ingest.importers import FORMATS, read_dataset
from ingest.services import dataset_import
from mltasks.ml.data.parsing import DataFormatError


class Command(BaseCommand):
    help = "Import listening logs or playlists (lastfm-1k TSV, Spotify MPD JSON, or CSV)."

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS, dest="dataset_format")
        parser.add_argument("path", type=Path)

    def handle(self, *args, dataset_format: str, path: Path, **options):
        try:
            batch = read_dataset(dataset_format=dataset_format, path=path)
        except DataFormatError as error:
            raise CommandError(str(error)) from None
        added = dataset_import(batch=batch)
        track_popularity_refresh()
        summary = ", ".join(f"{count:,} {name}" for name, count in added.items())
        self.stdout.write(self.style.SUCCESS(f"Imported {path}: added {summary}"))
