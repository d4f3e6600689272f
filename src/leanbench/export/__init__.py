"""Exports: what leaves leanbench in forms the rest of the ecosystem reads. Everything here reads the typed
results (`leanbench.analysis`) and the store, and writes files; nothing writes to the store.

- `model.py`: a built candidate in its family's standard form (`ModelAdapter.export`) with a model card
  (`model_card.py`: `model-index` front matter that `huggingface_hub.ModelCard` parses);
- `predictions.py`: the per-example rows of every candidate, seed and perturbation (CSV or Parquet);
- `table.py`: the verdict table (CSV or Markdown);
- `mlflow_export.py`: one MLflow run per candidate;
- `bill.py`: a candidate's figures as one flat mapping of numbers, which the others share.
"""
