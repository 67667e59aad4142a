"""Continuation metrics and re-ranking, the continuation entry point, the benchmark runner."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mltasks.ml.artifacts import (
    load_continuation_artifact,
    load_served_scorer,
    save_continuation_artifact,
)
from mltasks.ml.bench import seq as benchmark_seq
from mltasks.ml.data.seq_datasets import load_mpd_playlists
from mltasks.ml.data.sequences import EvalCases, SequenceConfig
from mltasks.ml.eval.seq_metrics import (
    artist_repeat_at_k,
    evaluate_rankings,
    rank_cases,
    repetition_at_k,
    rerank_max_per_artist,
)
from mltasks.ml.eval.topk import PAD, exclude_items, top_k_indices
from mltasks.ml.scorers.base import SequenceContext
from mltasks.ml.scorers.evaluation import rank_cases_in_one_pass, rank_contexts
from mltasks.ml.scorers.ranker import (
    ItemFeatures,
    RankerPipeline,
    candidate_rows,
    fit_ranker,
    sequence_contexts,
)
from mltasks.ml.seq.continuation import (
    ContinuationConfig,
    model_scorers,
    sample_valid_cases,
    train_continuation_model,
)
from mltasks.ml.seq.gru4rec import GRU4RecConfig
from mltasks.ml.seq.sasrec import SASRecConfig

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "seq"
TINY_NEURAL = {"d_model": 8, "max_epochs": 2, "patience": 2, "batch_size": 16}


def tiny_config() -> ContinuationConfig:
    return ContinuationConfig(
        sequences=SequenceConfig(vocab_min_freq=2),
        sasrec=SASRecConfig(n_layers=1, n_heads=1, **TINY_NEURAL),
        gru4rec=GRU4RecConfig(**TINY_NEURAL),
        sknn_neighbours_grid=(5, 10),
        latency_requests=3,
        show_progress=False,
    )


# -- metrics and re-ranking ---------------------------------------------------------------------
def test_repetition_counts_input_items_and_duplicates_in_the_slate():
    top_items = np.array([[1, 2, 3, 2], [5, 6, 7, 8]])
    inputs = [np.array([3]), np.array([9])]
    # Row 0: 3 is in the input, the second 2 repeats the slate -> 2/4; row 1: 0/4.
    assert repetition_at_k(top_items, inputs, k=4) == pytest.approx(0.25)
    assert repetition_at_k(top_items, inputs, k=2) == 0.0


def test_artist_repeat_counts_items_whose_artist_appeared_earlier_in_the_slate():
    item_artist = np.array([0, 0, 1, 1, 2, -1, -1])
    top_items = np.array([[0, 1, 2, 4, 5, 6], [2, 3, 3, 0, 4, 5]])
    # Row 0: artists 0 0 1 2 ? ? -> one repeat; unknown artists never count. Row 1: 1 1 1 0 2 ?
    assert artist_repeat_at_k(top_items, item_artist, k=6) == pytest.approx((1 / 6 + 2 / 6) / 2)


def test_rerank_caps_items_per_artist_and_defers_the_rest():
    items = np.array([0, 1, 2, 3, 4])
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    item_artist = np.array([0, 0, 0, 1, 2])
    reranked, reranked_scores = rerank_max_per_artist(items, scores, item_artist, max_per_artist=1)
    assert reranked.tolist() == [0, 3, 4, 1, 2]
    assert reranked_scores.tolist() == [5.0, 2.0, 1.0, 4.0, 3.0]
    reranked, _ = rerank_max_per_artist(items, scores, item_artist, max_per_artist=2)
    assert reranked.tolist() == [0, 1, 3, 4, 2]
    top = reranked[None, :3]
    assert artist_repeat_at_k(top, item_artist, k=3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        rerank_max_per_artist(items, scores, item_artist, max_per_artist=0)


def test_top_k_never_returns_excluded_items_and_pads_short_catalogs():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    top = top_k_indices(exclude_items(scores, [np.array([0]), np.array([3, 2])]), k=5)
    assert top[0].tolist() == [1, 2, 3, PAD, PAD]
    assert top[1].tolist() == [1, 0, PAD, PAD, PAD]


def test_evaluate_rankings_reports_recall_ndcg_repetition_and_sampled_metrics():
    cases = EvalCases(
        sequence_ids=np.array(["a", "b", "c"]),
        inputs=[np.array([4]), np.array([4]), np.array([4])],
        histories=[np.array([4])] * 3,
        targets=np.array([0, 1, 9]),
        hours=np.zeros(3, dtype=np.int64),
        dows=np.zeros(3, dtype=np.int64),
        train_rows=np.full(3, -1),
    )
    top_items = np.tile(np.arange(100), (3, 1))  # item 4 is in the input of every case
    results = evaluate_rankings(
        top_items=top_items,
        cases=cases,
        n_items=200,
        metric_names=("Recall@20", "nDCG@10", "Coverage@100"),
        sampled_ranks=np.array([0, 10, 3]),
    )
    assert results["Recall@20"] == pytest.approx(1.0)
    assert results["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 3)
    assert results["Coverage@100"] == pytest.approx(0.5)
    assert results["Repetition@20"] == pytest.approx(1 / 20)
    assert results["sampled100-HR@10"] == pytest.approx(2 / 3)
    assert results["sampled100-nDCG@10"] == pytest.approx((1 + 1 / math.log2(5)) / 3)


# -- continuation entry point and benchmark -----------------------------------------------------
@pytest.fixture(scope="module")
def mpd_result():
    events = load_mpd_playlists(FIXTURES / "mpd.slice.0-29.json")
    return train_continuation_model(sequences=events, config=tiny_config(), seed=11)


def test_continuation_trains_every_model_and_serves_the_best_on_the_selection_half(mpd_result):
    result = mpd_result
    models = {"MostPop", "Markov", "SKNN", "SASRec", "GRU4Rec"}
    assert set(result.metrics) in (models, models | {"TunedIn-ranker"})
    for name, parts in result.metrics.items():
        assert {"valid", "test", "selection"} <= set(parts)
        assert {"Recall@20", "nDCG@10", "Coverage@100", "Repetition@20", "ArtistRepeat@20"} <= set(
            parts["test"]
        ), name
    scores = result.selection["scores"]
    assert result.served_model_name == max(scores, key=scores.get)
    assert scores == {n: result.metrics[n]["selection"]["Recall@20"] for n in scores}
    # the vectors model: the neural model with the better validation metric
    vectors = result.vectors_model_name
    assert vectors in {"SASRec", "GRU4Rec"}
    other = ({"SASRec", "GRU4Rec"} - {vectors}).pop()
    assert (
        result.metrics[vectors]["valid"]["Recall@20"] >= result.metrics[other]["valid"]["Recall@20"]
    )
    assert len(result.history[vectors]) >= 1 and "train_seconds" in result.timings[vectors]
    vector = result.served_model.sequence_vector([0, 1], 12, 3)
    scores = result.served_model.score([0, 1], 12, 3)
    assert np.allclose(result.output_item_embeddings @ vector, scores, atol=1e-5)
    assert result.item_ids[result.item_index[result.item_ids[2]]] == result.item_ids[2]
    assert result.served_scorer.n_items == len(result.item_ids)


def test_one_scoring_pass_ranks_every_model_as_its_own_evaluation_and_feeds_the_ranker(
    mpd_result,
):
    split, models = mpd_result.split, mpd_result.models
    scorers = model_scorers(models, split)
    pipeline = RankerPipeline(
        scorers=scorers,
        item_features=ItemFeatures.build(popularity=scorers["MostPop"].popularity),
        context_kind="sequence",
        n_candidates=30,
        candidate_scorers=["Markov", "SKNN"],
    )
    cases = split.test
    passed = rank_cases_in_one_pass(
        pipeline, cases, k=100, keep_rows=True, sampled_negatives=20, seed=5
    )
    for name, model in models.items():
        top_items, sampled_ranks = rank_cases(model, cases, k=100, sampled_negatives=20, seed=5)
        np.testing.assert_array_equal(passed.top_items[name], top_items, err_msg=name)
        np.testing.assert_array_equal(passed.sampled_ranks[name], sampled_ranks, err_msg=name)
    # The ranker's stage 1 and features are what it computes on its own for the same contexts.
    contexts = sequence_contexts(cases, own_sessions=True)
    reference = candidate_rows(pipeline, contexts, cases.histories)
    assert len(passed.ranker_rows) == len(cases)
    for ours, theirs in zip(passed.ranker_rows.candidates, reference.candidates, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(passed.ranker_rows.features, reference.features, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    targets = [np.array([t]) for t in cases.targets.tolist()]
    fitted = pipeline.with_booster(
        fit_ranker(pipeline, rows=reference, targets=targets, seed=5).booster
    )
    ranked = rank_cases_in_one_pass(fitted, cases, k=100, rank_by_booster=True)
    np.testing.assert_array_equal(
        ranked.ranker_top, rank_contexts(fitted, contexts, cases.histories, k=100)
    )
    assert ranked.sampled_ranks == {} and ranked.ranker_rows is None


def test_validation_is_a_seeded_sample_above_the_cap_and_test_is_never_sampled(mpd_result):
    full = mpd_result.split
    cap = len(full.valid) // 2
    assert cap >= 10
    events = load_mpd_playlists(FIXTURES / "mpd.slice.0-29.json")
    config = replace(tiny_config(), max_valid_cases=cap, ranker=None)

    result = train_continuation_model(sequences=events, config=config, seed=11)

    split = result.split
    assert len(split.valid) == cap and len(split.test) == len(full.test)
    assert split.summary["valid_cases_before_sampling"] == len(full.valid)
    assert f"{cap:,} of the {len(full.valid):,}" in split.summary["valid_sample"]
    kept = set(split.valid.sequence_ids.tolist())
    assert kept < set(full.valid.sequence_ids.tolist())
    again = sample_valid_cases(full, max_cases=cap, seed=11)
    assert again.valid.sequence_ids.tolist() == split.valid.sequence_ids.tolist()  # seeded
    assert sample_valid_cases(full, max_cases=len(full.valid), seed=11) is full  # at the cap


def test_neural_models_far_below_session_knn_are_reported_but_left_out_of_the_passes(
    tmp_path, mpd_result
):
    """A share no neural model reaches drops both: their validation column (from their own
    training) and the reason stay, no test column, no ranker input or candidate; the vectors
    still come from the better of them, and the served pipeline saves and loads."""
    events = load_mpd_playlists(FIXTURES / "mpd.slice.0-29.json")
    config = replace(tiny_config(), neural_min_baseline_share=100.0)

    result = train_continuation_model(sequences=events, config=config, seed=11)

    for name in ("SASRec", "GRU4Rec"):
        assert "below 100 x SKNN's" in result.params[name]["dropped"]
        assert result.metrics[name]["test"] == {} and result.metrics[name]["selection"] == {}
        assert result.metrics[name]["valid"]["Recall@20"] == pytest.approx(
            max(entry["valid_Recall@20"] for entry in result.history[name])
        )
        assert name not in result.selection["scores"]
        assert name not in result.test_rankings
        assert "dropped" not in mpd_result.params[name]  # the default share keeps them here
    if result.ranker:
        assert not any("SASRec" in f or "GRU4Rec" in f for f in result.ranker["params"]["features"])
    assert result.selection["served"] in {"MostPop", "Markov", "SKNN", "TunedIn-ranker"}
    assert result.vectors_model_name in {"SASRec", "GRU4Rec"}
    save_continuation_artifact(result, tmp_path / "artifact")
    served = load_served_scorer(tmp_path / "artifact")
    context = SequenceContext(items=np.array([3, 1]), hour=7, dow=2)
    assert np.allclose(served.score(context), result.served_scorer.score(context), atol=1e-5)


def test_a_searched_models_training_seconds_include_its_search():
    """A search whose best trial is kept trains nothing after it: the model's training seconds
    are still what it cost, the search's seconds included, not the ~0 s of keeping it."""
    events = load_mpd_playlists(FIXTURES / "mpd.slice.0-29.json")
    config = replace(tiny_config(), search_seconds=2.0, gru4rec=None)

    result = train_continuation_model(sequences=events, config=config, seed=11)

    search = result.params["SASRec_search"]
    timing = result.timings["SASRec"]
    assert search["n_trials"] >= 1 and search["seconds"] > 0
    assert timing["train_seconds"] >= search["seconds"] - 0.005  # rounded to 10 ms there


