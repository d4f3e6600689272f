"""Datasets and tasks: where examples come from and how they become model input."""
