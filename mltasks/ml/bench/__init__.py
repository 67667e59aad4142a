"""Benchmark runners: the CF-random and SEQ-last protocols on dataset files."""
