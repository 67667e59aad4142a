"""Sequences: the shared neural trainer, SASRec, GRU4Rec, Markov chain and session-kNN."""
