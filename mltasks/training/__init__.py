"""Training per model kind, called by mltasks.services.model_version_train.

`recommender` and `continuation` read their data from Postgres, train with the ML core
(mltasks.ml) and return what the version records; `publish` writes what serving reads.
Nothing here imports mltasks.services or mltasks.tasks (they call in, never the reverse).
"""
