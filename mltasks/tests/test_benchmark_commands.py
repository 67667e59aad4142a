"""The benchmark commands on the demo world in Postgres (the file datasets are covered by the
ML core's own tests)."""

import json

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_benchmark_cf_on_the_demo_world_reports_every_model(small_world, tmp_path):
    out = tmp_path / "cf-demo.json"
    call_command("benchmark_cf", "--dataset", "demo", "--quick", "--out", str(out),
                 "--dump-topk", str(tmp_path / "topk"))  # fmt: skip
    report = json.loads(out.read_text())
    names = {model["name"] for model in report["models"]}
    assert {"MostPop", "ItemKNN", "EASE", "LightGCN"} <= names
    assert report["served_model"] in names
    assert all(0 <= m["test"]["nDCG@20"] <= 1 for m in report["models"])
    dumps = list((tmp_path / "topk").iterdir())
    assert dumps and all(len(d.read_text().splitlines()) > 0 for d in dumps)
    # The served lists under each slate: the artist cap spreads the top 20 over more artists.
    slates = report["served_slates"]
    assert slates["model"] == report["served_model"]
    plain, capped = slates["slates"]["model order"], slates["slates"]["max 2 per artist"]
    assert plain["nDCG@20"] == pytest.approx(report["served_test"]["nDCG@20"])
    assert capped["ArtistRepeat@20"] < plain["ArtistRepeat@20"]
    assert 0 < capped["ILD@20"] <= 1


@pytest.mark.django_db
def test_benchmark_seq_on_the_demo_world_reports_every_model(small_world, tmp_path):
    out = tmp_path / "seq-demo.json"
    call_command("benchmark_seq", "--dataset", "demo", "--max-epochs", "2",
                 "--no-latency-check", "--out", str(out))  # fmt: skip
    report = json.loads(out.read_text())
    assert {"MostPop", "Markov", "SKNN", "SASRec", "GRU4Rec"} <= set(report["metrics"])
    for metrics in report["metrics"].values():
        assert 0 <= metrics["test"]["Recall@20"] <= 1
    # The served continuations as slates, with the tracks' tags for intra-list diversity.
    slates = report["served_slates"]["slates"]
    served_test = report["metrics"][report["served_model"]]["test"]
    assert slates["model order"]["Recall@20"] == pytest.approx(served_test["Recall@20"])
    assert slates["max 2 per artist"]["ArtistRepeat@20"] <= slates["model order"]["ArtistRepeat@20"]
    assert all(0 < slate["ILD@20"] <= 1 for slate in slates.values())


@pytest.mark.django_db
def test_file_datasets_need_a_path():
    with pytest.raises(CommandError, match="--path"):
        call_command("benchmark_seq", "--dataset", "csv")
    with pytest.raises(CommandError, match="--path"):
        call_command("benchmark_cf", "--dataset", "csv")
