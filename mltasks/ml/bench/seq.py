"""Offline benchmark of the continuation models under protocol SEQ-last (EVALUATION.md).

    python -m mltasks.ml.bench.seq --dataset hetrec-lastfm-2k-tags \
        --path ../shared/data/lastfm-hetrec2k [--seed 2020] [--out JSON] [--dump-topk DIR]

Every model is trained on the same split in the same run (continuation.train_continuation_model);
the table shows test metrics, validation Recall@20 (the selection metric), training seconds and
the mean time of one request. The JSON keeps the split, seeds, parameters, timings, every metric
and the per-epoch history. `--dump-topk DIR` writes DIR/<model>.txt with one line per test
sequence: `sequence-id item item ...` (top 100, original ids).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from mltasks.ml.data.seq_datasets import DATASETS, SequenceEvents, load_sequence_dataset
from mltasks.ml.eval.diversity import served_slate_report
from mltasks.ml.jsonable import json_default
from mltasks.ml.seq.continuation import (
    ContinuationConfig,
    ContinuationResult,
    train_continuation_model,
)
from mltasks.ml.seq.sasrec import SASREC, SASRecConfig, SASRecNetwork
from mltasks.ml.seq.trainer import NeuralContinuationModel, torch_threads

logger = logging.getLogger(__name__)

TABLE_COLUMNS = (
    ("Recall@20", "Recall@20"),
    ("nDCG@10", "nDCG@10"),
    ("Coverage@100", "Cov@100"),
    ("Repetition@20", "Rep@20"),
    ("ArtistRepeat@20", "ArtRep@20"),
)
DEFAULT_RESULTS_DIR = Path("bench/results")


def serving_latency_check(
    *,
    n_items: int = 10_000,
    input_length: int = 50,
    k: int = 20,
    n_requests: int = 300,
    config: SASRecConfig | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Time one SASRec request (input_length items, exact scoring of n_items, top k), 1 core."""
    config = config or SASRecConfig()
    torch.manual_seed(seed)
    model = NeuralContinuationModel(
        network=SASRecNetwork(n_items, config), config=config, n_items=n_items, architecture=SASREC
    )
    rng = np.random.default_rng(seed)
    requests = [rng.choice(n_items, size=input_length, replace=False) for _ in range(n_requests)]
    with torch_threads(1):
        model.recommend(requests[0], k=k, hour=12, dow=3)  # warm-up
        durations = []
        for items in requests:
            started = time.perf_counter()
            model.recommend(items, k=k, hour=12, dow=3)
            durations.append(1000.0 * (time.perf_counter() - started))
    durations = np.array(durations)
    return {
        "n_items": n_items,
        "input_length": input_length,
        "k": k,
        "threads": 1,
        "mean_ms": float(durations.mean()),
        "p50_ms": float(np.percentile(durations, 50)),
        "p99_ms": float(np.percentile(durations, 99)),
    }


def format_table(result: ContinuationResult) -> str:
    header = [
        "model", *(label for _, label in TABLE_COLUMNS), "valid R@20", "select R@20", "train s",
        "ms/req 1T",
    ]  # fmt: skip
    rows = []
    for name, parts in result.metrics.items():
        test = parts["test"]
        row = [name + (" *" if name == result.served_model_name else "")]
        row += [f"{test[key]:.4f}" if key in test else "-" for key, _ in TABLE_COLUMNS]
        row.append(f"{parts['valid']['Recall@20']:.4f}")
        selected = parts.get("selection", {}).get("Recall@20")
        row.append("-" if selected is None else f"{selected:.4f}")
        row.append(f"{result.timings[name]['train_seconds']:.1f}")
        row.append(f"{result.timings[name]['inference_ms_per_request']:.2f}")
        rows.append(row)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    lines.append(
        "* served pipeline: best Recall@20 on the selection half of the validation cases "
        "(select R@20); the ranker's valid column is that half too"
    )
    lines.append("ms/req 1T: one request (score the catalog, drop the input, top 20) on one thread")
    if "SKNN" in result.metrics:
        sknn = result.metrics["SKNN"]["test"]["Recall@20"]
        served = result.metrics[result.served_model_name]["test"]["Recall@20"]
        if sknn > 0:
            lines.append(
                f"served {result.served_model_name} vs SKNN, test Recall@20: "
                f"{100.0 * (served / sknn - 1.0):+.1f}%"
            )
    return "\n".join(lines)


