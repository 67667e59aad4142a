"""Sessions, vocabulary and the SEQ-last split (EVALUATION.md) for continuation models.

Decisions, each covered by a test in mltasks/tests/test_ml_sequences.py:
- Sessions: a user's events sorted by time (a stable sort, so equal timestamps keep their input
  order); a new session starts when the gap to the previous event is `session_gap_min` minutes
  or more. EVALUATION.md keeps events together when their gap is *under* 45 minutes, so a gap of
  exactly 45 minutes splits. Single-event sessions are kept (they count as training data for
  popularity and session-kNN, and are never evaluated).
- Vocabulary: items seen fewer than `vocab_min_freq` times in the *training* parts of the
  SEQ-last split of the raw sequences are dropped from every sequence, and the split is then made
  on what remains, so every target is a catalog item (a dropped last item moves the targets one
  step back). One round only: repeating it until every item has enough training occurrences
  cascades on data where items sit at fixed positions (an album's last tracks are always
  targets, then the tracks before them become targets, ...).
- SEQ-last: per sequence of at least 3 items, the last item is the test target, the one before
  it the validation target, the rest training. Shorter sequences are training only. The model
  input is the most recent `max_seq_len` items before the target; the history used to exclude
  already-present items is everything before the target.
- Context of a target: hour of day and day of week (Monday = 0) of its timestamp in UTC;
  a missing timestamp gives the neutral buckets NEUTRAL_HOUR / NEUTRAL_DOW, and so does the
  hour of a dataset whose timestamps are dates only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mltasks.ml.data.seq_datasets import ROLE_TEST, ROLE_TRAIN, ROLE_VALID, SequenceEvents

NEUTRAL_HOUR = 24
NEUTRAL_DOW = 7
N_HOUR_BUCKETS = NEUTRAL_HOUR + 1
N_DOW_BUCKETS = NEUTRAL_DOW + 1
SECONDS_PER_DAY = 86_400
MIN_EVALUATED_LENGTH = 3  # one input item, a validation target and a test target


@dataclass(frozen=True)
class SequenceConfig:
    session_gap_min: float = 45.0
    vocab_min_freq: int = 5
    max_seq_len: int = 50


def time_context(
    timestamps: np.ndarray, *, has_time_of_day: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day 0-23, day of week 0-6 with Monday = 0) in UTC; NaN -> neutral buckets."""
    timestamps = np.asarray(timestamps, dtype=np.float64)
    known = np.isfinite(timestamps)
    seconds = np.where(known, timestamps, 0.0)
    days = np.floor(seconds / SECONDS_PER_DAY)
    hours = np.floor((seconds - days * SECONDS_PER_DAY) / 3600).astype(np.int64)
    dows = ((days.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    if not has_time_of_day:
        hours = np.full_like(hours, NEUTRAL_HOUR)
    hours[~known] = NEUTRAL_HOUR
    dows[~known] = NEUTRAL_DOW
    return hours, dows


def _first_appearance_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes numbered by first appearance (so sorting by them keeps input order)."""
    _, first_index, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first_index), dtype=np.int64)
    rank[np.argsort(first_index, kind="stable")] = np.arange(len(first_index))
    return rank[inverse.reshape(-1)]


def sessionize(events: SequenceEvents, *, session_gap_min: float = 45.0) -> SequenceEvents:
    """Cut each user's events into sessions; sequence ids become `<user>#<session number>`."""
    if len(events) == 0:
        return events
    timestamps = np.asarray(events.timestamps, dtype=np.float64)
    if not np.isfinite(timestamps).all():
        raise ValueError("sessionize needs a timestamp on every event")
    user_codes = _first_appearance_codes(events.sequence_ids)
    order = np.lexsort((timestamps, user_codes))  # lexsort is stable: ties keep input order
    users = user_codes[order]
    sorted_times = timestamps[order]
    new_user = np.r_[True, users[1:] != users[:-1]]
    long_gap = np.r_[True, np.diff(sorted_times) >= session_gap_min * 60.0]
    starts = new_user | long_gap
    session_number = np.cumsum(starts)
    # Number sessions from 0 within each user.
    first_session_of_user = session_number[new_user]
    user_start_session = np.repeat(
        first_session_of_user, np.diff(np.r_[np.flatnonzero(new_user), len(users)])
    )
    within_user = session_number - user_start_session
    original_users = np.asarray(events.sequence_ids)[order]
    sequence_ids = np.char.add(
        np.char.add(original_users.astype(str), "#"), within_user.astype(str)
    )
    return SequenceEvents(
        sequence_ids=sequence_ids,
        item_ids=np.asarray(events.item_ids)[order],
        timestamps=sorted_times,
        artist_ids=None if events.artist_ids is None else np.asarray(events.artist_ids)[order],
        has_time_of_day=events.has_time_of_day,
        needs_sessionization=False,
        roles=None,
        name=events.name,
    )


@dataclass
class EvalCases:
    """One row per evaluated sequence: its input, history, target and the target's context."""

    sequence_ids: np.ndarray
    inputs: list[np.ndarray]  # item indices, oldest first, at most max_seq_len
    histories: list[np.ndarray]  # every item before the target (excluded from the ranking)
    targets: np.ndarray
    hours: np.ndarray
    dows: np.ndarray
    train_rows: np.ndarray  # row of the same sequence in SeqSplit.train_items, -1 if none

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, rows: np.ndarray) -> EvalCases:
        """The cases at positions `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return EvalCases(
            sequence_ids=self.sequence_ids[rows],
            inputs=[self.inputs[r] for r in rows.tolist()],
            histories=[self.histories[r] for r in rows.tolist()],
            targets=self.targets[rows],
            hours=self.hours[rows],
            dows=self.dows[rows],
            train_rows=self.train_rows[rows],
        )


@dataclass
class SeqSplit:
    item_ids: np.ndarray  # item index -> original id
    train_sequence_ids: np.ndarray
    train_items: list[np.ndarray]  # training part of each sequence, item indices in time order
    train_hours: list[np.ndarray]  # context of each training event (as a prediction target)
    train_dows: list[np.ndarray]
    valid: EvalCases
    test: EvalCases
    max_seq_len: int
    item_artist: np.ndarray | None = None  # item index -> artist index, -1 unknown
    artist_ids: np.ndarray | None = None  # artist index -> original id
    summary: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index(self) -> dict[str, int]:
        return {item_id: index for index, item_id in enumerate(self.item_ids.tolist())}


@dataclass
class _Sequence:
    sequence_id: str
    codes: np.ndarray  # global item codes
    timestamps: np.ndarray
    roles: np.ndarray | None


def group_sequences(events: SequenceEvents) -> tuple[list[_Sequence], np.ndarray]:
    """Group events by sequence (first-appearance order) and sort each by time when it can.

    Returns the sequences with items as integer codes and the code -> original id array.
    """
    item_vocabulary, item_codes = np.unique(np.asarray(events.item_ids), return_inverse=True)
    item_codes = item_codes.reshape(-1)
    sequence_codes = _first_appearance_codes(np.asarray(events.sequence_ids))
    order = np.argsort(sequence_codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(sequence_codes[order])) + 1
    timestamps = np.asarray(events.timestamps, dtype=np.float64)
    sequences = []
    for rows in np.split(order, boundaries):
        if len(rows) == 0:
            continue
        times = timestamps[rows]
        if np.isfinite(times).all():
            rows = rows[np.argsort(times, kind="stable")]
        sequences.append(
            _Sequence(
                sequence_id=str(events.sequence_ids[rows[0]]),
                codes=item_codes[rows],
                timestamps=timestamps[rows],
                roles=None if events.roles is None else np.asarray(events.roles)[rows],
            )
        )
    return sequences, item_vocabulary


def _training_part(length: int) -> int:
    """Number of leading events that are training events in a sequence of this length."""
    return length - 2 if length >= MIN_EVALUATED_LENGTH else length


def _training_vocabulary(sequences: list[_Sequence], n_codes: int, min_freq: int) -> np.ndarray:
    """Boolean keep-mask over item codes: at least min_freq occurrences in training parts."""
    empty = np.array([], dtype=np.int64)
    training = [s.codes[: _training_part(len(s.codes))] for s in sequences]
    counts = np.bincount(np.concatenate([*training, empty]), minlength=n_codes)
    return counts >= max(min_freq, 1) if min_freq > 0 else np.ones(n_codes, dtype=bool)


def _artist_mapping(
    events: SequenceEvents, item_ids: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if events.artist_ids is None:
        return None, None
    item_position = {item_id: index for index, item_id in enumerate(item_ids.tolist())}
    artist_of_item = np.full(len(item_ids), "", dtype=object)
    assigned = np.zeros(len(item_ids), dtype=bool)
    for item_id, artist_id in zip(
        events.item_ids.tolist(), events.artist_ids.tolist(), strict=True
    ):
        index = item_position.get(item_id)
        if index is not None and not assigned[index]:  # an item's artist is its first one seen
            artist_of_item[index] = artist_id
            assigned[index] = True
    known = artist_of_item != ""
    artist_ids, artist_codes = np.unique(artist_of_item[known].astype(str), return_inverse=True)
    item_artist = np.full(len(item_ids), -1, dtype=np.int64)
    item_artist[known] = artist_codes.reshape(-1)
    return item_artist, artist_ids


def _eval_cases(rows: list[tuple], max_seq_len: int) -> EvalCases:
    """rows: (sequence id, items before target, target, hour, dow, train row)."""
    return EvalCases(
        sequence_ids=np.array([r[0] for r in rows], dtype=str) if rows else np.array([], dtype=str),
        inputs=[r[1][-max_seq_len:] for r in rows],
        histories=[r[1] for r in rows],
        targets=np.array([r[2] for r in rows], dtype=np.int64),
        hours=np.array([r[3] for r in rows], dtype=np.int64),
        dows=np.array([r[4] for r in rows], dtype=np.int64),
        train_rows=np.array([r[5] for r in rows], dtype=np.int64),
    )


def seq_last_split(events: SequenceEvents, *, config: SequenceConfig | None = None) -> SeqSplit:
    """SEQ-last split with vocabulary filtering (module docstring); pre-split data kept as is."""
    config = config or SequenceConfig()
    if events.roles is not None:
        return presplit_split(events, max_seq_len=config.max_seq_len)
    n_raw_events = len(events)
    sessionized = events.needs_sessionization
    if sessionized:
        events = sessionize(events, session_gap_min=config.session_gap_min)
    sequences, code_ids = group_sequences(events)
    keep = _training_vocabulary(sequences, len(code_ids), config.vocab_min_freq)
    kept_codes = np.flatnonzero(keep)
    code_to_index = np.full(len(code_ids), -1, dtype=np.int64)
    code_to_index[kept_codes] = np.arange(len(kept_codes))
    item_ids = code_ids[kept_codes].astype(str)

    train_ids, train_items, train_hours, train_dows = [], [], [], []
    valid_rows, test_rows = [], []
    for sequence in sequences:
        mask = keep[sequence.codes]
        items = code_to_index[sequence.codes[mask]]
        if len(items) == 0:
            continue
        hours, dows = time_context(
            sequence.timestamps[mask], has_time_of_day=events.has_time_of_day
        )
        n_train = _training_part(len(items))
        train_row = -1
        if n_train > 0:
            train_row = len(train_items)
            train_ids.append(sequence.sequence_id)
            train_items.append(items[:n_train])
            train_hours.append(hours[:n_train])
            train_dows.append(dows[:n_train])
        if len(items) >= MIN_EVALUATED_LENGTH:
            for rows, position in ((valid_rows, len(items) - 2), (test_rows, len(items) - 1)):
                rows.append(
                    (
                        sequence.sequence_id,
                        items[:position],
                        items[position],
                        hours[position],
                        dows[position],
                        train_row,
                    )
                )
    item_artist, artist_ids = _artist_mapping(events, item_ids)
    n_kept_events = int(sum(len(t) for t in train_items)) + len(valid_rows) + len(test_rows)
    summary = {
        "protocol": "SEQ-last",
        "raw_events": n_raw_events,
        "sequences": len(sequences),
        "sessionized": sessionized,
        "kept_events": n_kept_events,
        "n_items": len(item_ids),
        "items_before_filtering": len(code_ids),
        "training_sequences": len(train_items),
        "training_events": int(sum(len(t) for t in train_items)),
        "valid_cases": len(valid_rows),
        "test_cases": len(test_rows),
        "session_gap_min": config.session_gap_min,
        "vocab_min_freq": config.vocab_min_freq,
        "max_seq_len": config.max_seq_len,
    }
    return SeqSplit(
        item_ids=item_ids,
        train_sequence_ids=np.array(train_ids, dtype=str),
        train_items=train_items,
        train_hours=train_hours,
        train_dows=train_dows,
        valid=_eval_cases(valid_rows, config.max_seq_len),
        test=_eval_cases(test_rows, config.max_seq_len),
        max_seq_len=config.max_seq_len,
        item_artist=item_artist,
        artist_ids=artist_ids,
        summary=summary,
    )


def presplit_split(events: SequenceEvents, *, max_seq_len: int = 50) -> SeqSplit:
    """Reproduce a given train/valid/test split exactly: no sessions, no vocabulary filter."""
    if events.roles is None:
        raise ValueError("presplit_split needs events with roles")
    sequences, item_ids = group_sequences(events)
    item_ids = item_ids.astype(str)
    train_ids, train_items, train_hours, train_dows = [], [], [], []
    valid_rows, test_rows = [], []
    for sequence in sequences:
        hours, dows = time_context(sequence.timestamps, has_time_of_day=events.has_time_of_day)
        roles = sequence.roles
        train_mask = roles == ROLE_TRAIN
        train_row = -1
        if train_mask.any():
            train_row = len(train_items)
            train_ids.append(sequence.sequence_id)
            train_items.append(sequence.codes[train_mask])
            train_hours.append(hours[train_mask])
            train_dows.append(dows[train_mask])
        for rows, role in ((valid_rows, ROLE_VALID), (test_rows, ROLE_TEST)):
            positions = np.flatnonzero(roles == role)
            if len(positions) and positions[0] > 0:
                position = positions[0]
                rows.append(
                    (
                        sequence.sequence_id,
                        sequence.codes[:position],
                        sequence.codes[position],
                        hours[position],
                        dows[position],
                        train_row,
                    )
                )
    summary = {
        "protocol": "presplit (reproduced exactly)",
        "raw_events": len(events),
        "sequences": len(sequences),
        "kept_events": len(events),
        "n_items": len(item_ids),
        "training_sequences": len(train_items),
        "training_events": int(sum(len(t) for t in train_items)),
        "valid_cases": len(valid_rows),
        "test_cases": len(test_rows),
        "max_seq_len": max_seq_len,
    }
    return SeqSplit(
        item_ids=item_ids,
        train_sequence_ids=np.array(train_ids, dtype=str),
        train_items=train_items,
        train_hours=train_hours,
        train_dows=train_dows,
        valid=_eval_cases(valid_rows, max_seq_len),
        test=_eval_cases(test_rows, max_seq_len),
        max_seq_len=max_seq_len,
        summary=summary,
    )
