"""CLI polish (issue 31): `-h` everywhere, `ls --json` and plain `ls`, status lines on stderr, and a missing
optional extra named in one message (Parquet data without pyarrow, `hf:` data without `datasets`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from leanbench.cli import app
from leanbench.errors import ConfigError, MissingExtraError, require
from leanbench.listing import plain_wanted
from leanbench.study_loader import load_study

STUDY = {
    "name": "polish", "seed": 0, "task": {"data": "sklearn:iris"}, "reference": "a",
    "candidates": [{"name": "a", "model": {"arch": "mlp", "hidden": [8]}, "steps": [{"train": {"epochs": 2}}]},
                   {"name": "a-int8", "from": "a", "steps": ["quantize"]}],
    "evaluate": {"bootstrap": 100, "perturbations": "none", "seeds": [0, 1]},
    "measure": {"runs": 12, "warmup": 1, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
    "integrity": {"contamination": False},
}


def cli(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The small study run once through the CLI: (store path, the run's result)."""
    folder = tmp_path_factory.mktemp("polish")
    (folder / "s.yaml").write_text(yaml.safe_dump(STUDY))
    store = folder / "db" / "lb.db"
    return store, cli("run", str(folder / "s.yaml"), "--store", str(store), "-q")


def test_dash_h_is_help_for_the_app_and_every_command():
    names = sorted(typer.main.get_command(app).commands)  # whatever commands exist, now and later
    assert {"run", "validate", "report", "ls", "demo"} <= set(names)
    for args in ([], *([n] for n in names)):
        res = cli(*args, "-h")
        assert res.exit_code == 0 and "Usage" in res.stdout, (args, res.stdout)
        assert res.stdout == cli(*args, "--help").stdout


def test_run_prints_status_on_stderr_only(ran):
    store, res = ran
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""  # nothing but the asked-for output on stdout: a run asks for none
    assert "study 'polish': " in res.stderr and "cells run" in res.stderr


def test_ls_json_lists_counts_and_the_built_model_folders(ran):
    store, _ = ran
    res = cli("ls", "--store", str(store), "--json")
    assert res.exit_code == 0 and res.stderr == ""
    listing = json.loads(res.stdout)
    assert listing["store"] == str(store)
    (study,) = listing["studies"]
    assert study["name"] == "polish" and study["last_run"]["status"] == "finished"
    by = {c["name"]: c for c in study["candidates"]}
    assert by["a-int8"]["from"] == "a" and by["a-int8"]["steps"] == ["quantize"]
    for c in by.values():
        assert c["built"] == {"done": 2, "total": 2} and c["evaluated"] == {"done": 2, "total": 2}
        assert c["measured"] == {"done": 1, "total": 1}
        assert sorted(c["artifacts"]) == ["0", "1"]
        for folder in c["artifacts"].values():  # the saved model itself: a folder with its adapter.json
            assert Path(folder).is_absolute() and (Path(folder) / "adapter.json").is_file()
    assert by["a"]["artifacts"]["0"] != by["a-int8"]["artifacts"]["0"]


def test_ls_is_plain_text_when_not_a_terminal(ran):
    store, _ = ran
    res = cli("ls", "--store", str(store))  # CliRunner's stdout is not a terminal
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("polish  (last run ") and lines[0].endswith(", finished)")
    assert lines[1].split() == ["candidate", "from", "steps", "built", "evaluated", "measured", "model", "folder"]
    row = lines[3].split()
    assert row[:6] == ["a-int8", "a", "quantize", "2/2", "2/2", "1/1"] and row[7:] == ["(+1", "seeds)"]
    folder = json.loads(cli("ls", "--store", str(store), "--json").stdout)["studies"][0]["candidates"][1]
    assert Path(row[6]).resolve() == Path(folder["artifacts"]["0"])
    assert not any(ch in res.stdout for ch in "\x1b│┃━─┏")  # no colour codes, no box drawing


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_plain_text_is_chosen_by_terminal_and_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not plain_wanted(_Terminal()) and plain_wanted(object())
    monkeypatch.setenv("NO_COLOR", "1")
    assert plain_wanted(_Terminal())
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value counts
    assert not plain_wanted(_Terminal())


