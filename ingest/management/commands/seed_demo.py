import os
import time

from django.core.management.base import BaseCommand, CommandError

from catalog.selectors import catalog_is_empty
from ingest.demo_world import GENRES, DemoWorldSize, generate_demo_world
from ingest.services import demo_world_write


class Command(BaseCommand):
    help = "Generate and store the deterministic demo world (artists, tracks, tags, users, "
    "listening sessions, playlists)."

    def add_arguments(self, parser):
        defaults = DemoWorldSize.scaled(float(os.environ.get("DEMO_WORLD_SCALE", "1")))
        parser.add_argument("--users", type=int, default=defaults.users)
        parser.add_argument("--artists", type=int, default=defaults.artists)
        parser.add_argument("--tracks", type=int, default=defaults.tracks)
        parser.add_argument("--events", type=int, default=defaults.events)
        parser.add_argument("--playlists", type=int, default=defaults.playlists)
        parser.add_argument("--seed", type=int, default=2020)
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the catalog has tracks"
        )

    def handle(self, *args, **options):
        if not catalog_is_empty():
            if options["if_empty"]:
                self.stdout.write("The catalog already has tracks; not seeding.")
                return
            raise CommandError("The catalog is not empty; seed_demo only fills an empty database.")
        for name in ("users", "artists", "tracks", "events", "playlists"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if options["artists"] < len(GENRES):
            raise CommandError(f"--artists must be at least {len(GENRES)} (one per genre)")
        if options["tracks"] < 3 * options["artists"]:
            raise CommandError("--tracks must be at least 3 × --artists")
        size = DemoWorldSize(
            users=options["users"],
            artists=options["artists"],
            tracks=options["tracks"],
            events=options["events"],
            playlists=options["playlists"],
        )
        started = time.monotonic()
        world = generate_demo_world(size=size, seed=options["seed"])
        password = os.environ.get("DEMO_PASSWORD", "tunedin-demo")
        counts = demo_world_write(world=world, password=password)
        summary = ", ".join(f"{count:,} {name}" for name, count in counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Seeded the demo world in {time.monotonic() - started:.1f} s: ")
            + summary
            + "\nLog in as 'demo' (a listener) or 'admin' (staff) with the password in "
            "DEMO_PASSWORD (default 'tunedin-demo')."
        )
