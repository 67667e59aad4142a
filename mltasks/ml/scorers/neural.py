"""The neural sequence models (SASRec, GRU4Rec) as scorers.

The model turns the input and the prediction time into a sequence vector; scores are its dot
products with the output item vectors (the output bias folded in as one more dimension), so
this is a `FactorScorer` whose query vector comes from the network. The model itself
(seq.trainer.NeuralContinuationModel) is imported by whoever builds one, never here: torch loads
only where a neural model is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mltasks.ml.data.sequences import NEUTRAL_DOW, NEUTRAL_HOUR
from mltasks.ml.scorers.base import Context, SequenceContext
from mltasks.ml.scorers.factor import FactorScorer


class NeuralSequenceScorer(FactorScorer):
    """`model`: a trained NeuralContinuationModel. A context without a known item scores by
    `popularity` (zeros without it), as serving falls back to popular tracks."""

    family = "neural"

    def __init__(self, *, model, popularity: np.ndarray | None = None):
        super().__init__(item_vectors=model.output_item_embeddings, popularity=popularity)
        self.model = model

    def query_vector(self, context: Context) -> np.ndarray | None:
        items = context.items[(context.items >= 0) & (context.items < self.n_items)]
        if len(items) == 0:
            return None
        if isinstance(context, SequenceContext):
            return self.model.sequence_vector(items, context.hour, context.dow)
        return self.model.sequence_vector(items)

    def score_many(self, contexts: Sequence[Context]) -> np.ndarray:
        """One forward pass for every context with a known item (padded like training)."""
        scores = np.empty((len(contexts), self.n_items), dtype=np.float32)
        inputs = [c.items[(c.items >= 0) & (c.items < self.n_items)] for c in contexts]
        batch = [row for row, items in enumerate(inputs) if len(items)]
        scores[[row for row, items in enumerate(inputs) if not len(items)]] = self.popularity
        if batch:
            hours = [getattr(contexts[row], "hour", NEUTRAL_HOUR) for row in batch]
            dows = [getattr(contexts[row], "dow", NEUTRAL_DOW) for row in batch]
            vectors = self.model.sequence_vectors([inputs[row] for row in batch], hours, dows)
            vectors = np.asarray(vectors, dtype=np.float32)
            if len(batch) == len(contexts):
                # Straight into the block: no (contexts x catalog) temporary to copy from.
                np.matmul(vectors, self.item_vectors.T, out=scores)
            else:
                scores[batch] = vectors @ self.item_vectors.T
        return scores

    def params(self) -> dict:
        return {"architecture": self.model.kind, "dim": self.dim}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity}  # the network is saved by its own code

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict) -> FactorScorer:
        raise NotImplementedError("load a neural scorer with mltasks.ml.artifacts.load_scorer")
