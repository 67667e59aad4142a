"""Offline benchmark of the user recommender (protocol CF-random, full ranking).

Every model (MostPop, ItemKNN, EASE, LightGCN, EASE-SVD, TunedIn-blend) is trained on the same
split in the same run by `recommender.train_user_recommender`; this module prints the table,
writes the JSON report and, on request, each model's top-100 per test user.

    python -m mltasks.ml.bench.cf --dataset hetrec-lastfm-2k \
        --path ../shared/data/lastfm-hetrec2k [--seed 2020] [--out JSON] [--dump-topk DIR]

`run_cf_benchmark` also takes an already-loaded `Dataset` (or bare `Interactions`), which is how
the Django management command benchmarks the demo world from Postgres.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mltasks.ml.cf.recommender import RecommenderConfig, RecommenderResult, train_user_recommender
from mltasks.ml.data.cf_datasets import DATASETS, Dataset, load_dataset
from mltasks.ml.data.interactions import Interactions
from mltasks.ml.data.item_tags import ItemTags
from mltasks.ml.data.splits import DEFAULT_SEED, CFSplit, cf_random_split, held_out_items
from mltasks.ml.eval.diversity import served_slate_report
from mltasks.ml.eval.ranking import CF_METRICS
from mltasks.ml.jsonable import json_default

logger = logging.getLogger(__name__)

TOP_K_DUMP = 100
RESULTS_DIR = Path("bench/results")
BASELINE_FOR_TARGET = "EASE"


def run_cf_benchmark(
    *,
    dataset: Dataset | None = None,
    interactions: Interactions | None = None,
    item_tags: sp.csr_matrix | ItemTags | None = None,
    tag_names: list[str] | None = None,
    friends: sp.csr_matrix | None = None,
    item_artist: np.ndarray | None = None,
    side_info: bool = True,
    split: CFSplit | None = None,
    dataset_name: str | None = None,
    seed: int = DEFAULT_SEED,
    config: RecommenderConfig | None = None,
    out: str | Path | None = None,
    dump_topk_dir: str | Path | None = None,
    command: str | None = None,
) -> dict:
    """Train and evaluate every model on one split; print the table; write JSON (and top-k dumps).

    Pass a loaded `dataset`, or `interactions` with optional side information. Returns the report
    that is written to `out` (default bench/results/cf-<dataset>.json).
    """
    if dataset is not None:
        interactions = dataset.interactions
        split = split or dataset.split
        dataset_name = dataset_name or dataset.name
        if dataset.item_tags is not None and item_tags is None:
            # The whole ItemTags, not just its counts: evaluation fits must be able to drop the
            # tagging events on held-out (user, item) pairs.
            item_tags = dataset.item_tags
        friends = friends if friends is not None else dataset.friends
    if interactions is None:
        raise ValueError("give a dataset or interactions")
    if not side_info:  # the interactions alone: no tags, no friends, no artists
        item_tags, tag_names, friends, item_artist = None, None, None, None
    dataset_name = dataset_name or "custom"
    config = config or RecommenderConfig()
    # The benchmark reports train+valid fits; refitting on everything is for serving only.
    config = replace(config, serve_fit="train+valid")
    tag_counts = item_tags.counts if isinstance(item_tags, ItemTags) else item_tags
    if dump_topk_dir is not None or item_artist is not None or tag_counts is not None:
        # Top-100 lists: the dumps, and the served slates' diversity (re-ranks reach below 20).
        config = replace(config, collect_test_top_k=TOP_K_DUMP)
    started = time.perf_counter()
    split = split or cf_random_split(interactions, seed=seed)
    result = train_user_recommender(
        interactions=interactions,
        item_tags=item_tags,
        tag_names=tag_names,
        friends=friends,
        item_artist=item_artist,
        config=config,
        seed=seed,
        split=split,
    )
    report = build_report(result, dataset_name=dataset_name, dataset=dataset, command=command)
    report["served_slates"] = served_slates(
        result, split=split, item_artist=item_artist, item_vectors=tag_counts
    )
    report["side_info"] = side_info
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    print(format_table(result))
    print(format_summary(report))
    out = Path(out) if out is not None else RESULTS_DIR / f"cf-{dataset_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    logger.info("wrote %s", out)
    if dump_topk_dir is not None:
        write_topk_dumps(result, interactions, split, dump_topk_dir)
    return report


def served_slates(
    result: RecommenderResult,
    *,
    split: CFSplit,
    item_artist: np.ndarray | None,
    item_vectors: sp.csr_matrix | None,
) -> dict:
    """The served lists' accuracy and diversity (ArtistRepeat@20 with artists, ILD@20 on tags)
    in the model's order, under /api/rec's default cap of 2 tracks per artist, and after an MMR
    re-rank (diversity 0.3): what diversity costs in nDCG and Recall. Empty without the served
    lists or any artist or tag."""
    if result.served_test_top_items is None or (item_artist is None and item_vectors is None):
        return {}
    _, test_items = held_out_items(split.test)
    return {
        "model": result.served_model,
        "k": 20,
        "slates": served_slate_report(
            top_items=result.served_test_top_items,
            test_items=test_items,
            n_items=split.n_items,
            item_artist=item_artist,
            item_vectors=item_vectors,
        ),  # fmt: skip
    }


def build_report(
    result: RecommenderResult,
    *,
    dataset_name: str,
    dataset: Dataset | None = None,
    command: str | None = None,
) -> dict:
    metrics = result.metrics
    served = result.served_model
    served_test = result.served_test or metrics[served]["test"]
    gain = None
    if BASELINE_FOR_TARGET in metrics and metrics[BASELINE_FOR_TARGET]["test"]:
        base = metrics[BASELINE_FOR_TARGET]["test"]["nDCG@20"]
        gain = served_test["nDCG@20"] / base - 1.0 if base > 0 else None
    singles = [
        m for m in result.models if m.name not in ("TunedIn-blend", "TunedIn-ranker") and m.test
    ]
    best_single = max(singles, key=lambda m: m.test["nDCG@20"])
    return {
        "protocol": "CF-random, full ranking, training (train+valid for test) items excluded",
        "dataset": dataset.describe() if dataset is not None else {"name": dataset_name},
        "split": result.split,
        "seed": result.seed,
        "served_model": served,
        "served_params": result.served_params,
        "served_dim": int(result.user_vectors.shape[1]),
        "served_test_nDCG@20_gain_over_EASE": gain,
        "served_test": served_test,
        # The best single model on test, named after the fact: a yardstick, not a choice.
        "best_single_model_on_test": best_single.name,
        "served_over_best_single_test_nDCG@20": served_test["nDCG@20"]
        / best_single.test["nDCG@20"],
        "served_over_EASE_test_nDCG@20": None if gain is None else 1.0 + gain,
        "selection": result.selection,
        "ranker": result.ranker,
        "vectors_model": result.vectors_model,
        "protocol_notes": "every choice (hyper-parameters, epochs, blend weights, the ranker, "
        "the served pipeline) on validation; blends and the ranker are fitted on one seeded "
        "half of the validation users and every candidate is selected on the other; test "
        "touched once, after refitting every model on train+valid (the ranker: refitted on "
        "every validation user over the train fits, applied to the train+valid fits)",
        "metrics": metrics,
        "models": [m.to_dict() for m in result.models],
        "history": result.history,
        "timings": result.timings,
        "config": result.config,
        "machine": machine_info(),
        "command": command,
    }


def format_table(result: RecommenderResult) -> str:
    columns = list(CF_METRICS)
    header = (
        f"{'model':<15}"
        + "".join(f"{c:>13}" for c in columns)
        + f"{'train s':>9}{'valid nDCG@20':>15}{'select nDCG@20':>16}{'dim':>5}"
    )
    lines = [header, "-" * len(header)]
    for report in result.models:
        marker = "*" if report.name == result.served_model else " "
        lines.append(
            f"{marker}{report.name:<14}"
            + "".join(f"{report.test.get(c, float('nan')):>13.4f}" for c in columns)
            + f"{report.train_seconds:>9.1f}"
            + f"{report.valid.get('nDCG@20', float('nan')):>15.4f}"
            + f"{report.selection.get('nDCG@20', float('nan')):>16.4f}"
            + f"{report.dim if report.dim else '-':>5}"
        )
    lines.append(
        "(test metrics after refit on train+valid; * = served pipeline, the best on the "
        "selection half of the validation users, `select` column)"
    )
    return "\n".join(lines)


def format_summary(report: dict) -> str:
    lines = []
    gain = report["served_test_nDCG@20_gain_over_EASE"]
    if gain is not None:
        lines.append(f"served model {report['served_model']}: test nDCG@20 {gain:+.1%} vs EASE")
    quality = report["timings"].get("lightgcn_time_to_quality")
    if quality:
        parts = [
            f"{key} of best in {value['seconds']:.1f}s (epoch {value['epoch']})"
            for key, value in quality.items()
            if isinstance(value, dict)
        ]
        lines.append(
            f"LightGCN time to quality (valid nDCG@20 {quality['best_valid_nDCG@20']:.4f}): "
            + ", ".join(parts)
        )
    return "\n".join(lines)


def write_topk_dumps(
    result: RecommenderResult, interactions: Interactions, split: CFSplit, folder: str | Path
) -> list[Path]:
    """Per model, `<model>.txt`: one "user item item ..." line per test user, original ids."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    test_users, _ = held_out_items(split.test)
    user_ids = interactions.users.ids
    item_ids = interactions.items.ids
    paths = []
    lists = [(report.name, report.test_top_items) for report in result.models]
    lists += [("served", top) for name, top in lists if name == result.served_model]
    for name, test_top_items in lists:
        if test_top_items is None:
            continue
        path = folder / f"{name}.txt"
        with path.open("w", encoding="utf-8") as handle:
            for user, top in zip(test_users, test_top_items, strict=True):
                ranked = item_ids[top[top >= 0]]
                handle.write(" ".join([str(user_ids[user]), *map(str, ranked)]) + "\n")
        paths.append(path)
    logger.info("wrote top-%d lists of %d models to %s", TOP_K_DUMP, len(paths), folder)
    return paths


