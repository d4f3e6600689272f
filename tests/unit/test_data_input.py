"""Data a new user brings: non-finite features, numbers and words in one label column, ragged rows, malformed
JSONL, CSV-quoted TSV (`quoting:`), a seeded test sample (`task.sample`), and what `validate` finds in the data
(headers and first rows) with every other problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leanbench.data import check as data_check
from leanbench.data.files import HEAD_ROWS, read_head, read_table
from leanbench.data.loaders import load_task
from leanbench.errors import ConfigError, DataError
from leanbench.study import TaskConfig
from leanbench.study_loader import parse_study


def _load(tmp_path: Path, data: object, seed: int = 0, **task: object):
    return load_task(TaskConfig(data=data, **task), seed=seed, base_dir=tmp_path)


def _features_csv(path: Path, n: int = 40, *, labels: list | None = None) -> Path:
    labels = labels if labels is not None else [i % 3 for i in range(n)]
    path.write_text("f1,f2,label\n" + "".join(f"{i * 0.5},{i % 7},{lab}\n" for i, lab in enumerate(labels)))
    return path


def _texts_tsv(path: Path, n: int = 40) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"a {'fine' if i % 2 else 'bad'} text number {i}\t{i % 2}\n"
                                             for i in range(n)))
    return path


# --------------------------------------------------------------------------- 3. non-finite features
@pytest.mark.parametrize("value, shown", [("inf", "inf"), ("-inf", "-inf"), ("1e999", "inf"), ("Infinity", "inf")])
def test_every_non_finite_feature_is_rejected_like_nan(tmp_path, value, shown):
    (tmp_path / "t.csv").write_text("f1,f2,label\n" + "".join(
        f"{i},{value if i == 7 else i % 5},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match=rf"non-finite value \({shown}\) in .*t\.csv, column 'f2', row 7"):
        _load(tmp_path, "t.csv")


def test_non_finite_in_parquet_and_nan_keep_their_messages(tmp_path):
    frame = pd.DataFrame({"f1": np.arange(30.0), "label": np.arange(30) % 2})
    frame.loc[4, "f1"] = -np.inf
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(DataError, match=r"non-finite value \(-inf\) in .*t\.parquet, column 'f1', row 4"):
        _load(tmp_path, "t.parquet")
    frame.loc[4, "f1"] = np.nan
    frame.to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(DataError, match=r"missing value \(NaN\) in .*n\.csv, column 'f1', row 4"):
        _load(tmp_path, "n.csv")


def test_values_too_large_to_standardise(tmp_path):
    (tmp_path / "t.csv").write_text("f1,label\n" + "".join(f"{'1e308' if i % 2 else '-1e308'},{i % 2}\n"
                                                          for i in range(40)))
    with pytest.raises(DataError, match="feature column 'f1' of the training split has values too large"):
        _load(tmp_path, "t.csv")


# --------------------------------------------------------------------------- 5. messages that name the right thing
def test_a_word_among_numeric_test_labels_is_named_with_its_row(tmp_path):
    _features_csv(tmp_path / "train.csv")
    _features_csv(tmp_path / "test.csv", 12, labels=[0, 1, 2, 0, 1, 2, 0, "two", 1, 2, 0, 1])
    with pytest.raises(DataError) as info:
        _load(tmp_path, {"train": "train.csv", "test": "test.csv"})
    assert "label 'two' in test (" in str(info.value) and "test.csv, row 7)" in str(info.value)
    assert "training labels: '0', '1', '2'" in str(info.value)


def test_numbers_read_as_text_in_one_file_still_match(tmp_path):
    """A column read as text in one file ('0', '1') holds the same labels as numbers in another (0, 1)."""
    _features_csv(tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text("f1,f2,label\n1,2,0\n2,3,2\n3,4,1\n")
    (tmp_path / "test_text.jsonl").write_text("".join(json.dumps({"f1": i, "f2": i, "label": str(lab)}) + "\n"
                                                      for i, lab in enumerate([0, 2, 1])))
    a = _load(tmp_path, {"train": "train.csv", "test": "test.csv"})
    b = _load(tmp_path, {"train": "train.csv", "test": "test_text.jsonl"})
    assert a.test.y.tolist() == b.test.y.tolist() == [0, 2, 1]


def test_a_ragged_row_is_named_as_missing_a_field(tmp_path):
    rows = [f"{i * 0.1:.1f},{i * 0.2:.1f},{i * 0.3:.1f},c{i % 4}" for i in range(40)]
    rows[19] = "0.1,0.2,c1"
    (tmp_path / "t.csv").write_text("f1,f2,f3,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        _load(tmp_path, "t.csv")
    msg = str(info.value)
    assert "row 19 of" in msg and "(line 21) has 3 fields, fewer than the header's 4 (f1, f2, f3, label)" in msg
    assert "not numeric" not in msg
    tsv = "\n".join(r.replace(",", "\t") for r in ["text,label", *(f"text {i},c{i % 2}" for i in range(30))])
    (tmp_path / "t.tsv").write_text(tsv.replace("text 5\tc1", "text 5 c1") + "\n")
    with pytest.raises(DataError, match=r"row 5 of .*t\.tsv \(line 7\) has 1 field, fewer than the header's 2"):
        _load(tmp_path, "t.tsv", text="text")


def test_an_empty_last_field_is_a_missing_value_not_a_ragged_row(tmp_path):
    (tmp_path / "t.csv").write_text("f1,label\n" + "".join(f"{i},{'' if i == 3 else i % 2}\n" for i in range(30)))
    with pytest.raises(DataError, match=r"missing label in .*t\.csv, column 'label', row 3"):
        _load(tmp_path, "t.csv")


def test_a_malformed_jsonl_line_is_named_by_its_line_number(tmp_path):
    lines = [json.dumps({"text": f"doc {i}", "label": i % 2}) for i in range(30)]
    lines[12] = '{"text": "oops", "label": 1'
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl as jsonl: line 13 is not valid JSON \(Expecting ',' delimiter"):
        _load(tmp_path, "t.jsonl", text="text")
    lines[12] = "[1, 2]"
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 13 is a JSON list, not an object"):
        _load(tmp_path, "t.jsonl", text="text")


# --------------------------------------------------------------------------- 6. TSV with CSV quoting
def _quoted_tsv(path: Path) -> Path:
    rows = [f"plain text {i}\t{i % 2}" for i in range(30)]
    rows[3] = '"a ""quoted"" text"\t1'
    path.write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    return path


def test_tsv_that_looks_csv_quoted_says_how_to_read_it(tmp_path):
    _quoted_tsv(tmp_path / "t.tsv")
    with pytest.raises(DataError) as info:
        _load(tmp_path, "t.tsv", text="text")
    msg = str(info.value)
    assert "t.tsv, column 'text', row 3" in msg and "looks CSV-quoted" in msg
    assert "quoting: csv" in msg and "quoting: none" in msg
    as_csv = _load(tmp_path, {"train": "t.tsv", "quoting": "csv"}, text="text")
    verbatim = _load(tmp_path, {"train": "t.tsv", "quoting": "none"}, text="text")
    every = lambda d: set(np.concatenate([d.train.X, d.validation.X, d.test.X]).tolist())  # noqa: E731
    assert 'a "quoted" text' in every(as_csv) and '"a ""quoted"" text"' in every(verbatim)


def test_a_column_of_quoted_fields_is_detected_too(tmp_path):
    (tmp_path / "t.tsv").write_text("text\tlabel\n" + "".join(f'"text {i}"\t{i % 2}\n' for i in range(30)))
    with pytest.raises(DataError, match=r"looks CSV-quoted \(in double quotes, as 30 of the column's 30"):
        _load(tmp_path, "t.tsv", text="text")


def test_quoting_at_its_default_loads_the_same_rows(tmp_path):
    """A new setting at its default changes no fingerprint, so no cell key: TSV stays verbatim (quotes inside a
    sentence kept, as SST-2 needs), CSV stays quoted."""
    (tmp_path / "t.tsv").write_text("text\tlabel\n" + "".join(f'he said "no{i}\t{i % 2}\n' for i in range(30)))
    default = _load(tmp_path, "t.tsv", text="text")
    assert default.fingerprints == _load(tmp_path, {"train": "t.tsv", "quoting": "none"}, text="text").fingerprints
    assert default.fingerprints == _load(tmp_path, {"train": "t.tsv"}, text="text").fingerprints
    assert any(x.startswith('he said "no') for x in default.train.X)
    _features_csv(tmp_path / "f.csv")
    assert _load(tmp_path, "f.csv").fingerprints == _load(tmp_path, {"train": "f.csv", "quoting": "csv"}).fingerprints


# --------------------------------------------------------------------------- 2. a test sample
def _news(tmp_path: Path, n: int = 200) -> None:
    classes = ["world", "sports", "business", "tech"]
    counts = [0.4, 0.3, 0.2, 0.1]
    labels = [c for c, share in zip(classes, counts, strict=True) for _ in range(int(n * share))]
    for split in ("train", "test"):
        rows = [f"{split} story {i} about {lab}\t{lab}" for i, lab in enumerate(labels)]
        (tmp_path / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")


def test_classification_sample_cuts_only_the_test_split(tmp_path):
    _news(tmp_path)
    files = {"train": "train.tsv", "test": "test.tsv"}
    whole = _load(tmp_path, files, text="text")
    part = _load(tmp_path, files, text="text", sample=50)
    assert len(part.test) == 50 and len(whole.test) == 200
    assert part.fingerprints["train"] == whole.fingerprints["train"]  # builds are the full study's
    assert part.fingerprints["validation"] == whole.fingerprints["validation"]
    assert part.fingerprints["test"] != whole.fingerprints["test"]  # recorded in the evaluated split's key
    assert np.bincount(part.test.y, minlength=4).tolist() == [10, 15, 5, 20]  # stratified: 20/30/10/40% of 50
    assert set(part.test.ids) <= set(whole.test.ids) and list(part.test.ids) == sorted(
        part.test.ids, key=lambda i: int(i.split(":")[1]))  # file order
    again = _load(tmp_path, files, text="text", sample=50)
    assert again.fingerprints == part.fingerprints
    other = _load(tmp_path, files, seed=1, text="text", sample=50)
    assert other.fingerprints["test"] != part.fingerprints["test"]
    assert part.meta["test_sample"] == {"n": 50, "of": 200, "seed": 0, "stratified": True}
    assert _load(tmp_path, files, text="text", sample=500).fingerprints == whole.fingerprints


def test_sample_is_a_known_key_for_classification_and_language_modeling(tmp_path):
    base = {"name": "s", "reference": "m",
            "candidates": [{"name": "m", "model": {"arch": "mlp"}, "steps": [{"train": {}}]}]}
    study = parse_study({**base, "task": {"data": "sklearn:iris", "sample": 20}})
    assert study.task.sample == 20
    with pytest.raises(ConfigError) as info:
        parse_study({**base, "task": {"data": "sklearn:iris", "sample": 20}, "evaluate": {"split": "validation"}})
    assert any(p.startswith("task.sample: samples the test split, but evaluate.split is 'validation'")
               for p in info.value.problems)
    from leanbench.evaluate.language_modeling import load_lm_task
    from leanbench.schema.tasks import LanguageModelingTask

    (tmp_path / "docs.txt").write_text("\n\n".join(f"document number {i} has words" for i in range(30)))
    whole = load_lm_task(LanguageModelingTask(kind="language-modeling", data="docs.txt"), seed=0, base_dir=tmp_path)
    task = LanguageModelingTask(kind="language-modeling", data="docs.txt", sample=8)
    part = load_lm_task(task, seed=0, base_dir=tmp_path)
    assert len(part.test) == 8 and part.test.fingerprint != whole.test.fingerprint
    assert part.test.fingerprint == load_lm_task(task, seed=0, base_dir=tmp_path).test.fingerprint


# --------------------------------------------------------------------------- 1. validate opens the data
BASE = {"name": "v", "reference": "m",
        "candidates": [{"name": "m", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 1}}]}]}


def validate(tmp_path: Path, raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_study(yaml.safe_load(yaml.safe_dump(raw)), base_dir=tmp_path, check_data=True)
    return info.value.problems


def test_validate_reports_missing_files_and_columns_with_the_other_problems(tmp_path):
    _texts_tsv(tmp_path / "train.tsv")
    raw = {**BASE, "task": {"data": {"train": "train.tsv", "test": "gone.tsv"}, "text": "txt", "label": "y"},
           "decision": {"margin": -1}}
    found = validate(tmp_path, raw)
    assert found[0].startswith("decision.margin:")
    assert f"task.data.test: data file not found: {tmp_path / 'gone.tsv'}" in found
    assert any(p.startswith("task.label: label column 'y' not found in") for p in found)
    assert any(p.startswith("task.text: text column 'txt' not found in") and "(did you mean 'text'?)" in p
               for p in found)
    good = {**BASE, "task": {"data": {"train": "train.tsv"}, "text": "text"}}
    assert parse_study(good, base_dir=tmp_path, check_data=True).task.text == "text"
    assert parse_study({**BASE, "task": {"data": "gone.csv"}}, base_dir=tmp_path).name == "v"  # run finds it


def test_validate_checks_feature_columns_values_and_sklearn_names(tmp_path):
    _features_csv(tmp_path / "train.csv")
    (tmp_path / "test.csv").write_text("f1,label\n1,0\n")
    raw = {**BASE, "task": {"data": {"train": "train.csv", "test": "test.csv"}}}
    assert validate(tmp_path, raw) == [f"task.data.test: feature column 'f2' not found in {tmp_path / 'test.csv'}; "
                                       "available columns: f1, label"]
    raw["task"]["features"] = ["f1", "f3"]
    assert any(p.startswith("task.features: feature column 'f3' not found") for p in validate(tmp_path, raw))
    (tmp_path / "inf.csv").write_text("f1,label\n1,0\ninf,1\n")
    assert "non-finite value (inf)" in validate(tmp_path, {**BASE, "task": {"data": "inf.csv"}})[0]
    found = validate(tmp_path, {**BASE, "task": {"data": "sklearn:iris", "features": ["petal lenght (cm)"]}})
    assert found[0].startswith("task.features: no feature 'petal lenght (cm)' in sklearn:iris (did you mean")


def test_validate_reads_only_the_first_rows(tmp_path):
    rows = [f"{i},{i % 2}" for i in range(5000)]
    rows[4000] = "oops,1"
    (tmp_path / "big.csv").write_text("f1,label\n" + "\n".join(rows) + "\n")
    assert len(read_head(tmp_path / "big.csv")) == HEAD_ROWS
    parse_study({**BASE, "task": {"data": "big.csv"}}, base_dir=tmp_path, check_data=True)  # the head is fine
    with pytest.raises(DataError, match="row 4000 has 'oops'"):
        _load(tmp_path, "big.csv")
    assert len(read_table(tmp_path / "big.csv")) == 5000


def test_validate_checks_multiple_choice_and_document_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(data_check, "installed", lambda module: True)  # the hf model's transformers
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps({"q": f"question {i}?", "choices": ["a", "b"],
                                                           "answer": 0}) + "\n" for i in range(5)))
    (tmp_path / "docs.jsonl").write_text(json.dumps({"body": "a document"}) + "\n")
    lm_base = {**BASE, "candidates": [{"name": "m", "model": {"hf": "some/lm"}}]}
    mc = {**lm_base, "task": {"kind": "multiple-choice", "data": "mc.jsonl", "question": "q"}}
    assert [p.split(" in ")[0] for p in validate(tmp_path, mc)] == ["task.gold: no column 'gold'"]
    mc["task"] = {**mc["task"], "gold": "answer", "template": "Q: {question}"}
    assert [p.split(" in ")[0] for p in validate(tmp_path, mc)] == ["task.template: no column 'question'"]
    lm = {**lm_base, "task": {"kind": "language-modeling", "data": "docs.jsonl"}}
    assert [p.split(" in ")[0] for p in validate(tmp_path, lm)] == ["task.text: no column 'text'"]


def test_validate_names_the_extra_a_model_or_dataset_needs(tmp_path, monkeypatch):
    monkeypatch.setattr(data_check, "installed", lambda module: module not in ("transformers", "datasets"))
    raw = {**BASE, "task": {"data": "hf:glue:sst2", "text": "sentence"},
           "candidates": [*BASE["candidates"], {"name": "t", "model": {"hf": "some/model"}},
                          {"name": "t2", "model": {"hf": "other/model"}}]}
    found = validate(tmp_path, raw)
    assert ("candidates[1].model: a hf model needs the package 'transformers', which is not installed: "
            "pip install 'leanbench[text]'; also needed by candidates[2].model") in found
    assert any(p.startswith("task.data: hf: data needs the package 'datasets'") for p in found)
    raw["seed"] = "zero"  # the study does not validate: the raw model is still looked at
    found = validate(tmp_path, raw)
    assert found[0].startswith("seed:") and any("'transformers', which is not installed" in p for p in found)
