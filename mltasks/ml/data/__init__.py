"""Data: interactions and id indexes, item tags, splits, sequence building, the dataset readers
and the line parsing they share (`parsing`, also used by ingest's importers)."""