def test_artifact_round_trip_keeps_scores_ids_and_metrics(tmp_path, mpd_result):
    save_continuation_artifact(mpd_result, tmp_path / "artifact")
    loaded = load_continuation_artifact(tmp_path / "artifact")
    assert loaded.served_model_name == mpd_result.served_model_name
    assert loaded.item_ids.tolist() == mpd_result.item_ids.tolist()
    assert np.allclose(
        loaded.served_model.score([3, 1], 7, 2),
        mpd_result.served_model.score([3, 1], 7, 2),
        atol=1e-6,
    )
    assert np.allclose(
        loaded.output_item_embeddings, np.load(tmp_path / "artifact" / "item_embeddings.npy")
    )
    assert loaded.metrics == json.loads(json.dumps(mpd_result.metrics))
    assert loaded.item_artist.tolist() == mpd_result.item_artist.tolist()
    served = load_served_scorer(tmp_path / "artifact")
    context = SequenceContext(items=np.array([3, 1]), hour=7, dow=2)
    assert np.allclose(served.score(context), mpd_result.served_scorer.score(context), atol=1e-5)


def test_benchmark_runner_writes_json_and_topk_in_original_ids(tmp_path, capsys):
    events = load_mpd_playlists(FIXTURES / "mpd.slice.0-29.json")
    report = benchmark_seq.run_seq_benchmark(
        events=events,
        dataset="mpd-fixture",
        seed=11,
        out_path=tmp_path / "seq.json",
        dump_topk_dir=tmp_path / "topk",
        config=tiny_config(),
        latency_check=False,
    )
    printed = capsys.readouterr().out
    assert "Recall@20" in printed and "SKNN" in printed and "SASRec" in printed
    written = json.loads((tmp_path / "seq.json").read_text())
    assert written["seed"] == 11 and written["dataset"] == "mpd-fixture"
    assert {"split", "params", "metrics", "timings", "history", "machine"} <= set(written)
    assert written["params"]["SKNN"]["n_neighbours"] in (5, 10)
    assert written["metrics"] == json.loads(json.dumps(report["metrics"]))
    n_test = written["split"]["test_cases"]
    for model in ("MostPop", "Markov", "SKNN", "SASRec", "GRU4Rec"):
        lines = (tmp_path / "topk" / f"{model}.txt").read_text().splitlines()
        assert len(lines) == n_test
        sequence_id, *items = lines[0].split(" ")
        assert sequence_id.isdigit() and all(item.startswith("spotify:track:") for item in items)
        assert len(items) == len(set(items))


def test_benchmark_cli_runs_on_csv_and_presplit_fixtures(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_seq, "DEFAULT_RESULTS_DIR", tmp_path / "results")
    for dataset, path in (("csv", FIXTURES / "listens.csv"), ("presplit", FIXTURES / "presplit")):
        exit_code = benchmark_seq.main(
            [
                "--dataset",
                dataset,
                "--path",
                str(path),
                "--seed",
                "3",
                "--max-epochs",
                "1",
                "--vocab-min-freq",
                "1",
                "--no-latency-check",
            ]
        )
        assert exit_code == 0
        report = json.loads((tmp_path / "results" / f"seq-{dataset}.json").read_text())
        assert report["seed"] == 3 and report["split"]["test_cases"] > 0
        assert len(report["history"]["SASRec"]) == 1
