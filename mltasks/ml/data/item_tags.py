"""Tags per item, and the tagging events behind them when users applied the tags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class ItemTags:
    """Tag counts per item (`counts`: n_items x n_tags, rows aligned with the item index).

    When the tags come from users' tagging events (HetRec), the events are kept as parallel
    index arrays: a user who tagged an artist has revealed that (user, artist) pair, so features
    used to evaluate a split must not count the events on held-out pairs (`counts_without`).
    Editorial tags (a catalog's genres) have no events and need no such care.
    """

    counts: sp.csr_matrix
    tag_names: list[str]
    assignment_users: np.ndarray | None = None  # user index of each event, -1 if unknown
    assignment_items: np.ndarray | None = None
    assignment_tags: np.ndarray | None = None

    def counts_without(self, pairs: sp.csr_matrix | None) -> sp.csr_matrix:
        """Counts rebuilt without the events whose (user, item) is a stored entry of `pairs`."""
        if pairs is None or self.assignment_users is None:
            return self.counts
        users, items = self.assignment_users, self.assignment_items
        known = users >= 0
        held = np.zeros(len(users), dtype=bool)
        held[known] = np.asarray(pairs[users[known], items[known]]).ravel() != 0
        keep = ~held
        counts = sp.csr_matrix(
            (np.ones(int(keep.sum())), (items[keep], self.assignment_tags[keep])),
            shape=self.counts.shape,
        )
        counts.sum_duplicates()
        return counts
