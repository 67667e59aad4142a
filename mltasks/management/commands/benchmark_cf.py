from django.core.management.base import BaseCommand, CommandError

from mltasks.ml.bench.cf import quick_config, run_cf_benchmark
from mltasks.ml.cf.recommender import RecommenderConfig
from mltasks.ml.data.cf_datasets import DATASETS, load_dataset


class Command(BaseCommand):
    help = "User-recommendation benchmark (CF-random): every model and baseline on one split."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, choices=["demo", *DATASETS])
        parser.add_argument("--path", help="dataset folder or file (not for demo)")
        parser.add_argument("--seed", type=int, default=2020)
        parser.add_argument("--out", help="JSON report (default bench/results/cf-<dataset>.json)")
        parser.add_argument("--dump-topk", help="folder for each model's top-100 per test user")
        parser.add_argument("--quick", action="store_true", help="smoke run: few settings")
        parser.add_argument(
            "--no-side-info",
            action="store_true",
            help="interactions only: no tags, friends or artists",
        )

    def handle(self, *args, dataset, path, seed, out, dump_topk, quick, **options):
        try:
            if dataset == "demo":
                from mltasks.training.recommender import (
                    item_artist_index,
                    recommender_training_data,
                )

                interactions, item_tags, tag_names = recommender_training_data()
                report_input = {
                    "interactions": interactions,
                    "item_tags": item_tags,
                    "tag_names": tag_names,
                    "item_artist": item_artist_index(interactions.items),
                    "dataset_name": "demo",
                }
            elif not path:
                raise CommandError(f"--path is required for --dataset {dataset}")
            else:
                report_input = {"dataset": load_dataset(dataset, path, seed=seed)}
            config = quick_config(RecommenderConfig()) if quick else None
            run_cf_benchmark(
                **report_input, seed=seed, out=out, dump_topk_dir=dump_topk, config=config,
                side_info=not options["no_side_info"],
            )  # fmt: skip
        except ValueError as error:
            raise CommandError(str(error)) from None
