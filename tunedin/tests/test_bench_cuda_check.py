"""bench/cuda_check.py's input from the demo world: one (user, track, plays) row per pair."""

from collections import Counter

import numpy as np

from bench.cuda_check import main
from ingest.demo_world import DemoWorldSize, generate_demo_world


def test_the_demo_plays_file_counts_each_listeners_plays_of_each_track(tmp_path):
    path = tmp_path / "plays.npz"
    assert main(["--write-demo-plays", "0.02", "--demo-plays", str(path)]) == 0
    plays = np.load(path)
    world = generate_demo_world(size=DemoWorldSize.scaled(0.02), seed=2020)
    expected = Counter((u, track) for u, track, kind, _ in world.events if kind == "play")
    assert int(plays["counts"].sum()) == sum(expected.values())
    assert len(plays["counts"]) == len(expected)
    assert sorted(plays["counts"].tolist()) == sorted(expected.values())
    assert plays["users"].max() + 1 == len({u for u, _ in expected})
