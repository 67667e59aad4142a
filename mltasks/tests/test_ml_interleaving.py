"""Team-draft interleaving in the ML core: the draft is fair, credit goes to the team that
picked an item, the summary's interval and sign test, and the offline replay."""

from __future__ import annotations

import numpy as np
import pytest

from mltasks.ml.eval.interleaving import (
    InterleavedList,
    credit,
    in_share,
    list_outcome,
    list_seed,
    offline_replay,
    preference_interval,
    sign_test_p_value,
    summarize_counts,
    summarize_outcomes,
    team_draft,
)

SEEDS = range(2000)


def test_each_team_picks_first_in_about_half_of_the_lists():
    ranking_a, ranking_b = list(range(100)), list(range(100, 200))
    first_picks = [team_draft(ranking_a, ranking_b, k=10, seed=s).teams[0] for s in SEEDS]

    share_a = first_picks.count("A") / len(first_picks)
    # 2000 fair coin flips: 3 standard deviations are 0.034.
    assert 0.466 < share_a < 0.534


@pytest.mark.parametrize("k", [1, 2, 7, 10, 20])
def test_each_team_gets_half_of_the_picks_give_or_take_one(k):
    rng = np.random.default_rng(k)
    for seed in range(200):
        # Overlapping rankings of the same 30 items in different orders.
        ranking_a, ranking_b = rng.permutation(30).tolist(), rng.permutation(30).tolist()
        shown = team_draft(ranking_a, ranking_b, k=k, seed=seed)
        assert len(shown.items) == k == len(set(shown.items))
        picks_a = shown.teams.count("A")
        assert abs(picks_a - k / 2) <= 1
        # Every prefix is balanced too: neither team ever leads by more than one pick.
        running = np.cumsum([1 if team == "A" else -1 for team in shown.teams])
        assert np.abs(running).max() <= 1


def test_a_team_adds_its_highest_ranked_item_not_chosen_yet():
    shown = team_draft([1, 2, 3, 4], [2, 5, 1, 6], k=4, seed=0)
    order = {"A": [1, 2, 3, 4], "B": [2, 5, 1, 6]}

    for position, (item, team) in enumerate(zip(shown.items, shown.teams, strict=True)):
        expected = next(i for i in order[team] if i not in shown.items[:position])
        assert item == expected


def test_one_ranking_running_out_leaves_the_other_to_fill_the_list():
    shown = team_draft([1], [5, 6, 7, 8], k=4, seed=3)

    assert sorted(shown.items) == [1, 5, 6, 7]
    assert shown.team_of()[1] == "A" and shown.teams.count("B") == 3
    assert team_draft([], [], k=5, seed=0).items == []


def test_a_share_of_listeners_is_drawn_stably_and_per_test():
    chosen = {user for user in range(4000) if in_share(test_id=1, user_id=user, share=0.25)}

    assert 0.22 < len(chosen) / 4000 < 0.28
    assert chosen == {user for user in range(4000) if in_share(test_id=1, user_id=user, share=0.25)}
    other_test = {user for user in range(4000) if in_share(test_id=2, user_id=user, share=0.25)}
    assert other_test != chosen
    assert all(in_share(test_id=1, user_id=user, share=1.0) for user in range(100))


def test_the_same_seed_drafts_the_same_list():
    seed = list_seed(4, 17, (1, 2, 3))
    assert seed == list_seed(4, 17, (1, 2, 3)) != list_seed(4, 18, (1, 2, 3))
    first = team_draft(list(range(50)), list(range(49, -1, -1)), k=20, seed=seed)
    again = team_draft(list(range(50)), list(range(49, -1, -1)), k=20, seed=seed)
    assert first == again


def test_identical_rankings_show_no_preference():
    ranking = list(range(40))
    rng = np.random.default_rng(0)
    outcomes = []
    for seed in range(400):
        shown = team_draft(ranking, ranking, k=10, seed=seed)
        assert shown.items == ranking[:10]  # the same list whoever picks
        liked = rng.choice(40, size=3, replace=False).tolist()
        positives_a, positives_b = credit(shown, liked)
        outcomes.append(list_outcome(positives_a=positives_a, positives_b=positives_b))
    summary = summarize_outcomes(outcomes)

    assert summary.significant is False
    assert summary.ci_low < 0 < summary.ci_high
    assert summary.p_value > 0.05


