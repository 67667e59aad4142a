"""Sessions, the SEQ-last split, vocabulary filtering, context, loaders and baselines."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mltasks.ml.data.seq_datasets import (
    SequenceEvents,
    load_csv_events,
    load_hetrec_tag_sequences,
    load_mpd_playlists,
    load_presplit,
    load_sequence_dataset,
)
from mltasks.ml.data.sequences import (
    NEUTRAL_DOW,
    NEUTRAL_HOUR,
    SequenceConfig,
    seq_last_split,
    sessionize,
    time_context,
)
from mltasks.ml.seq.baselines import MarkovTransitions, MostPop, SessionKNN, tune_session_knn

FIXTURES = Path(__file__).parent / "fixtures" / "seq"
MINUTE = 60.0
T0 = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC).timestamp()  # a Monday, 10:00 UTC


def _events(rows, *, needs_sessionization=False, artists=None) -> SequenceEvents:
    """rows: (sequence id, item id, timestamp)."""
    return SequenceEvents(
        sequence_ids=np.array([r[0] for r in rows], dtype=str),
        item_ids=np.array([r[1] for r in rows], dtype=str),
        timestamps=np.array([r[2] for r in rows], dtype=np.float64),
        artist_ids=None if artists is None else np.array(artists, dtype=str),
        needs_sessionization=needs_sessionization,
    )


def _sessions(events: SequenceEvents) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for sequence_id, item_id in zip(
        events.sequence_ids.tolist(), events.item_ids.tolist(), strict=True
    ):
        result.setdefault(sequence_id, []).append(item_id)
    return result


# -- sessionization ----------------------------------------------------------------------------
def test_gap_of_exactly_45_minutes_starts_a_new_session():
    events = _events(
        [("u", "a", T0), ("u", "b", T0 + 45 * MINUTE), ("u", "c", T0 + 45 * MINUTE + 44 * MINUTE)]
    )
    sessions = _sessions(sessionize(events, session_gap_min=45))
    assert sessions == {"u#0": ["a"], "u#1": ["b", "c"]}


def test_gap_just_under_45_minutes_stays_in_the_session():
    events = _events([("u", "a", T0), ("u", "b", T0 + 45 * MINUTE - 1)])
    assert _sessions(sessionize(events)) == {"u#0": ["a", "b"]}


def test_single_event_sessions_are_kept():
    events = _events(
        [("u", "a", T0), ("u", "b", T0 + 5 * 3600), ("u", "c", T0 + 5 * 3600 + 60), ("v", "d", T0)]
    )
    sessions = _sessions(sessionize(events))
    assert sessions == {"u#0": ["a"], "u#1": ["b", "c"], "v#0": ["d"]}


def test_unsorted_input_is_sorted_by_time_with_stable_ties():
    events = _events(
        [("u", "late", T0 + 600), ("u", "tie-first", T0), ("v", "x", T0), ("u", "tie-second", T0)]
    )
    sessionized = sessionize(events)
    assert _sessions(sessionized) == {"u#0": ["tie-first", "tie-second", "late"], "v#0": ["x"]}
    assert np.all(np.diff(sessionized.timestamps[sessionized.sequence_ids == "u#0"]) >= 0)


def test_sessionize_rejects_missing_timestamps():
    with pytest.raises(ValueError, match="timestamp"):
        sessionize(_events([("u", "a", T0), ("u", "b", np.nan)]))


def test_split_sessionizes_events_that_need_it():
    rows = [("u", item, T0 + i * MINUTE) for i, item in enumerate("abcd")]
    rows += [("u", item, T0 + 3 * 3600 + i * MINUTE) for i, item in enumerate("abcd")]
    split = seq_last_split(
        _events(rows, needs_sessionization=True), config=SequenceConfig(vocab_min_freq=0)
    )
    assert sorted(split.test.sequence_ids.tolist()) == ["u#0", "u#1"]
    assert split.summary["sessionized"] is True


# -- SEQ-last split ----------------------------------------------------------------------------
def test_seq_last_split_holds_out_last_two_items():
    rows = [("s", item, T0 + i * MINUTE) for i, item in enumerate("abcde")]
    split = seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=0))
    ids = split.item_ids
    assert ids[split.train_items[0]].tolist() == ["a", "b", "c"]
    assert ids[split.valid.inputs[0]].tolist() == ["a", "b", "c"]
    assert ids[split.valid.targets[0]] == "d"
    assert ids[split.test.inputs[0]].tolist() == ["a", "b", "c", "d"]
    assert ids[split.test.targets[0]] == "e"
    assert split.test.train_rows[0] == 0


def test_input_is_cut_to_the_most_recent_max_seq_len_items_but_history_is_whole():
    rows = [("s", f"i{i}", T0 + i) for i in range(10)]
    split = seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=0, max_seq_len=3))
    ids = split.item_ids
    assert ids[split.test.inputs[0]].tolist() == ["i6", "i7", "i8"]
    assert len(split.test.histories[0]) == 9


def test_short_sequences_are_training_only():
    rows = [
        ("short", "a", T0),
        ("short", "b", T0 + 1),
        ("long", "a", T0),
        ("long", "b", T0 + 1),
        ("long", "c", T0 + 2),
    ]
    split = seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=0))
    assert split.test.sequence_ids.tolist() == ["long"]
    assert split.train_sequence_ids.tolist() == ["short", "long"]
    assert split.item_ids[split.train_items[0]].tolist() == ["a", "b"]


def test_items_rare_in_training_are_dropped_before_the_split_is_made():
    rows = []
    for s in range(4):
        rows += [
            (f"s{s}", "x", T0),
            (f"s{s}", "y", T0 + 1),
            (f"s{s}", "z", T0 + 2),
            (f"s{s}", "w", T0 + 3),
        ]
    rows += [("s0", "t", T0 + 4)]  # a test target: never counted
    rows += [("s1", "t", T0 + 4), ("s1", "r", T0 + 5)]
    # Raw training parts: s0 x y z, s1 x y z w, s2 x y, s3 x y -> x 4, y 4, z 2, w 1, t 0, r 0.
    split = seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=2))
    assert sorted(split.item_ids.tolist()) == ["x", "y", "z"]
    # Every sequence is now x y z: the targets moved back to catalog items.
    assert set(split.item_ids[split.test.targets].tolist()) == {"z"}
    assert set(split.item_ids[split.valid.targets].tolist()) == {"y"}
    assert split.summary["items_before_filtering"] == 6


def test_target_context_is_hour_and_weekday_with_neutral_buckets_when_unknown():
    hours, dows = time_context(np.array([T0, T0 + 15 * 3600, np.nan]))
    assert hours.tolist() == [10, 1, NEUTRAL_HOUR]
    assert dows.tolist() == [0, 1, NEUTRAL_DOW]  # Monday, then Tuesday 01:00
    date_only_hours, date_only_dows = time_context(np.array([T0]), has_time_of_day=False)
    assert date_only_hours.tolist() == [NEUTRAL_HOUR]
    assert date_only_dows.tolist() == [0]


def test_split_records_the_context_of_each_target():
    rows = [("s", item, T0 + i * 3600) for i, item in enumerate("abcd")]
    split = seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=0))
    assert split.test.hours.tolist() == [13]
    assert split.valid.hours.tolist() == [12]
    assert split.train_hours[0].tolist() == [10, 11]


def test_presplit_data_is_reproduced_exactly():
    split = seq_last_split(load_presplit(FIXTURES / "presplit"))
    ids = split.item_ids
    row = split.test.sequence_ids.tolist().index("2")
    assert ids[split.test.inputs[row]].tolist() == ["i2", "i3", "i4", "i5", "i0", "i1"]
    assert ids[split.test.targets[row]] == "i2"
    valid_row = split.valid.sequence_ids.tolist().index("2")
    assert ids[split.valid.inputs[valid_row]].tolist() == ["i2", "i3", "i4", "i5", "i0"]
    assert ids[split.valid.targets[valid_row]] == "i1"
    assert len(split.test) == 10 and "10" in split.train_sequence_ids.tolist()
    assert split.test.hours.tolist() == [NEUTRAL_HOUR] * 10


# -- loaders -----------------------------------------------------------------------------------
def test_hetrec_loader_orders_artists_by_first_tag_date_with_file_order_ties():
    events = load_hetrec_tag_sequences(FIXTURES / "hetrec")
    by_user = _sessions(events)
    assert by_user == {"2": ["52", "70", "51", "60"], "3": ["53", "51", "60"], "4": ["70"]}
    assert events.has_time_of_day is False
    assert events.timestamps[0] == dt.datetime(2008, 5, 1, tzinfo=dt.UTC).timestamp()
    assert events.artist_ids.tolist() == events.item_ids.tolist()


def test_hetrec_loader_reports_file_line_and_reason(tmp_path):
    broken = tmp_path / "user_taggedartists.dat"
    lines = (FIXTURES / "hetrec" / "user_taggedartists.dat").read_text().splitlines()
    lines[3] = "2\t52\t18\t31\t2\t2008"  # 31 February
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"user_taggedartists\.dat:4: bad integer or date"):
        load_hetrec_tag_sequences(tmp_path)


def test_csv_loader_drops_skips_and_asks_for_sessions():
    path = FIXTURES / "listens.csv"
    plays = [line for line in path.read_text().splitlines() if line.endswith(",play")]
    events = load_csv_events(path)
    assert events.needs_sessionization
    assert events.item_ids[:3].tolist() == ["tr07", "tr00", "tr01"]
    assert len(events) == len(plays)  # the skips are gone
    split = seq_last_split(events, config=SequenceConfig(vocab_min_freq=1))
    assert split.summary["sequences"] == 8 * 3  # three sessions per user, 3 hours apart
    assert len(split.test) > 0


def test_csv_loader_reports_file_line_and_reason(tmp_path):
    broken = tmp_path / "listens.csv"
    lines = (FIXTURES / "listens.csv").read_text().splitlines()
    lines[4] = "u0,tr03,ar0,yesterday,play"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"listens\.csv:5: bad timestamp 'yesterday'"):
        load_csv_events(broken)
    lines[4] = "u0,tr03,1700000540,play"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"listens\.csv:5: expected 5 columns"):
        load_csv_events(broken)


def test_mpd_loader_orders_tracks_by_pos():
    path = FIXTURES / "mpd.slice.0-29.json"
    playlist = json.loads(path.read_text())["playlists"][0]
    assert [t["pos"] for t in playlist["tracks"]] != sorted(t["pos"] for t in playlist["tracks"])
    events = load_mpd_playlists(path)
    first = events.sequence_ids == str(playlist["pid"])
    by_pos = sorted(playlist["tracks"], key=lambda t: t["pos"])
    assert events.item_ids[first].tolist() == [t["track_uri"] for t in by_pos]
    assert events.artist_ids[first].tolist() == [t["artist_uri"] for t in by_pos]
    assert np.isnan(events.timestamps).all()
    assert len(np.unique(events.sequence_ids)) == 30


def test_mpd_loader_reports_file_line_and_reason(tmp_path):
    text = (FIXTURES / "mpd.slice.0-29.json").read_text()
    broken = tmp_path / "mpd.slice.json"
    broken.write_text(text.replace('"track_uri"', '"track-uri"', 1))
    with pytest.raises(
        ValueError, match=r"mpd\.slice\.json:\d+: playlists\[0\] \(pid 1000\) tracks\[\d\]"
    ):
        load_mpd_playlists(broken)
    lines = text.splitlines()
    lines[5] = lines[5] + " }"
    broken.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"mpd\.slice\.json:6: invalid JSON"):
        load_mpd_playlists(broken)


def test_presplit_loader_reports_file_line_and_reason(tmp_path):
    folder = tmp_path / "presplit"
    shutil.copytree(FIXTURES / "presplit", folder)
    with (folder / "valid.txt").open("a") as handle:
        handle.write("99 i1\n")
    with pytest.raises(ValueError, match=r"valid\.txt:11: user 99 is not in train\.txt"):
        load_presplit(folder)
    shutil.copy(FIXTURES / "presplit" / "valid.txt", folder / "valid.txt")
    (folder / "test.txt").write_text("0 i3 i4\n")
    with pytest.raises(ValueError, match=r"test\.txt:1: expected `user target`"):
        load_presplit(folder)


def test_unknown_dataset_name_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_sequence_dataset(name="movielens", path=FIXTURES)


# -- baselines ---------------------------------------------------------------------------------
def _chain_split():
    rows = []
    for s in range(20):
        start = s % 5
        rows += [(f"s{s}", f"i{(start + i) % 8}", T0 + i) for i in range(6)]
    return seq_last_split(_events(rows), config=SequenceConfig(vocab_min_freq=1))


def test_markov_baseline_ranks_the_observed_successor_first():
    split = _chain_split()
    model = MarkovTransitions(train_items=split.train_items, n_items=split.n_items)
    index = split.item_index()
    scores = model.score([index["i0"], index["i3"]])
    assert int(np.argmax(scores)) == index["i4"]


def test_mostpop_scores_training_counts():
    split = _chain_split()
    model = MostPop(train_items=split.train_items, n_items=split.n_items)
    counts = np.bincount(np.concatenate(split.train_items), minlength=split.n_items)
    assert np.array_equal(model.score([0]), counts.astype(np.float32))


def test_session_knn_ignores_the_input_own_training_sequence():
    train_items = [np.array([0, 1, 2]), np.array([3, 4, 5]), np.array([0, 1, 6])]
    model = SessionKNN(train_items=train_items, n_items=7, n_neighbours=1)
    with_self = model.score_batch([np.array([0, 1, 2])], [0], [0])[0]
    without_self = model.score_batch([np.array([0, 1, 2])], [0], [0], train_rows=np.array([0]))[0]
    assert with_self[2] > 0.1 and with_self[6] < 1e-3  # its own sequence is the neighbour
    assert without_self[6] > 0.1 and without_self[2] < 1e-3  # the next most similar one is


def test_session_knn_neighbourhood_is_tuned_on_validation():
    split = _chain_split()
    model, trials = tune_session_knn(
        train_items=split.train_items,
        n_items=split.n_items,
        valid_cases=split.valid,
        grid=(1, 5, 10),
    )
    assert [t["n_neighbours"] for t in trials] == [1, 5, 10]
    best = max(trials, key=lambda t: t["Recall@20"])
    assert model.n_neighbours == best["n_neighbours"]
