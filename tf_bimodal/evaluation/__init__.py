"""Evaluation: cross-validation summaries, fold union, patient voting, statistics, reports."""
