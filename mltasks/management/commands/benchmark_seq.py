from django.core.management.base import BaseCommand, CommandError

from mltasks.ml.benchmark_seq import DATASETS, run_seq_benchmark


class Command(BaseCommand):
    help = "Continuation benchmark (SEQ-last): every model and baseline on one split."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, choices=["demo", *DATASETS])
        parser.add_argument("--path", help="file or folder of the dataset (not for demo)")
        parser.add_argument("--seed", type=int, default=2020)
        parser.add_argument("--out", help="JSON report (default bench/results/seq-<dataset>.json)")
        parser.add_argument("--dump-topk", help="folder for each model's top-100 per sequence")
        parser.add_argument("--no-latency-check", action="store_true")

    def handle(self, *args, dataset, path, seed, out, dump_topk, no_latency_check, **options):
        events = None
        if dataset == "demo":
            from mltasks.selectors import listening_sequences_for_training

            events = listening_sequences_for_training()
            if len(events) == 0:
                raise CommandError("the database has no listening events; run seed_demo first")
        elif not path:
            raise CommandError(f"--path is required for --dataset {dataset}")
        try:
            run_seq_benchmark(
                dataset=dataset,
                path=path,
                events=events,
                seed=seed,
                out_path=out,
                dump_topk_dir=dump_topk,
                latency_check=not no_latency_check,
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
