"""TRAINING_DEVICE=cuda, checked: the ML core's LightGCN, SASRec and GRU4Rec train on a GPU with
the same code as on the CPU, and LightGCN trains on the scale-10 demo world's play log there.

    # here: the inputs (the HetRec 2K folder as shipped, and the demo world's plays at scale 10)
    python bench/cuda_check.py --write-demo-plays 10 --demo-plays var/demo10_plays.npz
    # on the GPU machine, with both copied beside the checkout
    python3 bench/cuda_check.py --hetrec hetrec/ --demo-plays demo10_plays.npz --out result.json

It imports only the ML core (numpy, scipy, torch, torch-geometric, tqdm), so it runs on a GPU
machine that has no Django, PostgreSQL or Redis. What it does:
- HetRec 2K (CF-random split, seed 2020): LightGCN's FAST_CONFIG for 30 epochs on the CPU and on
  CUDA, validation nDCG@20 every 3 epochs;
- HetRec tag sequences (SEQ-last): SASRec and GRU4Rec for 6 epochs on each device;
- the demo world at scale 10 (user x track play counts, CF-random, seed 2020): LightGCN on CUDA
  for 6 epochs (on 2 CPU cores one epoch takes about 85 s, bench/results/scale-*.json logs).
Epoch counts are fixed (patience above them), so both devices run the same number of epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the checkout's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_demo_plays(*, scale: float, path: Path, seed: int = 2020) -> int:
    """The demo world's plays as (user, track, count) rows, users and tracks indexed in the
    order of their ids as strings; returns the number of rows."""
    from ingest.demo_world import DemoWorldSize, generate_demo_world

    world = generate_demo_world(size=DemoWorldSize.scaled(scale), seed=seed)
    plays = sorted(
        (u, track, ts.timestamp()) for u, track, kind, ts in world.events if kind == "play"
    )
    _, users = np.unique(np.array([f"u{u}" for u, _, _ in plays]), return_inverse=True)
    _, tracks = np.unique(np.array([str(track) for _, track, _ in plays]), return_inverse=True)
    width = int(tracks.max()) + 1
    keys, counts = np.unique(users.astype(np.int64) * width + tracks, return_counts=True)
    np.savez_compressed(
        path,
        users=(keys // width).astype(np.int32),
        items=(keys % width).astype(np.int32),
        counts=counts.astype(np.int32),
    )
    return len(keys)


def run_check(*, hetrec: Path, demo_plays: Path, out: Path) -> dict:
    import torch

    from mltasks.ml.cf.lightgcn import FAST_CONFIG, train_lightgcn
    from mltasks.ml.data.cf_datasets import load_hetrec_lastfm
    from mltasks.ml.data.interactions import Interactions
    from mltasks.ml.data.seq_datasets import load_hetrec_tag_sequences
    from mltasks.ml.data.sequences import SequenceConfig, seq_last_split
    from mltasks.ml.data.splits import cf_random_split
    from mltasks.ml.device import resolve_device
    from mltasks.ml.seq.gru4rec import GRU4RecConfig, train_gru4rec
    from mltasks.ml.seq.sasrec import SASRecConfig, train_sasrec

    report = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "auto_device": str(resolve_device("auto")),
        "cpu_threads": torch.get_num_threads(),
    }

    def save():
        out.write_text(json.dumps(report, indent=1, default=float))
        print(json.dumps(report, default=float), flush=True)

    split = cf_random_split(load_hetrec_lastfm(hetrec).interactions, seed=2020)
    for device in ("cpu", "cuda"):
        config = replace(
            FAST_CONFIG, device=device, max_epochs=30, patience=100, show_progress=False
        )
        started = time.perf_counter()
        result = train_lightgcn(split.train, config=config, valid_csr=split.valid, seed=2020)
        report[f"lightgcn_hetrec_{device}"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "best_valid_nDCG@20": result.best_valid_ndcg,
            "last_loss": result.history[-1].get("loss"),
            "vectors_device": "numpy" if isinstance(result.item_vectors, np.ndarray) else "?",
        }
        save()

    events = load_hetrec_tag_sequences(hetrec / "user_taggedartists.dat")
    seq_split = seq_last_split(events, config=SequenceConfig(max_seq_len=50))
    for name, train, config_class in (
        ("SASRec", train_sasrec, SASRecConfig),
        ("GRU4Rec", train_gru4rec, GRU4RecConfig),
    ):
        for device in ("cpu", "cuda"):
            config = config_class(device=device, max_epochs=6, patience=100, num_threads=None)
            started = time.perf_counter()
            trained = train(split=seq_split, config=config, seed=2020, show_progress=False)
            report[f"{name}_hetrec_{device}"] = {
                "seconds": round(time.perf_counter() - started, 2),
                "epochs": len(trained.history),
                "best_epoch": trained.best_epoch,
                "best_valid": max(
                    h.get("valid_Recall@20", h.get("Recall@20", 0)) or 0 for h in trained.history
                ),
                "history_keys": sorted(trained.history[-1]),
            }
            save()

    plays = np.load(demo_plays)
    demo = Interactions(user_ids=plays["users"], item_ids=plays["items"], weights=plays["counts"])
    demo_split = cf_random_split(demo, seed=2020)
    report["demo10"] = {
        "users": int(demo_split.n_users),
        "items": int(demo_split.n_items),
        "train_edges": int(demo_split.train.nnz),
    }
    config = replace(
        FAST_CONFIG, device="cuda", max_epochs=6, eval_every=3, patience=100, show_progress=False
    )
    started = time.perf_counter()
    result = train_lightgcn(demo_split.train, config=config, valid_csr=demo_split.valid, seed=2020)
    report["lightgcn_demo10_cuda"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "epochs": len(result.history),
        "history": result.history,
        "best_valid_nDCG@20": result.best_valid_ndcg,
    }
    report["max_gpu_memory_GB"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    save()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hetrec", type=Path, default=Path("../shared/data/lastfm-hetrec2k"))
    parser.add_argument("--demo-plays", type=Path, default=Path("var/demo10_plays.npz"))
    parser.add_argument("--write-demo-plays", type=float, metavar="SCALE")
    parser.add_argument("--out", type=Path, default=Path("cuda_check.json"))
    arguments = parser.parse_args(argv)
    if arguments.write_demo_plays:
        rows = write_demo_plays(scale=arguments.write_demo_plays, path=arguments.demo_plays)
        print(f"wrote {rows:,} (user, track, plays) rows to {arguments.demo_plays}")
        return 0
    run_check(hetrec=arguments.hetrec, demo_plays=arguments.demo_plays, out=arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