def machine_info() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def quick_config(config: RecommenderConfig) -> RecommenderConfig:
    """Fewer settings and epochs: a smoke run in seconds, not a benchmark."""
    return replace(
        config,
        ease_lambdas=(50.0, 200.0),
        ease_side_weights=(3.0,),
        knn_neighbors=(100,),
        blend_ease_weights=(0.0, 0.5),
        blend_content_weights=(0.0, 0.2),
        lightgcn=replace(config.lightgcn, max_epochs=min(config.lightgcn.max_epochs, 15)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--path", required=True, help="dataset folder (csv: the file)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", help="JSON report (default bench/results/cf-<dataset>.json)")
    parser.add_argument("--dump-topk", help="folder for each model's top-100 per test user")
    parser.add_argument("--epochs", type=int, help="LightGCN max epochs")
    parser.add_argument("--max-seconds", type=float, help="LightGCN wall-clock budget")
    parser.add_argument("--quick", action="store_true", help="smoke run: few settings, 15 epochs")
    parser.add_argument(
        "--no-side-info", action="store_true", help="interactions only: no tags, no friends"
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = RecommenderConfig(show_progress=not args.no_progress)
    if args.quick:
        config = quick_config(config)
    if args.epochs is not None:
        config = replace(config, lightgcn=replace(config.lightgcn, max_epochs=args.epochs))
    if args.max_seconds is not None:
        config = replace(config, lightgcn=replace(config.lightgcn, max_seconds=args.max_seconds))
    dataset = load_dataset(args.dataset, args.path, seed=args.seed)
    run_cf_benchmark(
        dataset=dataset,
        side_info=not args.no_side_info,
        seed=args.seed,
        config=config,
        out=args.out,
        dump_topk_dir=args.dump_topk,
        command="python -m mltasks.ml.bench.cf " + " ".join(argv or sys.argv[1:]),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
