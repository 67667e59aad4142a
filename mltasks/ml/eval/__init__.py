"""Evaluation: full-ranking metrics, top-k ranking, and distribution drift statistics."""
