from django.core.management.base import BaseCommand, CommandError

from mltasks.ml.bench.seq import (
    DATASETS,
    add_arguments,
    config_from_options,
    run_seq_benchmark,
)


class Command(BaseCommand):
    help = "Continuation benchmark (SEQ-last): every model and baseline on one split."

    def add_arguments(self, parser):
        add_arguments(parser, datasets=["demo", *DATASETS])
        parser.add_argument(
            "--serving-config",
            action="store_true",
            help="train as `manage.py train` / `make run` do (settings' budget and grids)",
        )

    def handle(self, *args, dataset, path, **options):
        events, item_tags = None, None
        if dataset == "demo":
            from mltasks.selectors import listening_sequences_for_training, track_tags_for_training

            events = listening_sequences_for_training()
            if len(events) == 0:
                raise CommandError("the database has no listening events; run seed_demo first")
            # Content for the served lists' intra-list diversity: the same tag vectors (own
            # tags, the artist's at half weight) as the recommender's content model.
            tags = track_tags_for_training()
            item_tags = {}
            for track_id, tag_id, weight in zip(
                tags.track_ids.tolist(), tags.tag_ids.tolist(), tags.weights.tolist(), strict=True
            ):
                row = item_tags.setdefault(str(track_id), {})
                row[str(tag_id)] = row.get(str(tag_id), 0.0) + weight
        elif not path:
            raise CommandError(f"--path is required for --dataset {dataset}")
        if options["serving_config"]:
            from mltasks.training.continuation import continuation_config

            config = continuation_config()
        else:
            config = config_from_options(
                max_epochs=options["max_epochs"], vocab_min_freq=options["vocab_min_freq"]
            )
        try:
            run_seq_benchmark(
                dataset=dataset,
                path=path,
                events=events,
                item_tags=item_tags,
                seed=options["seed"],
                out_path=options["out"],
                dump_topk_dir=options["dump_topk"],
                config=config,
                latency_check=not options["no_latency_check"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
