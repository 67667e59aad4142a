"""The ML core: recommender and continuation models on numpy / scipy / torch data and plain ids.

Packages by family, each importing only those listed above it (no cycles, checked with grimp):
- `jsonable`: numpy-aware JSON for reports and artifacts;
- `data/`: interaction logs and id indexes, item tags, splits, sequence building, the dataset
  readers and the line parsing they share (`data.parsing`, also used by ingest's importers);
- `eval/`: the one top-k helper (`eval.topk`), metrics, ranking of users and of sequences,
  drift statistics;
- `cf/` | `seq/` (independent of each other): LightGCN, EASE, ItemKNN, MostPop, tag content,
  their blend and `cf.recommender`, the user recommender's entry point | the shared neural
  trainer (`seq.trainer`), SASRec, GRU4Rec, Markov chain, session-kNN and `seq.continuation`,
  the continuation model's entry point;
- `scorers/`: every servable model behind one contract (`score`, `top_k`): factor models,
  pruned sparse item-item models, Markov, session-kNN and the neural sequence models;
- `bench/` (the offline benchmark runners) | `artifacts` (the one module that names, writes and
  reads a model version's files).

Nothing here imports Django, DRF, Celery or an app (not even `mltasks.models`): it takes arrays
and ids, never model instances or querysets, so tests run it in milliseconds and the offline
benchmarks use it unchanged. The Django side (`mltasks.services`, `mltasks.training`) reads the
database and calls in.
"""
