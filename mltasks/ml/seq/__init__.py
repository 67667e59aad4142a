"""Sequences: the shared neural trainer, SASRec, GRU4Rec, Markov chain, session-kNN, and the
continuation entry point that trains them all and serves the best."""