def test_report_streams(ran, tmp_path):
    store, _ = ran
    res = cli("report", "--store", str(store), "-f", "json", "-o", "-")
    assert res.exit_code == 0 and json.loads(res.stdout)["study"] == "polish" and res.stderr == ""
    res = cli("report", "--store", str(store), "-f", "md", "-o", str(tmp_path / "r.md"))
    assert res.exit_code == 0 and res.stdout == "" and f"report: {tmp_path / 'r.md'}" in res.stderr
    assert "| a-int8 |" in (tmp_path / "r.md").read_text()


def test_empty_store_ls(tmp_path):
    from leanbench.store import Store

    Store.open(tmp_path / "e.db")
    assert json.loads(cli("ls", "--store", str(tmp_path / "e.db"), "--json").stdout)["studies"] == []
    assert "no studies yet" in cli("ls", "--store", str(tmp_path / "e.db")).stdout


# --------------------------------------------------------------------------- missing optional packages
def _hide(monkeypatch, *modules: str) -> None:
    """Make `import module` fail as if the package were not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _parquet_study(tmp_path: Path) -> Path:
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
    for split in ("train", "test"):
        frame.to_parquet(tmp_path / f"{split}.parquet", index=False)
    study = {**STUDY, "task": {"data": {"train": "train.parquet", "test": "test.parquet"}, "text": "text"},
             "candidates": [{"name": "a", "model": {"arch": "tfidf-logreg"}, "steps": ["train"]}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(study))
    return tmp_path / "p.yaml"


def test_parquet_without_pyarrow_is_one_message_at_validate_and_at_run(tmp_path, monkeypatch):
    path = _parquet_study(tmp_path)
    load_study(path, check_data=True)  # with pyarrow: valid
    _hide(monkeypatch, "pyarrow")
    with pytest.raises(ConfigError) as err:
        load_study(path, check_data=True)
    assert err.value.problems == [
        f"task.data.train: the Parquet file {tmp_path / 'train.parquet'} needs the package 'pyarrow', which is "
        "not installed: pip install 'leanbench[parquet]'; also needed by task.data.test"]
    res = cli("validate", str(path))
    assert res.exit_code == 2 and "pip install 'leanbench[parquet]'" in res.stderr and "Traceback" not in res.stderr
    from leanbench.data.loaders import load_task

    with pytest.raises(MissingExtraError, match=r"needs the package 'pyarrow'.*leanbench\[parquet\]"):
        load_task(load_study(path).task, seed=0, base_dir=tmp_path)


def test_hf_data_without_datasets_names_the_lm_extra(tmp_path, monkeypatch):
    study = {**STUDY, "task": {"data": "hf:./local_ds", "text": "text"},
             "candidates": [{"name": "a", "model": {"arch": "tfidf-logreg"}, "steps": ["train"]}]}
    (tmp_path / "local_ds").mkdir()
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(study))
    _hide(monkeypatch, "datasets")
    with pytest.raises(ConfigError) as err:
        load_study(tmp_path / "h.yaml", check_data=True)
    assert ("task.data: hf: data needs the package 'datasets', which is not installed: pip install 'leanbench[lm]'"
            in err.value.problems)
    from leanbench.data.hf_datasets import open_dataset

    with pytest.raises(MissingExtraError, match=r"hf: data needs the package 'datasets'.*leanbench\[lm\]"):
        open_dataset("./local_ds", None, tmp_path)


def test_require_names_only_a_missing_package(monkeypatch, tmp_path):
    assert require("json", "x", "json") is json
    with pytest.raises(MissingExtraError, match=r"^a test needs the package 'nope_not_here'.*leanbench\[ray\]'$"):
        require("nope_not_here.sub", "ray", "a test")
    (tmp_path / "broken_pkg").mkdir()  # installed, but its own import fails: not a missing extra
    (tmp_path / "broken_pkg" / "__init__.py").write_text("import nope_not_here_either\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="nope_not_here_either"):
        require("broken_pkg", "x", "a test")
