"""Scorers: every servable model behind one small contract (no ORM, no Django).

    scorer.score(context, candidates=None)   # float32 scores of every item, or of `candidates`
    scorer.top_k(context, k, exclude=None)   # (item indices best first, their scores)

A context is what a request knows (`base`): a user's history (`HistoryContext`: item indices,
optional weights, optional row in a factor model's user vectors) or a sequence
(`SequenceContext`: item indices oldest first, hour and day of week of the prediction).

Families, one module each:
- `factor.FactorScorer`: user / sequence vector · item vectors (LightGCN, EASE-SVD, the blend);
- `item_item.ItemItemScorer`: sparse item x item weights, the top k per item kept as CSR, built
  from EASE, EASE+tags or ItemKNN; a request costs |history| x k;
- `sequence.MarkovScorer` (transitions from the last item) and `sequence.SessionKNNScorer`
  (an inverted index from items to training sessions);
- `neural.NeuralSequenceScorer`: SASRec / GRU4Rec, a sequence vector · output item vectors.

`remap.RemappedScorer` puts a scorer trained on one item index into another (a model version
scored on a newer catalog), and `evaluation` ranks held-out users or sequences with any scorer
under the protocols of EVALUATION.md. Files are written and read by mltasks.ml.artifacts
(`save_scorer`, `load_scorer`).
"""
