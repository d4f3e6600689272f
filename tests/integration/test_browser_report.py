"""The HTML report in a real browser (issue 31): headless Chromium loads the report of a small digits study and
of a small text study, with hostile payloads in the study description, a candidate name, a slice name and text
examples, each one that would change `document.title` if it ran. Each page: no console error or uncaught
exception, every plot container holds the SVG plotly drew, the title unchanged, the payloads shown as text, and
a screenshot kept under reports/browser/ (git-ignored; CI keeps it as an artifact).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, replies
and events on fd 4, JSON messages ended by a NUL byte), with the standard library only. The test skips, saying
why, only when no Chromium is installed; ``.ci/run`` installs the Debian package, so CI runs it."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import random
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from leanbench.analysis import analyse
from leanbench.report import render
from leanbench.runner.local import run_study
from leanbench.store import Store
from leanbench.study_loader import parse_study

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "reports" / "browser"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the report is not checked in a "
                                "browser (CI installs it: apt-get install chromium, in .ci/run)")

IMG = "<img src=x onerror=\"document.title='pwned'\">"
SCRIPT = "</script><script>document.title='pwned'</script>"
SVG = "<svg onload=\"document.title='pwned'\"></svg>"

DIGITS = {
    "name": "digits-browser",
    "description": f"Hostile description: {IMG} and {SCRIPT} end.",
    "seed": 0,
    "task": {"data": "sklearn:digits", "split": {"validation": 0.15, "test": 0.2}},
    "reference": "teacher",
    "candidates": [
        {"name": "teacher", "model": {"arch": "mlp", "hidden": [64]},
         "steps": [{"train": {"epochs": 2, "batch_size": 128}}]},
        {"name": "student", "model": {"arch": "mlp", "hidden": [32]},
         "steps": [{"distill": {"teacher": "teacher", "epochs": 2, "batch_size": 128}}]},
        {"name": "teacher-int8", "from": "teacher", "steps": [{"quantize": {"method": "dynamic-int8"}}]},
    ],
    "evaluate": {"bootstrap": 200, "seeds": [0, 1], "perturbations": "default"},
    "measure": {"runs": 12, "warmup": 2, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
    "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1, "slo_ms": 1.0}],
               "traffic": {"queries_per_day": 100000, "horizon_days": 30}},
    "cost": {"usd_per_hour": 0.10, "usd_per_kwh": 0.15, "co2_kg_per_kwh": 0.4},
}
# plot containers the digits report has today (forest, two trade-offs, seeds, robustness, latency, cost, break-even)
MIN_DIGITS_PLOTS = 6
TEXTS = [f"{IMG} good", f"{SCRIPT} bad", f"{SVG} good"]  # each in train and test: flagged, so shown


def _text_study(folder: Path) -> dict:
    rng = random.Random(0)
    words = {"good": ["great", "lovely", "fine"], "bad": ["awful", "dull", "poor"]}
    for split, n in (("train", 80), ("test", 40)):
        rows = [(t, t.split()[-1]) for t in TEXTS]
        for i in range(n):
            label = ("good", "bad")[i % 2]
            rows.append((" ".join(rng.sample(["the", "film", "was", "a", "plot", "very", "story"], 4)
                                  + [rng.choice(words[label]), f"{split}{i}"]), label))
        lines = ['"' + t.replace('"', '""') + f'",{label}' for t, label in rows]
        (folder / f"{split}.csv").write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return {
        "name": "text-browser", "description": f"Text study: {SVG}", "seed": 0,
        "task": {"data": {"train": str(folder / "train.csv"), "test": str(folder / "test.csv")}, "text": "text"},
        "reference": "tfidf",
        "candidates": [{"name": "tfidf", "model": {"arch": "tfidf-logreg", "ngram_max": 2}, "steps": ["train"]},
                       {"name": "tfidf-small", "model": {"arch": "tfidf-logreg", "ngram_max": 1}, "steps": ["train"]}],
        "evaluate": {"bootstrap": 200, "perturbations": "none",
                     "slices": {"labels": True, "keywords": {IMG: ["good", "great"]}}},
        "measure": {"runs": 12, "warmup": 2, "rounds": 6, "throughput_runs": 3, "throughput_warmup": 1},
        "deploy": {"profiles": [{"name": "edge", "threads": 1, "batch": 1}]},
        "integrity": {"ngram": 3, "ngram_min_coverage": 0},
    }


# --------------------------------------------------------------------------- the browser
def _high(fd: int) -> int:
    """`fd` moved to a number >= 10."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Chromium:
    """Headless Chromium over the DevTools protocol on a pipe; events are kept in `events`."""

    def __init__(self, exe: str):
        self.profile = tempfile.mkdtemp(prefix="lb-chromium-")
        to_browser, self._w = os.pipe()
        self._r, from_browser = os.pipe()
        to_browser, from_browser = _high(to_browser), _high(from_browser)  # clear of 3 and 4, which bash sets
        self.log = Path(self.profile) / "chromium.log"
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser}', "chromium", *args],
                                     pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("wb"))
        os.close(to_browser)
        os.close(from_browser)
        self._buf, self._id = b"", 0
        self.events: list[dict] = []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium sent nothing in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe; its stderr ends: "
                                   + self.log.read_text(errors="replace")[-2000:])
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._message(deadline))

    def evaluate(self, expression: str, session: str) -> object:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:60]}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


