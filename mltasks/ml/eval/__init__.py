"""Evaluation: the one top-k helper (`topk`), full-ranking metrics, ranking of users and of
sequences, and distribution drift statistics."""
