"""The Python API: docs/api.md's example runs as written; `import leanbench` stays light."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import leanbench

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S).group(1)
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/api.md", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert re.match(r"\d+ cells run in [\d.]+ s", lines[0])
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["wide", "narrow", "wide-int8"]
    assert "reference" in lines[1] and "speed-up 1.00x" in lines[1]
    folder = namespace["folder"]
    assert "| narrow |" in (folder / "wine.md").read_text()
    again = leanbench.run(namespace["study"], store=namespace["store"])
    assert not again.cells_run  # the API resumes like the CLI
    typed = leanbench.results("wine-mlp", store=namespace["store"])
    assert typed.to_dict()["candidates"][1]["name"] == "narrow"


def test_the_api_is_public_and_importing_it_stays_light():
    assert set(leanbench.__all__) >= {"load_study", "run", "results", "render"}
    assert (ROOT / "src" / "leanbench" / "py.typed").is_file()
    code = ("import sys, leanbench; leanbench.load_study; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
