"""Cells and their executors."""
