"""Energy of a block of work: RAPL counters when they can be read, otherwise a stated estimate.

Every figure is an :class:`EnergyReading` that says how it was obtained (``method``) and how far it can
be off (``uncertainty_rel``, a relative half-width: the energy lies in ``joules * (1 +/- u)``).

**Measured: RAPL.** Linux exposes Intel's (and, on recent kernels, AMD's) Running Average Power Limit energy
counters under ``/sys/class/powercap`` (kernel docs, ``power/powercap/powercap.rst``). Each zone has
``name``, ``energy_uj`` (a cumulative counter in microjoules) and ``max_energy_range_uj`` (the value at
which the counter wraps to 0). Zones counted:

* top-level zones ``intel-rapl:N`` named ``package-*`` (the whole socket: cores, caches, uncore);
* top-level zones named ``dram`` where the platform exposes DRAM as a separate top-level domain.

Not counted: sub-zones ``intel-rapl:N:M`` (``core``, ``uncore``: already inside their package; a
``dram`` sub-zone is left out too, as CodeCarbon and Eco2AI read the package counter only, so a
measured figure means package energy), ``psys`` (the whole platform, a superset of the packages:
adding it would count them twice) and ``intel-rapl-mmio:*`` (the same package counter read through
MMIO). RAPL counts every process on the socket, not only this one, and not the power supply, disks or
fans; windows that run at the same time on one machine (parallel cells) each see the others' energy,
so measure them one at a time or use the estimate. The counter of a zone wraps at
``max_energy_range_uj``; a delta ``end < start`` is read as one wrap, ``end + max_range - start``. A
window long enough to wrap twice (``max_range`` / package power: about 22 minutes at 200 W for the
262,143,328,850 uJ range common on Intel parts) needs :meth:`EnergyMeter.poll` called in between.
Since CVE-2020-8694 (2020) ``energy_uj`` is readable by root only on most distributions; an unreadable
counter falls back to the estimate and the reading says why in ``detail``.

**Estimated: CPU and memory power model.** When no counter can be read::

    E [J] = P_cpu * cpu_seconds + P_mem * resident_GB * wall_seconds
          = wall_seconds * (P_cpu * busy_cores + P_mem * resident_GB)
    busy_cores = cpu_seconds / wall_seconds

``cpu_seconds`` is the process CPU time (``time.process_time``: all threads of this process, not its
children), ``resident_GB`` the mean resident set size at the start and end of the window.

**A candidate's energy per query** (``EnergyMeter(memory_gb=...)``, used by the measure
cells) attributes both terms to the candidate instead of the process: the window holds only its timed calls
(inputs prepared, warm-up done and garbage collected before it opens); ``cpu_seconds`` is the process CPU
time minus that of the process's other Python threads (the progress display; torch, BLAS and ONNX Runtime
worker threads are not Python threads and stay counted: they run the candidate's calls), read per thread
from ``/proc/self/task/<tid>/schedstat``; and ``resident_GB`` is the candidate's own memory, its weights
plus the peak activations of one call at its batch (``leanbench.measure.memory``), not the process's
resident set, which holds every model loaded so far. Energy per query then scales with the candidate's own
CPU time and memory: a model 25x faster costs about 25x less. The method text says so
(:attr:`EnergyConfig.candidate_method`).
``P_cpu`` (W per busy CPU, default 7 W) stands for TDP / cores of common x86 parts, e.g. AMD EPYC 7543
(225 W, 32 cores: 7.0 W) or Intel Xeon Platinum 8380 (270 W, 40 cores: 6.75 W); this is an *assumption*,
set ``energy.cpu_watts_per_core`` for your machine. ``P_mem`` = 3 W per 8 GB = 0.375 W/GB is the RAM
figure of CodeCarbon's methodology (docs/edit/methodology.rst, citing Crucial's rule of thumb).
CodeCarbon's own fallback ("constant mode") takes 50 % of the CPU's TDP for the whole machine; the
model above instead charges full per-core power to the CPU time the work actually used, so idle cores
and other processes are not billed to the study. Idle (static) power of the machine is not included.

Uncertainties (assumptions, configurable): RAPL package energy +/-5 % (RAPL tracks plug-level power
closely in published validations, e.g. Hackenberg et al., "An Energy Efficiency Feature Survey of the
Intel Haswell Processor", IPDPSW 2015; Khan et al., "RAPL in Action", ACM TOMPECS 2018);
the estimate +/-50 % (per-core power across common parts and SMT spans roughly 3.5-10 W per busy CPU,
a factor of about 1.5 either way from the default).

**Windows too short to measure.** A window shorter than ``min_window_s`` (default 10 ms; RAPL counters
update about once a millisecond), or a RAPL window in which no counter moved, is flagged
``too_short=True``. Its joules are still what was read or modelled (never replaced by zero); the
ledger (:func:`leanbench.cost.ledger.aggregate_short_windows`) pools such windows with the next full
one and shares the pooled energy out by wall time.

**CodeCarbon** (optional, not a dependency): ``backend="codecarbon"`` runs CodeCarbon's
``OfflineEmissionsTracker`` over the window and takes ``final_emissions_data.energy_consumed`` (kWh).
It is labelled ``estimated: codecarbon`` because CodeCarbon models RAM power even when it reads RAPL
for the CPU. ``backend="auto"`` never picks CodeCarbon; :func:`codecarbon_available` tells whether it is
installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import resource
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from leanbench.errors import ConfigError, LeanbenchError

J_PER_KWH = 3.6e6
POWERCAP_ROOT = "/sys/class/powercap"
RAPL_METHOD = "measured: rapl"
CODECARBON_METHOD = "estimated: codecarbon"
RAPL_UNCERTAINTY_REL = 0.05
CODECARBON_UNCERTAINTY_REL = 0.3
BACKENDS = ("auto", "rapl", "estimate", "codecarbon")
_TOP_ZONE = re.compile(r"^intel-rapl:\d+$")
_COUNTED_NAMES = ("package", "dram")


# --------------------------------------------------------------------------- config and reading
@dataclass(frozen=True)
class EnergyConfig:
    """Study-level ``energy:`` settings. See the module docstring for the model and its sources."""

    cpu_watts_per_core: float = 7.0
    memory_watts_per_gb: float = 0.375
    estimate_uncertainty_rel: float = 0.5
    rapl_uncertainty_rel: float = RAPL_UNCERTAINTY_REL
    min_window_s: float = 0.01
    backend: str = "auto"
    powercap_root: str = POWERCAP_ROOT

    def __post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise ConfigError(problems, source="energy")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, source: str = "energy") -> EnergyConfig:
        """Builds the config from a study's ``energy:`` mapping, reporting unknown keys with their path."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = [f"{source}.{k}: unknown key; known keys: {', '.join(sorted(known))}" for k in values
                   if k not in known]
        if unknown:
            raise ConfigError(unknown, source=source)
        return cls(**values)

    @property
    def estimate_method(self) -> str:
        return (f"estimated: cpu {self.cpu_watts_per_core:g} W/core x cpu-seconds + memory "
                f"{self.memory_watts_per_gb:g} W/GB x resident GB x wall-seconds")

    @property
    def candidate_method(self) -> str:
        """The estimate attributed to one candidate (see the module docstring)."""
        return (f"estimated: cpu {self.cpu_watts_per_core:g} W/core x the candidate's own cpu-seconds (its timed "
                f"calls only; the process's other Python threads excluded) + memory {self.memory_watts_per_gb:g} "
                f"W/GB x the candidate's own GB (its weights + peak activations at its batch, not the process's "
                f"resident set) x wall-seconds")


