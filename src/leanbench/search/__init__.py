"""Hyper-parameter search over a candidate's step settings (optuna), scored on the validation split."""