PAGE_STATE = """JSON.stringify({
  title: document.title,
  plots: Array.from(document.querySelectorAll('.plotly-graph-div'))
    .map(d => [d.id, d.querySelectorAll('svg.main-svg').length]),
  images: document.images.length,
  handlers: document.querySelectorAll('[onerror],[onload]').length,
  text: document.body.innerText
})"""


def load(browser: Chromium, page: Path, shot: Path) -> tuple[dict, list[str]]:
    """Opens `page` at 1,400 px wide, waits until every plot container holds its SVG (at most 30 s), keeps a
    full-page screenshot at `shot`; returns the page state and the errors the page reported."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
        browser.send(domain, session=session)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
    browser.wait_for("Page.loadEventFired", session, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        state = json.loads(browser.evaluate(PAGE_STATE, session))
        if all(n > 0 for _, n in state["plots"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    height = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"]
    png = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                 "clip": {"x": 0, "y": 0, "width": 1400, "height": height,
                                                          "scale": 1}}, session)
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(base64.b64decode(png["data"]))
    browser.send("Target.closeTarget", {"targetId": target})
    return state, _errors(browser.events, session)


def _errors(events: list[dict], session: str) -> list[str]:
    """Uncaught exceptions, console.error / console.assert calls and error log entries (a resource that failed
    to load, a CSP violation) of one page."""
    out = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append(f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}")
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


# --------------------------------------------------------------------------- the test
def _page_checks(name: str, html: str, state: dict, errors: list[str], shot: Path, shown: list[str]) -> None:
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert errors == [], (name, errors)
    assert state["title"] == title.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&quot;", '"').replace("&#x27;", "'") and "pwned" not in state["title"], (name, state["title"])
    assert state["images"] == 0 and state["handlers"] == 0, name  # no payload became an element
    assert state["plots"] and all(n > 0 for _, n in state["plots"]), (name, state["plots"])
    assert len(state["plots"]) == html.count('class="plotly-graph-div"'), name
    for text in shown:  # each payload is on the page as text
        assert text in state["text"], (name, text)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, name


def test_reports_render_in_chromium_and_hostile_text_stays_text(tmp_path):
    store = Store.open(tmp_path / "lb.db")
    run_study(parse_study(DIGITS), store)
    run_study(parse_study(_text_study(tmp_path)), store)
    digits = analyse(store, "digits-browser")
    renamed = json.loads(json.dumps(digits.to_dict()).replace('"student"', json.dumps(f"student {IMG}")))
    pages = {"digits": render(digits, "html"), "candidate-name": render(renamed, "html"),
             "text": render(analyse(store, "text-browser"), "html")}
    for name, html in pages.items():
        (tmp_path / f"{name}.html").write_text(html, encoding="utf-8")

    browser = Chromium(CHROMIUM)
    try:
        loaded = {name: load(browser, tmp_path / f"{name}.html", SHOTS / f"{name}.png") for name in pages}
    finally:
        browser.close()

    shown = {"digits": [IMG, SCRIPT], "candidate-name": [f"student {IMG}"], "text": [SVG, IMG, TEXTS[1]]}
    for name, (state, errors) in loaded.items():
        _page_checks(name, pages[name], state, errors, SHOTS / f"{name}.png", shown[name])
    assert len(loaded["digits"][0]["plots"]) >= MIN_DIGITS_PLOTS, loaded["digits"][0]["plots"]
