"""Eval suites over prompts and models: datasets, scorers, runner, reports."""
