"""Data: interactions and id indexes, splits, sequence building, and the dataset readers."""
