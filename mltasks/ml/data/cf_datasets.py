"""Loaders that turn files into an `Interactions` log (plus side information where a format has it).

- `hetrec-lastfm-2k`: the HetRec 2011 Last.fm 2K folder. Positives = user_artists.dat (weight = play
  count); item tags = user_taggedartists.dat counted per (artist, tag), with each tagging event's
  user kept so an evaluation can drop the events on held-out (user, artist) pairs (a user's tag on
  an artist reveals that pair); friends = user_friends.dat.
- `adjacency`: the LightGCN/NGCF release format, one "user item item ..." line per user in
  train.txt / test.txt (/ valid.txt). The given split is kept exactly; without valid.txt, validation
  is carved from train.txt per user with the seed (10%, as the second stage of CF-random).
- `csv`: rows `user,item,weight[,timestamp]`, an optional header line.

Malformed input raises parsing.DataFormatError (a ValueError) naming the file, the line and the
reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mltasks.ml.data.interactions import IdIndex, Interactions, build_csr
from mltasks.ml.data.item_tags import ItemTags
from mltasks.ml.data.parsing import (
    WHITESPACE,
    DataFormatError,
    parse_int_fields,
    parse_timestamp,
    read_delimited_rows,
)
from mltasks.ml.data.splits import DEFAULT_SEED, CFSplit

DATASETS = ("hetrec-lastfm-2k", "adjacency", "csv")


@dataclass
class Dataset:
    """What a loader returns. Optional parts are None when the format has no such information."""

    name: str
    interactions: Interactions
    item_tags: ItemTags | None = None
    friends: sp.csr_matrix | None = None  # n_users x n_users, symmetric, 1 per friendship
    item_names: dict = field(default_factory=dict)  # raw item id -> display name
    split: CFSplit | None = None  # a split given by the files (adjacency format)
    source: str = ""

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_users": self.interactions.n_users,
            "n_items": self.interactions.n_items,
            "n_interactions": len(self.interactions),
            "n_tags": len(self.item_tags.tag_names) if self.item_tags else 0,
            "n_friend_pairs": int(self.friends.nnz // 2) if self.friends is not None else 0,
            "given_split": self.split is not None,
        }


def load_dataset(name: str, path: str | Path, *, seed: int = DEFAULT_SEED) -> Dataset:
    """Load dataset `name` (one of DATASETS) from `path` (a folder, or a file for `csv`)."""
    if name == "hetrec-lastfm-2k":
        return load_hetrec_lastfm(path)
    if name == "adjacency":
        return load_adjacency(path, seed=seed)
    if name == "csv":
        return load_csv(path)
    raise ValueError(f"unknown dataset {name!r}; choose from {DATASETS}")


def _read_tsv(path: Path, n_columns: int, encoding: str = "utf-8") -> list[tuple[int, list[str]]]:
    """(line number, first n_columns fields) of a tab-separated file with a header line."""
    rows = read_delimited_rows(
        path, delimiter="\t", min_columns=n_columns, header=True, encoding=encoding
    )
    return [(line_number, fields[:n_columns]) for line_number, fields in rows]


def _read_int_tsv(path: Path, columns: list[int]) -> np.ndarray:
    """The non-negative integer `columns` of a tab-separated file with a header, as int64."""
    values = [
        parse_int_fields(fields, path=path, line_number=line_number, columns=columns)
        for line_number, fields in _read_tsv(path, max(columns) + 1)
    ]
    return np.array(values, dtype=np.int64).reshape(-1, len(columns))


def load_hetrec_lastfm(folder: str | Path) -> Dataset:
    """HetRec 2011 Last.fm 2K: 1,892 users, 17,632 artists, play counts, tags, friends."""
    folder = Path(folder)
    plays_path = folder / "user_artists.dat"
    plays = _read_int_tsv(plays_path, [0, 1, 2])
    interactions = Interactions(user_ids=plays[:, 0], item_ids=plays[:, 1], weights=plays[:, 2])

    item_tags = None
    tagged_path = folder / "user_taggedartists.dat"
    if tagged_path.exists():
        tagged = _read_int_tsv(tagged_path, [1, 2, 0])
        tag_names_by_id = {}
        tags_path = folder / "tags.dat"
        if tags_path.exists():  # tags.dat is Latin-1 (see PROVENANCE.md)
            for _, (tag_id, tag_value) in _read_tsv(tags_path, 2, encoding="latin-1"):
                tag_names_by_id[int(tag_id)] = tag_value
        known = np.array([interactions.items.get(a) for a in tagged[:, 0].tolist()])
        tagged, known = tagged[known >= 0], known[known >= 0]
        tag_ids = np.unique(tagged[:, 1])
        tag_index = IdIndex(tag_ids)
        counts = build_csr(
            known,
            tag_index.index_of(tagged[:, 1]),
            np.ones(len(known)),
            interactions.n_items,
            len(tag_ids),
        )
        names = [tag_names_by_id.get(t, str(t)) for t in tag_ids.tolist()]
        item_tags = ItemTags(
            counts=counts,
            tag_names=names,
            assignment_users=np.array([interactions.users.get(u) for u in tagged[:, 2].tolist()]),
            assignment_items=known,
            assignment_tags=tag_index.index_of(tagged[:, 1]),
        )

    friends = None
    friends_path = folder / "user_friends.dat"
    if friends_path.exists():
        pairs = _read_int_tsv(friends_path, [0, 1])
        a = np.array([interactions.users.get(u) for u in pairs[:, 0].tolist()])
        b = np.array([interactions.users.get(u) for u in pairs[:, 1].tolist()])
        keep = (a >= 0) & (b >= 0) & (a != b)
        friends = build_csr(
            np.concatenate([a[keep], b[keep]]),
            np.concatenate([b[keep], a[keep]]),
            np.ones(2 * keep.sum()),
            interactions.n_users,
            interactions.n_users,
        )
        friends.data[:] = 1.0

    item_names = {}
    artists_path = folder / "artists.dat"
    if artists_path.exists():
        for _, row in _read_tsv(artists_path, 2):
            if row[0].isdigit():
                item_names[int(row[0])] = row[1]

    return Dataset(
        name="hetrec-lastfm-2k",
        interactions=interactions,
        item_tags=item_tags,
        friends=friends,
        item_names=item_names,
        source=str(folder),
    )


def _read_adjacency(path: Path) -> dict[int, list[int]]:
    """{user: [items]} from "user item item ..." lines; blank lines are skipped."""
    lists: dict[int, list[int]] = {}
    for line_number, tokens in read_delimited_rows(path, delimiter=WHITESPACE, min_columns=1):
        numbers = parse_int_fields(tokens, path=path, line_number=line_number)
        lists.setdefault(numbers[0], []).extend(numbers[1:])
    return lists


def load_adjacency(folder: str | Path, *, seed: int = DEFAULT_SEED) -> Dataset:
    """train.txt + test.txt (+ valid.txt) of a LightGCN/NGCF release, with the split they define.

    Without valid.txt, 10% of each user's train.txt items (rounded half up, none for a user with
    fewer than 5) become validation, chosen with `seed`; the test split is exactly test.txt.
    """
    folder = Path(folder)
    parts = {}
    for part in ("train", "valid", "test"):
        path = folder / f"{part}.txt"
        if path.exists():
            parts[part] = _read_adjacency(path)
        elif part != "valid":
            raise DataFormatError(path, None, "file not found")
    user_ids = sorted({u for lists in parts.values() for u in lists})
    item_ids = sorted({i for lists in parts.values() for items in lists.values() for i in items})
    users, items = IdIndex(np.array(user_ids)), IdIndex(np.array(item_ids))

    def pairs(lists: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
        u = [user for user, its in lists.items() for _ in its]
        i = [item for its in lists.values() for item in its]
        return users.index_of(u), items.index_of(i)

    def matrix(lists: dict[int, list[int]]) -> sp.csr_matrix:
        u, i = pairs(lists)
        result = build_csr(u, i, np.ones(len(u)), len(users), len(items))
        result.data[:] = 1.0
        return result

    train = matrix(parts["train"])
    test = matrix(parts["test"])
    if "valid" in parts:
        valid = matrix(parts["valid"])
    else:
        train, valid = carve_validation(train, seed=seed)
    all_pairs = (train + valid + test).tocoo()
    interactions = Interactions(
        user_ids=users.ids[all_pairs.row],
        item_ids=items.ids[all_pairs.col],
        weights=np.ones(all_pairs.nnz),
        users=users,
        items=items,
    )
    split = CFSplit(train=train, valid=valid, test=test, seed=seed, protocol="adjacency-given")
    return Dataset(name="adjacency", interactions=interactions, split=split, source=str(folder))


def carve_validation(
    train: sp.csr_matrix, *, seed: int = DEFAULT_SEED, valid_fraction: float = 0.1
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Move round-half-up(10%) of each user's training items to validation, chosen with `seed`."""
    rng = np.random.default_rng(seed)
    train = train.tocsr()
    train.sort_indices()
    is_valid = np.zeros(train.nnz, dtype=bool)
    for user in range(train.shape[0]):
        start, end = train.indptr[user], train.indptr[user + 1]
        n_valid = int(np.floor(valid_fraction * (end - start) + 0.5))
        if n_valid:
            is_valid[start + rng.permutation(end - start)[:n_valid]] = True
    coo = train.tocoo()
    shape = train.shape

    def keep(mask: np.ndarray) -> sp.csr_matrix:
        return build_csr(coo.row[mask], coo.col[mask], coo.data[mask], *shape)

    return keep(~is_valid), keep(is_valid)


