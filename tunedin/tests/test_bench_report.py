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
