# Serving keeps no tables of its own: model versions and vectors live in mltasks.