def test_credit_goes_to_the_team_that_picked_each_item():
    shown = InterleavedList(items=[10, 20, 30, 40], teams=["B", "A", "A", "B"])

    assert credit(shown, [10, 40]) == (0, 2)
    assert credit(shown, [20, 10, 30]) == (2, 1)
    assert credit(shown, [20, 20]) == (2, 0)  # a like and a play of the same track: two events
    assert credit(shown, [99]) == (0, 0)  # not shown: nobody's
    assert credit(shown, []) == (0, 0)


def test_a_list_is_won_lost_tied_or_says_nothing():
    assert list_outcome(positives_a=2, positives_b=1) == 1
    assert list_outcome(positives_a=0, positives_b=1) == -1
    assert list_outcome(positives_a=1, positives_b=1) == 0
    assert list_outcome(positives_a=0, positives_b=0) is None


def test_the_summary_counts_outcomes_and_ignores_lists_without_any():
    summary = summarize_outcomes([1, 1, 1, -1, 0, None, None])

    assert (summary.lists, summary.wins, summary.losses, summary.ties) == (7, 3, 1, 1)
    assert summary.n == 5
    assert summary.delta == pytest.approx((3 - 1) / 5)
    assert summary.ci_low < summary.delta < summary.ci_high
    assert summary.p_value == pytest.approx(0.625)  # P(X <= 1) x 2 for X ~ Bin(4, 1/2)
    assert summary.as_dict()["n"] == 5


def test_a_few_one_sided_lists_are_not_significant_but_many_are():
    few = summarize_counts(lists=3, wins=3, losses=0, ties=0)
    many = summarize_counts(lists=30, wins=30, losses=0, ties=0)

    assert few.delta == 1.0 and few.ci_low < 0 < few.ci_high  # not a zero-width interval
    assert few.significant is False and few.winner is None
    assert many.significant is True and many.winner == "A" and many.ci_low > 0
    assert summarize_counts(lists=60, wins=5, losses=40, ties=15).winner == "B"


def test_the_interval_matches_the_adjusted_wald_formula_and_stays_in_bounds():
    low, high = preference_interval(40, 20, 40)
    p_win, p_loss = 41 / 102, 21 / 102
    half = 1.959964 * np.sqrt((p_win + p_loss - (p_win - p_loss) ** 2) / 102)
    assert (low, high) == pytest.approx((p_win - p_loss - half, p_win - p_loss + half), abs=1e-6)
    assert preference_interval(1000, 0, 0)[1] == 1.0
    assert preference_interval(0, 0, 0) is None


def test_the_sign_test_is_the_exact_two_sided_binomial():
    assert sign_test_p_value(10, 0) == pytest.approx(2 * 0.5**10)
    assert sign_test_p_value(5, 5) == 1.0
    assert sign_test_p_value(0, 0) is None
    # Symmetric, and large counts neither overflow nor underflow into nonsense.
    assert sign_test_p_value(3, 9) == sign_test_p_value(9, 3)
    assert 0.0 <= sign_test_p_value(60_000, 59_000) < 0.01


def test_a_ranking_that_puts_the_held_out_items_first_wins_the_replay():
    rng = np.random.default_rng(1)
    n_users, n_items, k = 300, 200, 20
    held_out, rankings_good, rankings_random = [], [], []
    for _ in range(n_users):
        items = rng.choice(n_items, size=3, replace=False)
        rest = np.setdiff1d(np.arange(n_items), items)
        held_out.append(items)
        rankings_good.append(np.concatenate([items, rng.permutation(rest)]))
        rankings_random.append(rng.permutation(n_items))
    seeds = [list_seed("replay", user) for user in range(n_users)]

    good_as_a = offline_replay(
        rankings_a=rankings_good, rankings_b=rankings_random, held_out=held_out, k=k, seeds=seeds
    )
    good_as_b = offline_replay(
        rankings_a=rankings_random, rankings_b=rankings_good, held_out=held_out, k=k, seeds=seeds
    )

    assert good_as_a.winner == "A" and good_as_a.delta > 0.5
    assert good_as_b.winner == "B" and good_as_b.delta < -0.5
    assert good_as_a.lists == n_users
    same = offline_replay(
        rankings_a=rankings_good, rankings_b=rankings_good, held_out=held_out, k=k, seeds=seeds
    )
    assert same.winner is None


def test_the_replay_needs_one_of_everything_per_user():
    with pytest.raises(ValueError, match="per user"):
        offline_replay(rankings_a=[[1]], rankings_b=[], held_out=[[1]], k=5, seeds=[0])
