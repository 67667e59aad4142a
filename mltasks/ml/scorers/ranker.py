"""Two stages: candidates from several scorers, ordered by a learned LightGBM `lambdarank` model.

    pipeline = RankerPipeline(scorers={"EASE": ..., "LightGCN": ...}, item_features=features,
                              context_kind="history")
    fit = fit_ranker(pipeline, contexts=valid_contexts, targets=valid_targets, seed=2020)
    pipeline = pipeline.with_booster(fit.booster)
    pipeline.top_k(context, 20, exclude=seen)

Stage 1: each candidate scorer ranks the catalog (the context's own items excluded) and gives
its top `n_candidates`; the union is the candidate set (a few hundred items).
Stage 2: one feature row per candidate, one `predict` call for the whole set (for a batch of
contexts in evaluation, one call per batch). Features (`feature_names`):
- per scorer: its score, its rank (n_candidates when it did not propose the item) and the gap to
  its best candidate's score;
- the item's log popularity;
- tag similarity: cosine of the item's tag-content vector with the mean of the context's items';
- the artist: how many context items share it, and how many other candidates do ("in the
  slate");
- the context's length; for a sequence also the hour, the day of week and whether the item's
  artist is the last item's (the transition score from the last item is the Markov scorer's
  score when a Markov scorer is among the scorers).
Items outside the candidate set score -inf: the pipeline never recommends them.

The labels are held-out items (one group per user or sequence); see `fit_ranker`. Selection must
not use the labels the ranker was fitted on (EVALUATION.md): `split_halves` gives the seeded
halves, fit on one and select on the other, then refit on all of validation for test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mltasks.ml.eval.topk import PAD, exclude_items, find_sorted, top_k_indices
from mltasks.ml.scorers.base import (
    BasePlusSparse,
    Context,
    Scorer,
    SequenceContext,
    _item_array,
    subset,
)

RANKER_NAME = "TunedIn-ranker"
DEFAULT_CANDIDATES = 100
BATCH_CONTEXTS = 256
# LightGBM's default, every core: 77,000 candidate rows (a batch of test cases) took 0.62 s to
# predict on one thread and 0.34 s on two, on this project's 2-core machine.
BATCH_PREDICT_THREADS = 0
CONTEXT_KINDS = ("history", "sequence")


@dataclass(frozen=True)
class RankerParams:
    """LightGBM settings (fixed, not tuned: the ranker is trained once per run)."""

    n_estimators: int = 150
    learning_rate: float = 0.08
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    truncation_level: int = 30
    # One thread: OpenMP threads spin when cores are busy (a web process, a worker, training):
    # 150 rounds on 13,500 rows took 1.7 s with one thread and 13.9 s with two on a loaded
    # 2-core machine.
    num_threads: int = 1
    # Training keeps every relevant candidate of a group and this many others, drawn with the
    # seed: lambdarank's cost grows with the group size squared, and far-down candidates teach
    # it little. Evaluation and serving rank every candidate.
    negatives_per_group: int = 50

    def lightgbm(self, seed: int) -> dict:
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [20],
            "lambdarank_truncation_level": self.truncation_level,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


@dataclass(frozen=True, eq=False)
class ItemFeatures:
    """What the ranker knows of each item: log popularity, tag-content vector (unit rows, zero
    without tags) and artist index (-1 unknown)."""

    log_popularity: np.ndarray
    content: np.ndarray | None = None
    artist: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        *,
        popularity: np.ndarray,
        content: np.ndarray | None = None,
        artist: np.ndarray | None = None,
    ) -> ItemFeatures:
        log_popularity = np.log1p(np.maximum(np.asarray(popularity, np.float64), 0.0))
        if content is not None:
            content = np.asarray(content, dtype=np.float32)
            norms = np.linalg.norm(content, axis=1, keepdims=True)
            content = np.where(norms > 0, content / np.maximum(norms, 1e-12), 0.0)
            content = content.astype(np.float32) if content.shape[1] else None
        if artist is not None:
            artist = np.asarray(artist, dtype=np.int64)
            artist = artist if (artist >= 0).any() else None
        return cls(log_popularity.astype(np.float32), content, artist)

    @property
    def n_items(self) -> int:
        return int(self.log_popularity.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"log_popularity": self.log_popularity}
        if self.content is not None:
            arrays["content"] = self.content
        if self.artist is not None:
            arrays["artist"] = self.artist
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ItemFeatures:
        return cls(
            arrays["log_popularity"].astype(np.float32),
            arrays.get("content"),
            arrays.get("artist"),
        )


@dataclass
class CandidateBlock:
    """Candidates and their feature rows for a batch of contexts (rows of context i are
    `features[offsets[i]:offsets[i + 1]]`)."""

    candidates: list[np.ndarray]
    features: np.ndarray
    offsets: np.ndarray

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


class RankerPipeline(Scorer):
    """Candidates from `candidate_scorers` (default: every scorer), features from every scorer
    in `scorers` (order matters: it names the features), ordered by `booster`."""

    family = "ranker"

    def __init__(
        self,
        *,
        scorers: dict[str, Scorer],
        item_features: ItemFeatures,
        context_kind: str,
        booster=None,
        n_candidates: int = DEFAULT_CANDIDATES,
        candidate_scorers: Sequence[str] | None = None,
        name: str = RANKER_NAME,
    ):
        if not scorers:
            raise ValueError("a ranker needs at least one scorer")
        if context_kind not in CONTEXT_KINDS:
            raise ValueError(f"context_kind must be one of {CONTEXT_KINDS}")
        sizes = {scorer.n_items for scorer in scorers.values()} | {item_features.n_items}
        if len(sizes) != 1:
            raise ValueError(f"every scorer and the item features must share one catalog: {sizes}")
        self.scorers = dict(scorers)
        self.candidate_scorers = tuple(candidate_scorers or self.scorers)
        unknown = set(self.candidate_scorers) - set(self.scorers)
        if unknown:
            raise ValueError(f"candidate scorers {sorted(unknown)} are not among the scorers")
        self.item_features = item_features
        self.context_kind = context_kind
        self.booster = booster
        self.n_candidates = int(n_candidates)
        self.name = name
        self.n_items = sizes.pop()

    def with_booster(self, booster) -> RankerPipeline:
        """The same stage 1 ordered by `booster`."""
        return self._copy(scorers=self.scorers, booster=booster)

    def with_scorers(self, scorers: dict[str, Scorer]) -> RankerPipeline:
        """The same ranker over other fits of its scorers (e.g. refitted on more data)."""
        if list(scorers) != list(self.scorers):
            raise ValueError(f"expected scorers {list(self.scorers)}, got {list(scorers)}")
        return self._copy(scorers=scorers, booster=self.booster)

    def _copy(self, *, scorers, booster) -> RankerPipeline:
        return RankerPipeline(
            scorers=scorers, item_features=self.item_features, context_kind=self.context_kind,
            booster=booster, n_candidates=self.n_candidates,
            candidate_scorers=self.candidate_scorers, name=self.name,
        )  # fmt: skip

    # -- features ------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        names = [f"{scorer}:{part}" for scorer in self.scorers for part in ("score", "rank", "gap")]
        names.append("log_popularity")
        if self.item_features.content is not None:
            names.append("tag_similarity")
        if self.item_features.artist is not None:
            names += ["artist_in_history", "artist_in_slate"]
        names.append("context_length")
        if self.context_kind == "sequence":
            names += ["hour", "dow"]
            if self.item_features.artist is not None:
                names.append("same_artist_as_last")
        return names

    def candidate_block(
        self, contexts: Sequence[Context], excluded: Sequence[np.ndarray] | None = None
    ) -> CandidateBlock:
        """Stage 1 and the feature rows for `contexts`; a context's own items and its `excluded`
        items are never candidates."""
        blocked = blocked_items(contexts, excluded)
        scores, tops = {}, {}
        for name, scorer in self.scorers.items():
            scores[name], tops[name] = scores_and_tops(
                scorer, contexts, blocked, k=self.n_candidates
            )
        return self.block_from_scores(contexts, scores, tops)

    def block_from_scores(
        self,
        contexts: Sequence[Context],
        scores: dict[str, np.ndarray],
        tops: dict[str, np.ndarray],
    ) -> CandidateBlock:
        """Stage 1 and the feature rows from every scorer's (contexts x catalog) `scores` (a
        dense block or a scorers.base.BasePlusSparse), its blocked items already at -inf, and
        its `tops` (best first, at least `n_candidates` per row; only the first `n_candidates`
        count)."""
        n_contexts, n_items = len(contexts), self.n_items
        tops = {name: top[:, : self.n_candidates] for name, top in tops.items()}
        # Every context's candidates at once, as sorted (context, item) keys.
        proposed = np.hstack(
            [np.zeros((n_contexts, 0), np.int64)]
            + [tops[name].astype(np.int64) for name in self.candidate_scorers]
        )
        proposer = np.repeat(np.arange(n_contexts), proposed.shape[1])
        proposed = proposed.reshape(-1)
        keys = np.unique(proposer[proposed >= 0] * n_items + proposed[proposed >= 0])
        row, items = keys // n_items, keys % n_items
        sizes = np.bincount(row, minlength=n_contexts)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        candidates = np.split(items, offsets[1:-1]) if n_contexts else []
        columns = []
        for name in self.scorers:
            item_scores = _scores_at(scores[name], row, items)
            finite = np.isfinite(item_scores)
            best = np.full(n_contexts, -np.inf, np.float32)
            np.maximum.at(best, row[finite], item_scores[finite])
            best[best == -np.inf] = 0.0
            item_scores[~finite] = np.nan
            ranks = _ranks_in(tops[name], row, items, n_items=n_items, missing=self.n_candidates)
            columns += [item_scores, ranks, item_scores - best[row]]
        columns += self._item_and_context_columns(contexts, row, items, sizes)
        width = len(self.feature_names)
        features = (
            np.column_stack(columns).astype(np.float32)
            if len(items)
            else np.zeros((0, width), np.float32)
        )
        return CandidateBlock(candidates, features, offsets)

    def _item_and_context_columns(self, contexts, row, items, sizes) -> list[np.ndarray]:
        """The columns that are not a scorer's: popularity, tags, artists, the context."""
        features, n_items = self.item_features, self.n_items
        histories = [c.items[(c.items >= 0) & (c.items < n_items)] for c in contexts]
        columns = [features.log_popularity[items]]
        if features.content is not None:
            similarity = np.zeros(len(items), np.float32)
            starts = np.cumsum(sizes) - sizes
            for i, (history, start) in enumerate(zip(histories, starts, strict=True)):
                profile = features.content[history].mean(axis=0) if len(history) else None
                if sizes[i] and profile is not None and profile.any():
                    profile = profile / np.linalg.norm(profile)
                    rows = slice(int(start), int(start + sizes[i]))
                    similarity[rows] = features.content[items[rows]] @ profile
            columns.append(similarity)
        if features.artist is not None:
            n_artists = int(features.artist.max()) + 1
            item_artist = features.artist[items]
            known = item_artist >= 0
            item_keys = row * n_artists + np.maximum(item_artist, 0)
            history_row = np.repeat(np.arange(len(contexts)), [len(h) for h in histories])
            history_artist = features.artist[np.concatenate([np.zeros(0, np.int64), *histories])]
            history_keys = (history_row * n_artists + history_artist)[history_artist >= 0]
            columns.append(np.where(known, _counts_of(item_keys, history_keys), 0))
            columns.append(np.where(known, _counts_of(item_keys, item_keys[known]) - 1, 0))
        lengths = np.array([len(np.unique(h)) for h in histories], dtype=np.int64)
        columns.append(np.log1p(lengths).astype(np.float32)[row])
        if self.context_kind == "sequence":
            hours = np.array([getattr(c, "hour", 24) for c in contexts], np.float32)
            dows = np.array([getattr(c, "dow", 7) for c in contexts], np.float32)
            columns += [hours[row], dows[row]]
            if features.artist is not None:
                last = np.array(
                    [features.artist[h[-1]] if len(h) else -1 for h in histories], np.int64
                )
                same = (features.artist[items] == last[row]) & (last[row] >= 0)
                columns.append(same.astype(np.float32))
        return columns

    # -- scoring -------------------------------------------------------------------------------
    def _predict(self, features: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """One `predict` call for every row, on one thread unless told otherwise (a request:
        see RankerParams.num_threads)."""
        if self.booster is None:
            raise ValueError("the ranker is not fitted yet (fit_ranker, then with_booster)")
        if len(features) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self.booster.predict(features, num_threads=num_threads), dtype=np.float32)

    def score_many(
        self, contexts: Sequence[Context], excluded: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """(len(contexts), n_items): the ranker's score for each candidate, -inf elsewhere."""
        result = np.full((len(contexts), self.n_items), -np.inf, dtype=np.float32)
        for start in range(0, len(contexts), BATCH_CONTEXTS):
            part = contexts[start : start + BATCH_CONTEXTS]
            part_excluded = None if excluded is None else excluded[start : start + BATCH_CONTEXTS]
            block = self.candidate_block(part, part_excluded)
            predicted = self._predict(block.features)
            for i, items in enumerate(block.candidates):
                result[start + i, items] = predicted[block.rows(i)]
        return result

    def score(self, context: Context, candidates: np.ndarray | None = None) -> np.ndarray:
        return subset(self.score_many([context])[0], candidates)

    def top_k(
        self, context: Context, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`exclude`d items are kept out of stage 1, so they never take a candidate's place.
        One `candidate_block` and one `predict` call; the block is kept for `contributions`
        on the same context object (an explanation right after a request costs no stage 1)."""
        excluded = _item_array(exclude)
        block = self.candidate_block([context], [excluded])
        self._last_block = (context, excluded.tobytes(), block)
        scores = np.full(self.n_items, -np.inf, dtype=np.float32)
        scores[block.candidates[0]] = self._predict(block.features)
        top = top_k_indices(scores, k)
        return top, scores[top]

    def contributions(
        self, context: Context, items: np.ndarray, exclude: np.ndarray | None = None
    ) -> dict[int, str]:
        """For each of `items` that is a candidate, what contributed most to its score: a
        scorer's name, or "popularity", "tags", "artist", "context"."""
        excluded = _item_array(exclude)
        last = getattr(self, "_last_block", None)
        if last is not None and last[0] is context and last[1] == excluded.tobytes():
            block = last[2]
        else:
            block = self.candidate_block([context], [excluded])
        position = {int(item): row for row, item in enumerate(block.candidates[0])}
        rows = [position[int(i)] for i in items if int(i) in position]
        if not rows or self.booster is None:
            return {}
        contrib = np.asarray(
            self.booster.predict(block.features[rows], pred_contrib=True, num_threads=1)
        )
        groups = _feature_groups(self.feature_names)
        names = list(groups)
        summed = np.column_stack([contrib[:, groups[name]].sum(axis=1) for name in names])
        best = summed.argmax(axis=1)
        chosen = [int(block.candidates[0][row]) for row in rows]
        return {item: names[b] for item, b in zip(chosen, best, strict=True)}

    def feature_importances(self) -> dict[str, float]:
        """Total gain of each feature in the booster, largest first."""
        if self.booster is None:
            return {}
        gains = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.feature_names, gains.tolist(), strict=True), key=lambda p: -p[1])
        return {name: float(gain) for name, gain in pairs}

    # -- saving (mltasks.ml.artifacts saves the components and the booster) --------------------
    def params(self) -> dict:
        return {
            "name": self.name,
            "scorers": list(self.scorers),
            "candidate_scorers": list(self.candidate_scorers),
            "n_candidates": self.n_candidates,
            "context_kind": self.context_kind,
            "feature_names": self.feature_names,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return self.item_features.arrays()


def blocked_items(
    contexts: Sequence[Context], excluded: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """What a context may not be offered: its own items and its `excluded` ones."""
    return [
        np.union1d(context.items, _item_array(None if excluded is None else excluded[i]))
        for i, context in enumerate(contexts)
    ]


def scores_and_tops(
    scorer: Scorer, contexts: Sequence[Context], blocked: Sequence[np.ndarray], *, k: int
) -> tuple[np.ndarray | BasePlusSparse, np.ndarray]:
    """The scorer's scores of `contexts`, each one's `blocked` items at -inf, and its k best
    items per context (top_k_indices' order and padding). A scorer whose scores are a shared
    row plus sparse rows (`score_parts`) gives them as such and is ranked from its entries:
    no (contexts x catalog) block; any other gives its dense block."""
    return blocked_and_cut(unmasked_scores(scorer, contexts), blocked, k=k)


def unmasked_scores(scorer: Scorer, contexts: Sequence[Context]) -> np.ndarray | BasePlusSparse:
    """The scorer's scores of `contexts`: its BasePlusSparse when it has that form (nothing
    catalog-wide made), else its dense block."""
    parts = scorer.score_parts(contexts)
    return scorer.score_many(contexts) if parts is None else parts


def blocked_and_cut(
    scores: np.ndarray | BasePlusSparse, blocked: Sequence[np.ndarray], *, k: int
) -> tuple[np.ndarray | BasePlusSparse, np.ndarray]:
    """`scores` with each context's `blocked` items at -inf (a dense block in place), and its
    k best items per context."""
    if isinstance(scores, BasePlusSparse):
        scores = scores.with_blocked(blocked)
        return scores, scores.top_k(k)
    block = exclude_items(scores, blocked, in_place=True)
    return block, top_k_indices(block, k)


def _scores_at(scores, row: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float32 scores of (row, item) pairs from a dense block or a BasePlusSparse."""
    if isinstance(scores, BasePlusSparse):
        return scores.at(row, items)
    return np.asarray(scores)[row, items].astype(np.float32)


def _ranks_in(
    tops: np.ndarray, row: np.ndarray, items: np.ndarray, *, n_items: int, missing: int
) -> np.ndarray:
    """Position of each (row, item) in `tops[row]` (ranked, PAD-padded), `missing` if absent."""
    places = np.broadcast_to(np.arange(tops.shape[1]), tops.shape)
    shown = tops >= 0
    top_keys = (np.nonzero(shown)[0] * n_items + tops[shown]).astype(np.int64)
    order = np.argsort(top_keys, kind="stable")
    top_keys, top_places = top_keys[order], places[shown][order]
    place, found = find_sorted(top_keys, row * n_items + items)
    return np.where(found, top_places[place] if len(top_places) else missing, missing).astype(
        np.float32
    )


def _counts_of(keys: np.ndarray, among: np.ndarray) -> np.ndarray:
    """How many times each of `keys` occurs in `among`."""
    values, counts = np.unique(among, return_counts=True)
    place, found = find_sorted(values, keys)
    return np.where(found, counts[place] if len(counts) else 0, 0)


def _feature_groups(feature_names: list[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for column, name in enumerate(feature_names):
        if ":" in name:
            group = name.split(":", 1)[0]
        elif name == "log_popularity":
            group = "popularity"
        elif name == "tag_similarity":
            group = "tags"
        elif "artist" in name:
            group = "artist"
        else:
            group = "context"
        groups.setdefault(group, []).append(column)
    return groups


# ----------------------------------------------------------------------------- fitting


@dataclass
class CandidateRows:
    """Stage 1 and the features of many contexts, computed once: the same rows serve fitting
    the ranker on one half, fitting it on all, and ranking the other half."""

    candidates: list[np.ndarray]
    features: list[np.ndarray]

    def take(self, rows: np.ndarray) -> CandidateRows:
        rows = np.asarray(rows, dtype=np.int64).tolist()
        return CandidateRows([self.candidates[r] for r in rows], [self.features[r] for r in rows])

    def __len__(self) -> int:
        return len(self.candidates)


def candidate_rows(
    pipeline: RankerPipeline,
    contexts: Sequence[Context],
    excluded: Sequence[np.ndarray] | None = None,
) -> CandidateRows:
    candidates, features = [], []
    for start in range(0, len(contexts), BATCH_CONTEXTS):
        part = contexts[start : start + BATCH_CONTEXTS]
        part_excluded = None if excluded is None else excluded[start : start + BATCH_CONTEXTS]
        block = pipeline.candidate_block(part, part_excluded)
        candidates += block.candidates
        features += [block.features[block.rows(i)] for i in range(len(block.candidates))]
    return CandidateRows(candidates, features)


def rank_rows(pipeline: RankerPipeline, rows: CandidateRows, *, k: int) -> np.ndarray:
    """(len(rows), k) items best first by the pipeline's booster (PAD-padded).

    The rows of many contexts (evaluation, in a training process) are predicted on every core
    (BATCH_PREDICT_THREADS), as torch scores there: one parallel region per call, so none of the
    spinning between boosting rounds that made fitting slower on two threads."""
    result = np.full((len(rows), k), PAD, dtype=np.int64)
    if len(rows) == 0:
        return result
    predicted = pipeline._predict(np.vstack(rows.features), num_threads=BATCH_PREDICT_THREADS)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in rows.candidates])])
    for i, items in enumerate(rows.candidates):
        scores = predicted[offsets[i] : offsets[i + 1]]
        top = top_k_indices(scores, k)
        result[i, : len(top)] = items[top]
    return result


@dataclass
class RankerFit:
    booster: object
    groups: int  # contexts with a held-out item among their candidates (the training groups)
    contexts: int
    candidate_recall: float  # share of held-out items that stage 1 proposed
    mean_candidates: float
    params: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """What a report shows of the fit (no booster)."""
        return {
            "contexts": self.contexts,
            "groups": self.groups,
            "candidate_recall": round(self.candidate_recall, 4),
            "mean_candidates": round(self.mean_candidates, 1),
        }


def split_halves(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of range(n) into a fitting half and a selection half (sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half:])


def fit_ranker(
    pipeline: RankerPipeline,
    *,
    targets: Sequence[np.ndarray],
    contexts: Sequence[Context] | None = None,
    excluded: Sequence[np.ndarray] | None = None,
    rows: CandidateRows | None = None,
    seed: int,
    params: RankerParams | None = None,
) -> RankerFit:
    """Fit the booster on `contexts` (or their precomputed candidate `rows`): a candidate is
    relevant when it is one of the context's `targets` (held-out item indices); contexts with
    no relevant candidate carry no gradient and are left out."""
    import lightgbm

    params = params or RankerParams()
    if rows is None:
        rows = candidate_rows(pipeline, contexts, excluded)
    rng = np.random.default_rng(seed)
    features, labels, groups = [], [], []
    proposed, held_out, n_candidates = 0, 0, 0
    for i, items in enumerate(rows.candidates):
        target = _item_array(targets[i])
        relevant = np.isin(items, target)
        proposed += int(relevant.sum())
        held_out += len(np.unique(target))
        n_candidates += len(items)
        if relevant.any() and len(items) > 1:
            kept = np.flatnonzero(relevant)
            others = np.flatnonzero(~relevant)
            if len(others) > params.negatives_per_group:
                others = np.sort(rng.choice(others, params.negatives_per_group, replace=False))
            kept = np.sort(np.concatenate([kept, others]))
            features.append(rows.features[i][kept])
            labels.append(relevant[kept].astype(np.float32))
            groups.append(len(kept))
    if not groups:
        raise ValueError("no context has a held-out item among its candidates: nothing to learn")
    dataset = lightgbm.Dataset(
        np.vstack(features), label=np.concatenate(labels), group=groups,
        feature_name=[name.replace(":", "__") for name in pipeline.feature_names],
        free_raw_data=True,
    )  # fmt: skip
    booster = lightgbm.train(params.lightgbm(seed), dataset, num_boost_round=params.n_estimators)
    return RankerFit(
        booster=booster,
        groups=len(groups),
        contexts=len(rows),
        candidate_recall=proposed / max(held_out, 1),
        mean_candidates=n_candidates / max(len(rows), 1),
        params={**params.__dict__, "n_candidates": pipeline.n_candidates},
    )


def sequence_contexts(cases, *, own_sessions: bool = False) -> list[SequenceContext]:
    """The contexts of SEQ-last evaluation cases (inputs with their prediction time).

    `own_sessions`: each context names its case's training row (`SequenceContext.own_session`),
    for scorers fitted on that same split's training sequences."""
    rows = cases.train_rows if own_sessions else np.full(len(cases), -1, dtype=np.int64)
    return [
        SequenceContext(items=items, hour=int(hour), dow=int(dow), own_session=int(row))
        for items, hour, dow, row in zip(
            cases.inputs, cases.hours, cases.dows, rows.tolist(), strict=True
        )
    ]


__all__ = [
    "RANKER_NAME",
    "CandidateRows",
    "candidate_rows",
    "rank_rows",
    "ItemFeatures",
    "RankerFit",
    "RankerParams",
    "RankerPipeline",
    "blocked_items",
    "fit_ranker",
    "sequence_contexts",
    "split_halves",
]
