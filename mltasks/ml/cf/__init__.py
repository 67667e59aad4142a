"""Collaborative filtering: LightGCN, EASE, ItemKNN, MostPop, tag content and their blend."""