def load_csv(path: str | Path) -> Dataset:
    """`user,item,weight[,timestamp]` rows; a first line with a non-numeric weight is a header.

    The timestamp is Unix seconds or ISO 8601 (naive = UTC), kept as whole seconds.
    """
    path = Path(path)
    user_ids, item_ids, weights, timestamps = [], [], [], []
    rows = read_delimited_rows(
        path, delimiter=",", n_columns=(3, 4), layout="3 or 4 fields (user,item,weight[,timestamp])"
    )
    for line_number, row in rows:
        try:
            weight = float(row[2])
        except ValueError:
            if line_number == 1:
                continue  # header
            reason = f"weight is not a number: {row[2]!r}"
            raise DataFormatError(path, line_number, reason) from None
        if not np.isfinite(weight):
            raise DataFormatError(path, line_number, f"weight is not finite: {row[2]!r}")
        if len(row) == 4:
            try:
                timestamps.append(int(parse_timestamp(row[3])))
            except ValueError:
                raise DataFormatError(path, line_number, f"bad timestamp {row[3]!r}") from None
        elif timestamps:
            raise DataFormatError(path, line_number, "missing timestamp")
        user_ids.append(row[0].strip())
        item_ids.append(row[1].strip())
        weights.append(weight)
    if not weights:
        raise DataFormatError(path, None, "no interactions")
    if timestamps and len(timestamps) != len(weights):
        raise DataFormatError(path, None, "timestamps are given on some rows only")
    interactions = Interactions(
        user_ids=_maybe_int(user_ids),
        item_ids=_maybe_int(item_ids),
        weights=np.array(weights),
        timestamps=np.array(timestamps) if timestamps else None,
    )
    return Dataset(name="csv", interactions=interactions, source=str(path))


def _maybe_int(values: list[str]) -> np.ndarray:
    """Integer ids when every id is an integer, strings otherwise."""
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.array(values, dtype=object)
