"""Energy: RAPL counters read from a fake powercap tree, the estimate fallback, short windows, CodeCarbon."""

from __future__ import annotations

import importlib.machinery
import sys
import time
import types
from pathlib import Path

import pytest

from leanbench.cost.ledger import LedgerEntry, aggregate_short_windows
from leanbench.errors import ConfigError, LeanbenchError
from leanbench.measure.energy import (
    CODECARBON_METHOD,
    RAPL_METHOD,
    EnergyConfig,
    EnergyMeter,
    codecarbon_available,
    counter_delta_uj,
    estimate_energy,
    find_rapl_zones,
)

MAX = 262_143_328_850  # max_energy_range_uj of common Intel packages


def zone(root: Path, folder: str, name: str, energy_uj: int, max_uj: int = MAX) -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(f"{name}\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def set_uj(d: Path, value: int) -> None:
    (d / "energy_uj").write_text(f"{value}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> dict[str, Path]:
    """Two packages (one about to wrap), a core sub-zone, psys and an MMIO duplicate that must not count."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type folder, not a zone
    return {
        "root": root,
        "pkg0": zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "pkg1": zone(root, "intel-rapl:1", "package-1", MAX - 500_000),
        "core": zone(root, "intel-rapl:0:0", "core", 10),
        "psys": zone(root, "intel-rapl:2", "psys", 5_000_000),
        "mmio": zone(root, "intel-rapl-mmio:0", "package-0", 7),
    }


def config(root: Path, **kw) -> EnergyConfig:
    return EnergyConfig(powercap_root=str(root), min_window_s=0.0, **kw)


# --------------------------------------------------------------------------- RAPL
def test_counted_zones_are_top_level_packages_only(powercap):
    zones, reason = find_rapl_zones(powercap["root"])
    assert [z.name for z in zones] == ["package-0", "package-1"]
    assert reason == ""


def test_top_level_dram_zone_is_counted(powercap):
    zone(powercap["root"], "intel-rapl:3", "dram", 0)
    assert [z.name for z in find_rapl_zones(powercap["root"])[0]] == ["package-0", "package-1", "dram"]


def test_rapl_energy_is_exact_across_a_wrap(powercap):
    with EnergyMeter(config(powercap["root"])) as meter:
        set_uj(powercap["pkg0"], 3_500_000)  # +2.5 J
        set_uj(powercap["pkg1"], 1_500_000)  # wraps: 0.5 J to the top, then 1.5 J
        set_uj(powercap["core"], 999_999_999)  # inside package-0: ignored
        set_uj(powercap["psys"], 99_000_000)  # superset of the packages: ignored
        set_uj(powercap["mmio"], 88_000_000)  # same counter through MMIO: ignored
    r = meter.reading
    assert meter.backend == "rapl"
    assert r.joules == 2.5 + 2.0
    assert r.kwh == pytest.approx(4.5 / 3.6e6, rel=1e-12)
    assert r.method == RAPL_METHOD and r.measured
    assert r.uncertainty_rel == 0.05
    assert not r.too_short
    assert "package-0" in r.detail and "package-1" in r.detail


def test_poll_keeps_track_of_two_wraps(powercap):
    small = 1_000_000
    d = zone(powercap["root"], "intel-rapl:0", "package-0", 100, max_uj=small)
    with EnergyMeter(config(powercap["root"])) as meter:
        set_uj(d, 900_000)  # +899,900 uJ
        meter.poll()
        set_uj(d, 800_000)  # wrap: +100,000 + 800,000
        meter.poll()
        set_uj(d, 700_000)  # wrap again: +200,000 + 700,000
    assert meter.reading.joules == pytest.approx((899_900 + 900_000 + 900_000) / 1e6, abs=1e-12)


def test_counter_delta_wraps_once():
    assert counter_delta_uj(10, 30, 100) == 20
    assert counter_delta_uj(90, 5, 100) == 15


def test_unreadable_counter_falls_back_to_the_estimate_and_says_why(powercap):
    (powercap["pkg1"] / "energy_uj").unlink()
    (powercap["pkg1"] / "energy_uj").mkdir()  # reading it fails (even as root)
    with EnergyMeter(config(powercap["root"])) as meter:
        pass
    assert meter.backend == "estimate"
    assert meter.reading.method.startswith("estimated: ")
    assert "intel-rapl:1 unreadable" in meter.reading.detail
    with pytest.raises(LeanbenchError, match="cannot be read"):
        with EnergyMeter(config(powercap["root"], backend="rapl")):
            pass


def test_rapl_window_in_which_no_counter_moved_is_too_short(powercap):
    with EnergyMeter(config(powercap["root"])) as meter:
        pass
    assert meter.reading.too_short
    assert meter.reading.joules == 0.0  # what was read; the ledger pools it, see below


# --------------------------------------------------------------------------- estimate
def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


def test_without_powercap_the_estimate_is_labelled_and_follows_the_model(tmp_path):
    cfg = EnergyConfig(powercap_root=str(tmp_path / "absent"), cpu_watts_per_core=10.0,
                       memory_watts_per_gb=0.0)
    with EnergyMeter(cfg) as meter:
        busy(0.03)
    r = meter.reading
    assert meter.backend == "estimate"
    assert r.method == "estimated: cpu 10 W/core x cpu-seconds + memory 0 W/GB x resident GB x wall-seconds"
    assert not r.measured
    assert r.cpu_s >= 0.03
    assert r.joules == pytest.approx(10.0 * r.cpu_s, rel=1e-12)
    assert r.uncertainty_rel == 0.5
    assert r.joules_low == pytest.approx(0.5 * r.joules) and r.joules_high == pytest.approx(1.5 * r.joules)
    assert "no powercap folder" in r.detail
    assert not r.too_short


def test_estimate_formula_with_memory_term():
    # 2 cpu-seconds at 7 W + 4 GB at 0.375 W/GB for 3 s = 14 + 4.5 = 18.5 J
    r = estimate_energy(cpu_s=2.0, wall_s=3.0, resident_gb=4.0)
    assert r.joules == pytest.approx(18.5)
    assert r.kwh == pytest.approx(18.5 / 3.6e6)


def test_estimate_requested_never_reads_counters(powercap):
    with EnergyMeter(config(powercap["root"], backend="estimate")) as meter:
        set_uj(powercap["pkg0"], 9_000_000_000)
    assert meter.backend == "estimate" and meter.reading.method.startswith("estimated: ")


def test_short_window_is_flagged_but_not_zero(tmp_path):
    with EnergyMeter(EnergyConfig(powercap_root=str(tmp_path))) as meter:
        pass
    r = meter.reading
    assert r.too_short and r.wall_s < 0.01
    assert r.joules > 0  # the memory term of a live process is positive


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"energy.cpu_watts_per_core: must be a finite number >= 0, got -1"):
        EnergyConfig(cpu_watts_per_core=-1)
    with pytest.raises(ConfigError, match="energy.backend"):
        EnergyConfig(backend="nvml")
    with pytest.raises(ConfigError, match=r"energy.cpu_watt: unknown key"):
        EnergyConfig.from_dict({"cpu_watt": 5})
    assert EnergyConfig.from_dict({"cpu_watts_per_core": 5}).cpu_watts_per_core == 5


# --------------------------------------------------------------------------- short windows in the ledger
def entry(seconds: float, joules: float | None, too_short: bool, phase: str = "evaluate") -> LedgerEntry:
    return LedgerEntry(phase=phase, candidate="a", seconds=seconds, cpu_seconds=seconds, joules=joules,
                       energy_method=RAPL_METHOD if joules is not None else None,
                       energy_uncertainty=0.05 if joules is not None else None, too_short=too_short)


def test_short_windows_are_pooled_with_the_next_and_shared_by_time():
    entries = [entry(0.001, 0.0, True, "build:quantize"), entry(0.002, 0.0, True, "build:save"),
               entry(0.097, 3.0, False), entry(1.0, 10.0, False, "measure")]
    out = aggregate_short_windows(entries)
    assert [e.joules for e in out[:3]] == pytest.approx([0.03, 0.06, 2.91])
    assert all(e.joules > 0 for e in out)
    assert sum(e.joules for e in out) == pytest.approx(13.0)  # energy is conserved
    assert out[0].energy_method == "measured: rapl, pooled over 3 windows"
    assert out[3] == entries[3]  # a full window alone is left untouched
    assert [e.phase for e in out] == [e.phase for e in entries]


def test_trailing_short_windows_join_the_last_group_and_zero_becomes_unknown():
    out = aggregate_short_windows([entry(0.5, 4.0, False), entry(0.5, 0.0, True)])
    assert [e.joules for e in out] == pytest.approx([2.0, 2.0])
    alone = aggregate_short_windows([entry(0.004, 0.0, True)])
    assert alone[0].joules is None  # below the counter's resolution: unknown, never reported as zero


# --------------------------------------------------------------------------- CodeCarbon (optional)
def test_codecarbon_is_optional_and_detected():
    assert codecarbon_available() == (importlib.util.find_spec("codecarbon") is not None)
    if not codecarbon_available():
        with pytest.raises(LeanbenchError, match="codecarbon is not installed"):
            with EnergyMeter(EnergyConfig(backend="codecarbon")):
                pass


def test_codecarbon_backend_reads_energy_consumed(monkeypatch):
    class Tracker:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.final_emissions_data = None

        def start(self):
            pass

        def stop(self):
            self.final_emissions_data = types.SimpleNamespace(energy_consumed=0.002)  # kWh
            return 0.0

    fake = types.ModuleType("codecarbon")
    fake.__spec__ = importlib.machinery.ModuleSpec("codecarbon", None)
    fake.OfflineEmissionsTracker = Tracker
    monkeypatch.setitem(sys.modules, "codecarbon", fake)
    with EnergyMeter(EnergyConfig(backend="codecarbon", min_window_s=0.0)) as meter:
        pass
    assert meter.reading.joules == pytest.approx(0.002 * 3.6e6)
    assert meter.reading.method == CODECARBON_METHOD
