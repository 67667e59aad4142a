"""bench/report.py renders the README's benchmark tables from the result files."""

from bench import report


def _cf_report(**extra) -> dict:
    model = {
        "name": "EASE",
        "test": {"Recall@20": 0.3, "nDCG@20": 0.2, "nDCG@10": 0.2, "HR@10": 0.5},
        "valid": {"nDCG@20": 0.19},
        "selection": {"nDCG@20": 0.18},
        "train_seconds": 1.0,
    }
    return {"served_model": "EASE", "seed": 7, "models": [model], **extra}


def test_the_cf_section_shows_the_served_slates_accuracy_next_to_their_diversity():
    slates = {
        "model": "EASE",
        "k": 20,
        "slates": {
            "model order": {"nDCG@20": 0.2, "Recall@20": 0.3, "ArtistRepeat@20": 0.6,
                            "ILD@20": 0.1},
            "max 2 per artist": {"nDCG@20": 0.18, "Recall@20": 0.29, "ArtistRepeat@20": 0.2,
                                 "ILD@20": 0.4},
        },
    }  # fmt: skip
    text = report.cf_section(_cf_report(served_slates=slates), "Demo", "cmd")
    assert "| slate | test nDCG@20 | test Recall@20 | test ArtistRepeat@20 | test ILD@20 |" in text
    assert "| max 2 per artist | 0.1800 | 0.2900 | 0.2000 | 0.4000 |" in text


def test_the_cf_section_has_no_slate_table_without_artists_or_tags():
    text = report.cf_section(_cf_report(served_slates={}), "HetRec", "cmd")
    assert "slate" not in text and "| EASE (served) |" in text


def _run(p99: float, requests_per_second: float) -> dict:
    return {"latency_ms": {"p99": p99}, "requests_per_second": requests_per_second}


def test_the_load_section_shows_each_impression_round_and_the_median():
    rounds = [
        {"order": ["off", "logged", "unflushed"],
         "runs": {"off": _run(100.0, 250), "logged": _run(103.5, 240),
                  "unflushed": _run(101.0, 249)}},
        {"order": ["logged", "unflushed", "off"],
         "runs": {"off": _run(110.0, 245), "logged": _run(109.0, 244),
                  "unflushed": _run(111.0, 246)}},
    ]  # fmt: skip
    cost = {"rounds": 2, "added_p99_ms_per_round": [3.5, -1.0], "added_p99_ms": 1.25,
            "request_path_added_p99_ms": 1.0, "off_p99_spread_ms": 10.0,
            "cpu_added_ms_per_request_by_group": {"server": 0.05, "postgres": 0.4}}  # fmt: skip
    text = "\n".join(report.load_section({"impressions": {"rounds": rounds, "cost": cost}}, "f"))
    assert (
        "| 1 | off → logged → unflushed | 100.00 (250) | 103.50 (240) | 101.00 (249) | +3.50 |"
        in text
    )
    assert (
        "| 2 | logged → unflushed → off | 110.00 (245) | 109.00 (244) | 111.00 (246) | -1.00 |"
        in text
    )
    assert "Median logged − off: +1.25 ms; median unflushed − off: +1.00 ms" in text
    assert "spread over 10.00 ms" in text
    assert "by process (median of logged − off, ms): server +0.050, postgres +0.400." in text


def test_the_load_section_shows_the_light_load_rounds_after_the_others():
    def one_round(off: float, logged: float) -> list[dict]:
        return [{"order": ["off", "logged"],
                 "runs": {"off": _run(off, 150), "logged": _run(logged, 149)}}]  # fmt: skip

    def cost(added: float) -> dict:
        return {"rounds": 1, "added_p99_ms_per_round": [added], "added_p99_ms": added,
                "off_p99_spread_ms": 0.0}  # fmt: skip

    impressions = {
        "rounds": one_round(100.0, 130.0),
        "cost": cost(30.0),
        "light": {"connections": 2, "rounds": one_round(20.0, 20.5), "cost": cost(0.5)},
    }  # fmt: skip
    text = "\n".join(report.load_section({"impressions": impressions}, "f"))

    full, light = text.split("light load of 2 connections")
    assert "paired rounds at 32 connections" in full
    assert "| 1 | off → logged | 100.00 (150) | 130.00 (149) | – | +30.00 |" in full
    assert "| 1 | off → logged | 20.00 (150) | 20.50 (149) | – | +0.50 |" in light
    assert "Median logged − off: +0.50 ms" in light


def test_the_load_section_of_a_file_without_rounds_has_no_round_table():
    text = "\n".join(report.load_section({"impressions": {"cost": {"added_p99_ms": 3.0}}}, "f"))
    assert "paired" not in text
