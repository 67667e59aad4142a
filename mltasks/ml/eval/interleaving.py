"""Team-draft interleaving (Radlinski, Kurup & Joachims 2008): two rankings compared on one list.

Each shown list is drafted from ranking A and ranking B like two captains picking teams: each
round the team with fewer picks (a coin flip when they have as many) adds its highest-ranked
item not chosen yet, so each version contributes about half of every prefix and neither owns
the top. A positive event (a like or a play) on an item credits the team that picked it.

A list is one comparison: A wins it when its items got more positive events than B's, loses
when fewer, ties when as many and more than none. A list nobody reacted to says nothing about
either ranking and carries no outcome (it counts in `lists` but not in `n`).

The summary is the preference Δ = (wins − losses) / (wins + losses + ties), the mean of the
per-list outcomes in {+1, −1, 0}: > 0 favours A. Its 95% interval is the adjusted Wald
interval of a difference of paired proportions (Bonett & Price 2012): one pseudo win and one
pseudo loss are added before the normal approximation, so that a handful of one-sided lists
(3 wins, nothing else) give a wide interval instead of a zero-width one around 1. It is
computed from the counts alone (no resampling: the dashboard and the offline replay read the
same way, and it is deterministic); the significance rule is "the interval excludes 0". The
two-sided sign test over wins against losses (ties dropped; exact binomial) is reported beside
it. Chapelle, Joachims, Radlinski & Yue (2012) evaluate interleaving outcomes the same way:
per-query outcomes, ties counted, a binomial test of wins against losses.

Everything here is numpy/scipy over plain ids: the serving side interleaves track ids, the
offline replay item indices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import betainc

TEAM_A, TEAM_B = "A", "B"
Z_95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def list_seed(*parts: Hashable) -> int:
    """A seed for one list's coin flips from what names the list (a test id, a user id, the
    rankings' heads...): the same parts draft the same list in every process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def in_share(*, test_id: int, user_id: int, share: float) -> bool:
    """Whether a listener takes part in a test that covers `share` of listeners: a stable hash
    of (test, user) mapped to [0, 1) falls below `share`, so the same listener stays in or out
    of one test in every process, and each test draws its own listeners."""
    digest = hashlib.sha256(f"interleaving:{test_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


@dataclass(frozen=True)
class InterleavedList:
    """A drafted list: its items best first and, position by position, the team ("A" or "B")
    that picked each one."""

    items: list
    teams: list[str]

    def team_of(self) -> dict:
        return dict(zip(self.items, self.teams, strict=True))


def team_draft(ranking_a: Sequence, ranking_b: Sequence, *, k: int, seed: int) -> InterleavedList:
    """Team-draft interleaving of two rankings (best first; any hashable ids) into at most k
    items. Each round the team with fewer picks adds its highest-ranked item not yet in the
    list; when both have as many a coin flip (a generator seeded by `seed`) decides who picks
    first. An item both rankings hold belongs to the team that picked it. When one ranking runs
    out the other fills the list."""
    rng = np.random.default_rng(seed)
    chosen: set = set()
    items: list = []
    teams: list[str] = []
    rankings = {TEAM_A: list(ranking_a), TEAM_B: list(ranking_b)}
    cursor = {TEAM_A: 0, TEAM_B: 0}
    picks = {TEAM_A: 0, TEAM_B: 0}

    def next_of(team: str):
        ranking = rankings[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in chosen:
            cursor[team] += 1
        return ranking[cursor[team]] if cursor[team] < len(ranking) else None

    while len(items) < k:
        candidates = {team: next_of(team) for team in (TEAM_A, TEAM_B)}
        available = [team for team, item in candidates.items() if item is not None]
        if not available:
            break
        if len(available) == 1:
            team = available[0]
        elif picks[TEAM_A] != picks[TEAM_B]:
            team = TEAM_A if picks[TEAM_A] < picks[TEAM_B] else TEAM_B
        else:
            team = TEAM_A if rng.random() < 0.5 else TEAM_B
        item = candidates[team]
        chosen.add(item)
        items.append(item)
        teams.append(team)
        picks[team] += 1
    return InterleavedList(items=items, teams=teams)


def list_outcome(*, positives_a: int, positives_b: int) -> int | None:
    """+1 when A's items got more positive events than B's, −1 when fewer, 0 for a tie with
    at least one; None for a list without any (no outcome)."""
    if positives_a == 0 and positives_b == 0:
        return None
    return int(np.sign(positives_a - positives_b))


def credit(shown: InterleavedList, positive_items: Sequence) -> tuple[int, int]:
    """(events on A's items, events on B's items): each positive event on a shown item counts
    once for the team that picked it; events on items not in the list count for nobody."""
    team_of = shown.team_of()
    counts = {TEAM_A: 0, TEAM_B: 0}
    for item in positive_items:
        if (team := team_of.get(item)) is not None:
            counts[team] += 1
    return counts[TEAM_A], counts[TEAM_B]


@dataclass(frozen=True)
class InterleavingSummary:
    """The outcomes of `lists` shown lists; `n` of them had an outcome. `delta` > 0 favours A;
    `significant` when its 95% interval excludes 0."""

    lists: int
    wins: int  # lists A won
    losses: int  # lists B won
    ties: int
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None  # two-sided sign test, wins against losses
    significant: bool

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def winner(self) -> str | None:
        """The winning team ("A" or "B") when the result is significant, else None."""
        if not self.significant:
            return None
        return TEAM_A if self.delta > 0 else TEAM_B

    def as_dict(self) -> dict:
        return {**asdict(self), "n": self.n, "winner": self.winner}


def sign_test_p_value(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial test of wins against losses at p = 1/2 (None without any)."""
    m = wins + losses
    if m == 0:
        return None
    smaller = min(wins, losses)
    if smaller == m - smaller:
        return 1.0
    # P(X <= smaller) for X ~ Binomial(m, 1/2) = I_{1/2}(m - smaller, smaller + 1).
    tail = float(betainc(m - smaller, smaller + 1, 0.5))
    return min(1.0, 2.0 * tail)


def preference_interval(wins: int, losses: int, ties: int) -> tuple[float, float] | None:
    """The 95% adjusted Wald interval of Δ (Bonett & Price 2012): p̃ = (count + 1) / (n + 2)
    for wins and losses, variance (p̃w + p̃l − (p̃w − p̃l)²) / (n + 2); clipped to [−1, 1]."""
    n = wins + losses + ties
    if n == 0:
        return None
    p_win, p_loss = (wins + 1) / (n + 2), (losses + 1) / (n + 2)
    centre = p_win - p_loss
    half_width = Z_95 * math.sqrt(max(p_win + p_loss - centre**2, 0.0) / (n + 2))
    return max(-1.0, centre - half_width), min(1.0, centre + half_width)


def summarize_outcomes(outcomes: Sequence[int | None]) -> InterleavingSummary:
    """The summary of per-list outcomes (+1, −1, 0, or None for a list without any event)."""
    values = [o for o in outcomes if o is not None]
    wins = sum(1 for o in values if o > 0)
    losses = sum(1 for o in values if o < 0)
    ties = len(values) - wins - losses
    return summarize_counts(lists=len(outcomes), wins=wins, losses=losses, ties=ties)


def summarize_counts(*, lists: int, wins: int, losses: int, ties: int) -> InterleavingSummary:
    n = wins + losses + ties
    interval = preference_interval(wins, losses, ties)
    return InterleavingSummary(
        lists=lists,
        wins=wins,
        losses=losses,
        ties=ties,
        delta=None if n == 0 else (wins - losses) / n,
        ci_low=None if interval is None else interval[0],
        ci_high=None if interval is None else interval[1],
        p_value=sign_test_p_value(wins, losses),
        significant=interval is not None and (interval[0] > 0 or interval[1] < 0),
    )


def _ids(values) -> list:
    """Plain Python ids (a numpy array's items as ints, so they key dicts like ints)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def offline_replay(
    *,
    rankings_a: Sequence[Sequence],
    rankings_b: Sequence[Sequence],
    held_out: Sequence[Sequence],
    k: int,
    seeds: Sequence[int],
) -> InterleavingSummary:
    """The interleaved comparison replayed on held-out data: for each user, their two
    rankings are drafted into one list of k (seeded by `seeds[i]`) and every held-out item
    found in it is a positive event for the team that picked it. A user with no held-out item
    in the list has no outcome, as a listener who reacted to nothing."""
    if not len(rankings_a) == len(rankings_b) == len(held_out) == len(seeds):
        raise ValueError("one ranking of each version, held-out items and a seed per user")
    outcomes = []
    for ranking_a, ranking_b, items, seed in zip(
        rankings_a, rankings_b, held_out, seeds, strict=True
    ):
        shown = team_draft(_ids(ranking_a), _ids(ranking_b), k=k, seed=int(seed))
        positives_a, positives_b = credit(shown, _ids(items))
        outcomes.append(list_outcome(positives_a=positives_a, positives_b=positives_b))
    return summarize_outcomes(outcomes)