def _config_problems(c: EnergyConfig) -> list[str]:
    problems = []
    for name in ("cpu_watts_per_core", "memory_watts_per_gb", "min_window_s"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            problems.append(f"energy.{name}: must be a finite number >= 0, got {v!r}")
    for name in ("estimate_uncertainty_rel", "rapl_uncertainty_rel"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            problems.append(f"energy.{name}: must be a number in [0, 1), got {v!r}")
    if c.backend not in BACKENDS:
        problems.append(f"energy.backend: must be one of {', '.join(BACKENDS)}, got {c.backend!r}")
    return problems


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one window. ``joules`` lies in ``joules * (1 +/- uncertainty_rel)``."""

    joules: float
    method: str
    uncertainty_rel: float
    wall_s: float
    cpu_s: float
    too_short: bool = False
    detail: str = ""
    memory_gb: float | None = None  # the GB the estimate's memory term charged (None: not estimated)

    @property
    def kwh(self) -> float:
        return self.joules / J_PER_KWH

    @property
    def joules_low(self) -> float:
        return self.joules * (1 - self.uncertainty_rel)

    @property
    def joules_high(self) -> float:
        return self.joules * (1 + self.uncertainty_rel)

    @property
    def measured(self) -> bool:
        return self.method.startswith("measured:")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kwh": self.kwh}


def estimate_energy(cpu_s: float, wall_s: float, resident_gb: float, config: EnergyConfig | None = None,
                    *, detail: str = "", method: str | None = None) -> EnergyReading:
    """The CPU and memory power model of the module docstring, for a window already timed elsewhere.

    ``E = cpu_watts_per_core * cpu_s + memory_watts_per_gb * resident_gb * wall_s``; ``method`` replaces the
    default method text when the terms were attributed otherwise (:attr:`EnergyConfig.candidate_method`).
    """
    c = config or EnergyConfig()
    for name, v in (("cpu_s", cpu_s), ("wall_s", wall_s), ("resident_gb", resident_gb)):
        if not math.isfinite(v) or v < 0:
            raise LeanbenchError(f"estimate_energy: {name} must be a finite number >= 0, got {v!r}")
    joules = c.cpu_watts_per_core * cpu_s + c.memory_watts_per_gb * resident_gb * wall_s
    return EnergyReading(joules=joules, method=method or c.estimate_method,
                         uncertainty_rel=c.estimate_uncertainty_rel, wall_s=wall_s, cpu_s=cpu_s,
                         too_short=wall_s < c.min_window_s, detail=detail, memory_gb=resident_gb)


def resident_gb() -> float:
    """Resident set size of this process in GB (10^9 bytes): /proc/self/statm, else peak RSS (getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def _thread_cpu_s(native_id: int) -> float | None:
    """CPU seconds of one thread of this process (Linux: /proc/self/task/<tid>/schedstat, in ns; else the
    clock ticks of .../stat); None when it cannot be read (another platform, or the thread has ended)."""
    task = Path(f"/proc/self/task/{native_id}")
    try:
        return int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def other_threads_cpu() -> dict[int, float] | None:
    """CPU seconds so far of every Python thread of this process but the calling one, by native thread id
    (the progress display's refresh thread, for one); None where threads' CPU time cannot be read."""
    import threading

    if not Path("/proc/self/task").is_dir():
        return None
    me = threading.get_native_id()
    out = {}
    for t in threading.enumerate():
        tid = getattr(t, "native_id", None)
        if tid is None or tid == me:
            continue
        cpu = _thread_cpu_s(tid)
        if cpu is not None:
            out[tid] = cpu
    return out


def threads_cpu_delta(before: dict[int, float] | None, after: dict[int, float] | None) -> float:
    """CPU seconds the threads present at both readings spent in between (0 where unknown)."""
    if not before or not after:
        return 0.0
    return sum(max(0.0, after[t] - before[t]) for t in before.keys() & after.keys())


# --------------------------------------------------------------------------- RAPL
@dataclass(frozen=True)
class RaplZone:
    """One counted powercap zone: its folder, ``name`` and wrap range in microjoules."""

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def find_rapl_zones(root: str | os.PathLike = POWERCAP_ROOT) -> tuple[list[RaplZone], str]:
    """The counted zones under ``root`` (see module docstring) and, when there are none, the reason.

    A zone counts only if its ``energy_uj`` can be read now; an unreadable one makes the whole list
    empty (a partial sum would understate energy).
    """
    root = Path(root)
    if not root.is_dir():
        return [], f"no powercap folder at {root}"
    zones = []
    for d in sorted(p for p in root.iterdir() if _TOP_ZONE.match(p.name)):
        try:
            name = (d / "name").read_text().strip()
            if not name.startswith(_COUNTED_NAMES):
                continue
            zone = RaplZone(d, name, int((d / "max_energy_range_uj").read_text().strip()))
            zone.read_uj()
        except (OSError, ValueError) as e:
            return [], f"RAPL zone {d.name} unreadable ({type(e).__name__}: {e})"
        zones.append(zone)
    if not zones:
        return [], f"no RAPL package zone under {root}"
    return zones, ""


def counter_delta_uj(start: int, end: int, max_range_uj: int) -> int:
    """Microjoules between two readings of a counter wrapping to 0 at ``max_range_uj`` (one wrap at most)."""
    return end - start if end >= start else end + max_range_uj - start


def codecarbon_available() -> bool:
    """Whether the optional ``codecarbon`` package is installed (it is never imported here)."""
    return importlib.util.find_spec("codecarbon") is not None


# --------------------------------------------------------------------------- the meter
class EnergyMeter:
    """Context manager measuring the energy of its block; ``reading`` holds the result after exit.

    ``backend="auto"`` uses RAPL when every counted zone can be read and the estimate otherwise.
    ``rapl`` fails with a LeanbenchError when the counters cannot be read; ``estimate`` never reads them.
    The meter can be entered again for a new window.

    >>> with EnergyMeter(EnergyConfig()) as meter:   # doctest: +SKIP
    ...     train()
    >>> meter.reading.joules, meter.reading.method    # doctest: +SKIP
    """

    def __init__(self, config: EnergyConfig | None = None, *, memory_gb: float | None = None):
        """``memory_gb`` attributes the window to one candidate (see the module docstring): the estimate
        charges this memory (its weights + peak activations) in place of the process's resident set, and
        leaves the process's other Python threads out of the CPU time; the reading's method is then
        :attr:`EnergyConfig.candidate_method`. A RAPL reading is the package's energy whatever it says."""
        self.config = config or EnergyConfig()
        if memory_gb is not None and (isinstance(memory_gb, bool) or not math.isfinite(memory_gb) or memory_gb < 0):
            raise LeanbenchError(f"EnergyMeter: memory_gb must be a finite number >= 0, got {memory_gb!r}")
        self.memory_gb = memory_gb
        self._others0: dict[int, float] | None = None
        self.reading: EnergyReading | None = None
        self.backend = ""
        self._zones: list[RaplZone] = []
        self._last_uj: list[int] = []
        self._acc_uj = 0
        self._fallback_reason = ""
        self._t0 = (0.0, 0.0)
        self._rss0 = 0.0
        self._tracker: Any = None

    def __enter__(self) -> EnergyMeter:
        self.reading = None
        self.backend = self._choose_backend()
        if self.backend == "rapl":
            self._last_uj, self._acc_uj = [z.read_uj() for z in self._zones], 0
        elif self.backend == "codecarbon":
            self._tracker = _codecarbon_tracker()
            self._tracker.start()
        self._rss0 = resident_gb() if self.memory_gb is None else 0.0
        self._others0 = other_threads_cpu() if self.memory_gb is not None else None
        self._t0 = (time.perf_counter(), time.process_time())
        return self

    def poll(self) -> None:
        """Folds the counters' progress so far into the window (call at least once per wrap period)."""
        if self.backend == "rapl":
            now = [z.read_uj() for z in self._zones]
            self._acc_uj += sum(counter_delta_uj(a, b, z.max_range_uj)
                                for a, b, z in zip(self._last_uj, now, self._zones, strict=True))
            self._last_uj = now

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self._t0[0]
        cpu = time.process_time() - self._t0[1]
        detail = self._fallback_reason
        if self.memory_gb is not None:  # one candidate's window: its own CPU time
            if self._others0 is None:
                detail = "; ".join(d for d in (detail, "threads' CPU time unreadable: the whole process's counted")
                                   if d)
            else:
                others = threads_cpu_delta(self._others0, other_threads_cpu())
                cpu = max(0.0, cpu - others)
                detail = "; ".join(d for d in (detail, f"{others:.4f} cpu-s of other Python threads excluded") if d)
        if self.backend == "rapl":
            self.poll()
            self.reading = self._rapl_reading(wall, cpu)
        elif self.backend == "codecarbon":
            self.reading = self._codecarbon_reading(wall, cpu)
        elif self.memory_gb is not None:
            self.reading = estimate_energy(cpu, wall, self.memory_gb, self.config, detail=detail,
                                           method=self.config.candidate_method)
        else:
            rss = (self._rss0 + resident_gb()) / 2
            self.reading = estimate_energy(cpu, wall, rss, self.config, detail=detail)

    def _choose_backend(self) -> str:
        wanted = self.config.backend
        if wanted == "estimate":
            self._fallback_reason = "estimate requested (energy.backend: estimate)"
            return "estimate"
        if wanted == "codecarbon":
            if not codecarbon_available():
                raise LeanbenchError("energy.backend is 'codecarbon' but codecarbon is not installed: "
                                     "pip install codecarbon, or use backend 'auto'")
            return "codecarbon"
        self._zones, reason = find_rapl_zones(self.config.powercap_root)
        if self._zones:
            return "rapl"
        if wanted == "rapl":
            raise LeanbenchError(f"energy.backend is 'rapl' but the counters cannot be read: {reason}")
        self._fallback_reason = f"RAPL not used: {reason}"
        return "estimate"

    def _rapl_reading(self, wall: float, cpu: float) -> EnergyReading:
        zones = ", ".join(z.name for z in self._zones)
        too_short = wall < self.config.min_window_s or self._acc_uj == 0
        return EnergyReading(joules=self._acc_uj / 1e6, method=RAPL_METHOD,
                             uncertainty_rel=self.config.rapl_uncertainty_rel, wall_s=wall, cpu_s=cpu,
                             too_short=too_short, detail=f"zones: {zones}")

    def _codecarbon_reading(self, wall: float, cpu: float) -> EnergyReading:
        self._tracker.stop()
        kwh = float(self._tracker.final_emissions_data.energy_consumed)
        return EnergyReading(joules=kwh * J_PER_KWH, method=CODECARBON_METHOD,
                             uncertainty_rel=CODECARBON_UNCERTAINTY_REL, wall_s=wall, cpu_s=cpu,
                             too_short=wall < self.config.min_window_s,
                             detail="codecarbon OfflineEmissionsTracker (RAM power modelled by CodeCarbon)")


def _codecarbon_tracker() -> Any:
    """A quiet CodeCarbon tracker that writes no file and needs no network (offline mode)."""
    codecarbon = importlib.import_module("codecarbon")
    # the country only sets CodeCarbon's CO2 figure, which is not used: leanbench prices CO2 itself
    return codecarbon.OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error",
                                              tracking_mode="process", measure_power_secs=1)
