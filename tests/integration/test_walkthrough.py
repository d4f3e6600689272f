"""README's "Your own data: a walkthrough", followed through the CLI on a small synthetic 4-class news dataset:
the study block is taken from the README itself, so the walkthrough and this test cannot drift apart."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"world": ["election", "minister", "border", "summit", "treaty", "embassy"],
          "sports": ["match", "goal", "league", "coach", "season", "striker"],
          "business": ["stocks", "profit", "merger", "market", "shares", "earnings"],
          "tech": ["software", "chip", "startup", "robot", "app", "browser"]}
FILLER = ["the", "a", "new", "after", "over", "report", "says", "week", "big", "first", "amid", "plans"]


def leanbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leanbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


def walkthrough_study() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own data: a walkthrough", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)


def write_news(folder: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    for split, n in (("train", 240), ("test", 120)):
        rows = []
        for i in range(n):
            topic = list(TOPICS)[i % 4]
            words = rng.sample(FILLER, 5) + rng.sample(TOPICS[topic], 2)
            rng.shuffle(words)
            rows.append(f"{split}-{i},{' '.join(words)},{topic}")
        (folder / f"{split}.csv").write_text("id,headline,topic\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_the_readme_walkthrough_runs_on_a_new_csv_dataset(tmp_path):
    news = tmp_path / "news"
    news.mkdir()
    (news / "study.yaml").write_text(walkthrough_study(), encoding="utf-8")
    store = tmp_path / "db" / "leanbench.db"

    res = leanbench("validate", "news/study.yaml", cwd=tmp_path)  # 2. before the data is there
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"task.data.train: data file not found: {news / 'train.csv'}" in res.stderr
    assert f"task.data.test: data file not found: {news / 'test.csv'}" in res.stderr

    write_news(news)
    res = leanbench("validate", "news/study.yaml", cwd=tmp_path)
    assert res.returncode == 0 and "ok — study 'news', 2 candidates" in res.stdout, res.stderr

    res = leanbench("run", "news/study.yaml", "--store", str(store), "-q", cwd=tmp_path)  # 3.
    assert res.returncode == 0, res.stderr[-3000:]
    assert "cells run" in res.stderr

    res = leanbench("report", "--store", str(store), "-o", "news.html", cwd=tmp_path)  # 4.
    assert res.returncode == 0 and (tmp_path / "news.html").read_text().count("tfidf-small") > 0, res.stderr
    res = leanbench("report", "--store", str(store), "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout)
    assert results["study"] == "news" and results["reference"] == "tfidf"
    assert [c["name"] for c in results["candidates"]] == ["tfidf", "tfidf-small"]
    assert results["power"]["n"] == 120  # the whole test file
    for c in results["candidates"]:
        assert c["metrics"]["accuracy"]["value"] > 0.8
        assert c["vs_reference"]["verdict"] in {"reference", "superior", "non-inferior", "inconclusive", "inferior"}

    res = leanbench("run", "news/study.yaml", "--store", str(store), "-q", cwd=tmp_path)  # nothing run twice
    assert res.returncode == 0 and " 0 cells run" in res.stderr, res.stdout + res.stderr
