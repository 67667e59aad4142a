"""Collaborative filtering: LightGCN, EASE, ItemKNN, MostPop, tag content, their blend, and the
user recommender entry point that trains them and serves one dot-product model."""