def _ratio(result: ContinuationResult, baseline: str) -> float | None:
    """The served pipeline's test Recall@20 over `baseline`'s (None when it was not trained)."""
    if baseline not in result.metrics:
        return None
    base = result.metrics[baseline]["test"]["Recall@20"]
    served = result.metrics[result.served_model_name]["test"]["Recall@20"]
    return served / base if base > 0 else None


def dump_topk(result: ContinuationResult, directory: str | Path) -> list[Path]:
    """Write each model's top-100 per test sequence as `sequence-id item item ...`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    rankings = dict(result.test_rankings)
    if result.served_model_name in rankings:
        rankings["served"] = rankings[result.served_model_name]
    for name, top_items in rankings.items():
        path = directory / f"{name}.txt"
        with path.open("w", encoding="utf-8") as handle:
            for sequence_id, row in zip(result.test_sequence_ids.tolist(), top_items, strict=True):
                items = result.item_ids[row[row >= 0]]
                handle.write(" ".join([sequence_id, *items.tolist()]) + "\n")
        written.append(path)
    return written


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def tag_vectors(
    item_ids: np.ndarray, item_tags: Mapping[str, Mapping[str, float]]
) -> sp.csr_matrix | None:
    """Items x tags weights (rows in the split's item index) from {item id: {tag: weight}};
    None when no item has a tag."""
    tag_index: dict[str, int] = {}
    rows, columns, weights = [], [], []
    for row, item_id in enumerate(item_ids.tolist()):
        for tag, weight in (item_tags.get(item_id) or {}).items():
            rows.append(row)
            columns.append(tag_index.setdefault(tag, len(tag_index)))
            weights.append(float(weight))
    if not rows:
        return None
    shape = (len(item_ids), len(tag_index))
    return sp.csr_matrix((weights, (rows, columns)), shape=shape, dtype=np.float32)


def served_slates(
    result: ContinuationResult, *, item_tags: Mapping[str, Mapping[str, float]] | None
) -> dict:
    """The served pipeline's test continuations as slates (model order, at most 2 tracks per
    artist, MMR on tags then the cap): Recall@20 and nDCG@20 next to ArtistRepeat@20 and ILD@20
    (eval.diversity.served_slate_report). Empty without artists or tags."""
    top_items = result.test_rankings.get(result.served_model_name)
    if top_items is None or result.split is None:
        return {}
    item_artist = result.item_artist
    if item_artist is not None and not (item_artist >= 0).any():
        item_artist = None
    vectors = tag_vectors(result.item_ids, item_tags) if item_tags else None
    if item_artist is None and vectors is None:
        return {}
    targets = [np.array([target]) for target in result.split.test.targets.tolist()]
    return {
        "model": result.served_model_name,
        "k": 20,
        "slates": served_slate_report(
            top_items=top_items,
            test_items=targets,
            n_items=len(result.item_ids),
            item_artist=item_artist,
            item_vectors=vectors,
        ),  # fmt: skip
    }


def run_seq_benchmark(
    *,
    dataset: str | None = None,
    path: str | Path | None = None,
    events: SequenceEvents | None = None,
    item_artist: Mapping[str, str] | None = None,
    item_tags: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 2020,
    out_path: str | Path | None = None,
    dump_topk_dir: str | Path | None = None,
    config: ContinuationConfig | None = None,
    latency_check: bool = True,
    print_table: bool = True,
) -> dict:
    """Train and evaluate every continuation model on one split; print the table, write JSON.

    Pass `dataset` + `path` to load with seq_datasets, or already loaded `events` (with
    `dataset` as its label). Returns the JSON report as a dict.
    """
    if events is None:
        if dataset is None or path is None:
            raise ValueError("give either events or dataset and path")
        events = load_sequence_dataset(name=dataset, path=path)
    dataset = dataset or events.name or "events"
    started = time.perf_counter()
    result = train_continuation_model(
        sequences=events, item_artist=item_artist, config=config, seed=seed
    )
    report = {
        "protocol": "SEQ-last, full ranking",
        "dataset": dataset,
        "path": None if path is None else str(path),
        "seed": seed,
        "served_model": result.served_model_name,
        "servable_models": sorted(result.selection["scores"]),
        "selection": result.selection,
        "ranker": result.ranker,
        "vectors_model": result.vectors_model_name,
        **{
            f"served_over_{baseline}_test_Recall@20": _ratio(result, baseline)
            for baseline in ("Markov", "SKNN")
        },
        "served_slates": served_slates(result, item_tags=item_tags),
        "split": result.split_summary,
        "params": result.params,
        "metrics": result.metrics,
        "timings": result.timings,
        "history": result.history,
        "machine": _machine(),
        "command": " ".join(sys.argv)
        if sys.argv and sys.argv[0].endswith("benchmark_seq.py")
        else None,
    }
    if latency_check:
        report["serving_latency_sasrec_10k_items"] = serving_latency_check(
            config=result.served_model.config if result.served_model.kind == SASREC.kind else None
        )
    report["wall_seconds"] = time.perf_counter() - started
    table = format_table(result)
    report["table"] = table
    if print_table:
        print(f"SEQ-last on {dataset} (seed {seed}); test metrics unless marked")
        print(table)
        if latency_check:
            latency = report["serving_latency_sasrec_10k_items"]
            print(
                f"one SASRec request, {latency['input_length']} inputs, k={latency['k']}, "
                f"{latency['n_items']} items, 1 thread: mean {latency['mean_ms']:.2f} ms, "
                f"p99 {latency['p99_ms']:.2f} ms"
            )
    out_path = Path(out_path) if out_path else DEFAULT_RESULTS_DIR / f"seq-{dataset}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1, default=json_default))
    report["out_path"] = str(out_path)
    if dump_topk_dir is not None:
        report["topk_files"] = [str(p) for p in dump_topk(result, dump_topk_dir)]
    logger.info("wrote %s", out_path)
    return report


def add_arguments(parser: argparse.ArgumentParser, *, datasets=DATASETS) -> None:
    """The benchmark's options (shared with the `manage.py benchmark_seq` command)."""
    parser.add_argument("--dataset", required=True, choices=datasets)
    parser.add_argument("--path", help="file or folder of the dataset")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--out", help="JSON report (default bench/results/seq-<dataset>.json)")
    parser.add_argument("--dump-topk", help="folder for each model's top-100 per test sequence")
    parser.add_argument("--no-latency-check", action="store_true", help="skip the 10k-item timing")
    parser.add_argument("--max-epochs", type=int, help="cap the neural models' epochs (smoke runs)")
    parser.add_argument("--vocab-min-freq", type=int, help="override VOCAB_MIN_FREQ (default 5)")


def config_from_options(
    *, max_epochs: int | None, vocab_min_freq: int | None
) -> ContinuationConfig:
    config = ContinuationConfig()
    if max_epochs is not None:
        config.sasrec = replace(config.sasrec, max_epochs=max_epochs)
        config.gru4rec = replace(config.gru4rec, max_epochs=max_epochs)
    if vocab_min_freq is not None:
        config.sequences = replace(config.sequences, vocab_min_freq=vocab_min_freq)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.path:
        parser.error("--path is required")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_seq_benchmark(
        dataset=args.dataset,
        path=args.path,
        seed=args.seed,
        out_path=args.out,
        dump_topk_dir=args.dump_topk,
        config=config_from_options(max_epochs=args.max_epochs, vocab_min_freq=args.vocab_min_freq),
        latency_check=not args.no_latency_check,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
