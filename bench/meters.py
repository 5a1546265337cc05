"""Energy meters: a small protocol with windows (zeus's begin_window/end_window).

A meter is handed to the runner; nothing here probes hardware at import time, and probing happens only in
``build_meter``. ``energy_source`` says how a window's energy was obtained, and an estimate is never reported as a
measurement: rows carry ``estimated`` and a note saying what the estimate assumed.

The composite ``EnergyMeter`` holds a GPU part (NVML) and/or a CPU part (RAPL, or the labeled estimate), runs one
sampler thread at ``sample_hz`` that records instantaneous power for the run's power series (``<run>.power.csv``)
and for integration, and reads each part's energy counter at the window edges.
"""
from __future__ import annotations

import csv
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol

ENERGY_SOURCES = ("nvml_counter", "nvml_power_integrated", "rapl", "estimated", "none")
CROSS_CHECK_MIN_S = 1.0  # counter vs integrated power is compared only on windows at least this long
CROSS_CHECK_TOLERANCE = 0.10


@dataclass(frozen=True)
class EnergyWindow:
    duration_s: float
    energy_j: float | None = None  # None = not measured; never a 0 that looks measured
    energy_source: str = "none"  # the parts' sources joined by "+" (gpu first), each one of ENERGY_SOURCES
    gpu_energy_j: float | None = None
    gpu_energy_source: str = "none"
    cpu_energy_j: float | None = None
    cpu_energy_source: str = "none"
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)
    t0: float = 0.0  # time.perf_counter() at the window's edges
    t1: float = 0.0


class Meter(Protocol):
    name: str

    def begin(self, key: str) -> None: ...

    def end(self, key: str) -> EnergyWindow: ...

    def close(self) -> None: ...


class NullMeter:
    """Measures time only: rows say energy_source=none with an empty energy_j."""

    name = "none"

    def __init__(self) -> None:
        self._t0: dict[str, float] = {}

    def begin(self, key: str) -> None:
        self._t0[key] = time.perf_counter()

    def end(self, key: str) -> EnergyWindow:
        t1 = time.perf_counter()
        t0 = self._t0.pop(key)
        return EnergyWindow(duration_s=t1 - t0, t0=t0, t1=t1)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------- RAPL


class RAPLPart:
    """CPU package (and DRAM) energy from the Linux powercap sysfs, ``energy_uj`` deltas with wraparound at
    ``max_energy_range_uj``. The sampler reads the counters at every tick, so even long windows see every wrap."""

    domain = "cpu"
    source = "rapl"

    def __init__(self, zones: list[tuple[Path, str, int]]):
        self.zones = zones  # (folder, name, max_energy_range_uj)
        self._lock = threading.Lock()
        self._last = [self._read(z) for z in zones]
        self._acc_uj = 0

    @staticmethod
    def _read(zone) -> int:
        return int((zone[0] / "energy_uj").read_text().strip())

    @classmethod
    def probe(cls, root: str | Path = "/sys/class/powercap") -> tuple["RAPLPart | None", str]:
        root = Path(root)
        if not root.is_dir():
            return None, f"RAPL: {root} does not exist (no powercap driver, or not Linux)"
        zones = []
        for d in sorted(root.glob("intel-rapl:*")):
            try:
                name = (d / "name").read_text().strip()
            except OSError:
                continue
            depth = d.name.count(":")
            if (depth == 1 and name.startswith("package")) or (depth == 2 and name == "dram"):
                zones.append(d)
        if not zones:
            return None, f"RAPL: no package zone under {root}"
        try:
            z = [(d, (d / "name").read_text().strip(), int((d / "max_energy_range_uj").read_text().strip()))
                 for d in zones]
            return cls(z), ""
        except PermissionError as e:
            return None, f"RAPL: {e.filename} is not readable (root only since Linux 5.10; see README)"
        except (OSError, ValueError) as e:
            return None, f"RAPL: unreadable ({e})"

    def counter_j(self) -> float | None:
        with self._lock:
            try:
                now = [self._read(z) for z in self.zones]
            except (OSError, ValueError):
                return None
            for i, (z, v) in enumerate(zip(self.zones, now)):
                delta = v - self._last[i]
                if delta < 0:  # the counter wrapped at max_energy_range_uj
                    delta += z[2]
                self._acc_uj += delta
            self._last = now
            return self._acc_uj / 1e6

    def power_w(self) -> float | None:
        return None  # derived from counter deltas by the sampler

    def describe(self) -> str:
        return "RAPL " + ", ".join(f"{z[1]} ({z[0].name})" for z in self.zones)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------------ estimate

# Rated power (TDP / base power, W) and hardware threads of common desktop and workstation CPUs: the estimate
# charges TDP / threads watts per second of busy CPU time. Sources: the vendors' spec pages.
CPU_POWER = [
    (r"ryzen 9 7950x3?d?", 170, 32), (r"ryzen 9 7900x", 170, 24), (r"ryzen 7 7700x", 105, 16),
    (r"ryzen 5 7600x", 105, 12), (r"ryzen 9 5950x", 105, 32), (r"ryzen 9 5900x", 105, 24),
    (r"ryzen 7 5800x3d", 105, 16), (r"ryzen 7 5800x", 105, 16), (r"ryzen 5 5600x", 65, 12),
    (r"ryzen 5 5600g?", 65, 12), (r"ryzen 7 5700g", 65, 16), (r"core\S* i9-14900k", 125, 32),
    (r"core\S* i9-13900k", 125, 32), (r"core\S* i7-13700k", 125, 24), (r"core\S* i5-13600k", 125, 20),
    (r"core\S* i9-12900k", 125, 24), (r"core\S* i7-12700k?", 125, 20), (r"core\S* i5-12400", 65, 12),
    (r"core\S* i9-9900k", 95, 16), (r"core\S* i7-8700k?", 95, 12), (r"xeon\S* e5-2680 v4", 120, 28),
    (r"xeon\S* e5-2690 v4", 135, 28), (r"threadripper 3970x", 280, 64),
]
DEFAULT_W_PER_THREAD = 10.0


def cpu_watts_per_thread(cpu_model: str, override: float | None = None) -> tuple[float, str]:
    """(W per busy hardware thread, how it was chosen) for the labeled estimate."""
    if override is not None:
        return float(override), f"user setting cpu_w_per_core={override:g} W"
    for pattern, tdp, threads in CPU_POWER:
        if re.search(pattern, cpu_model, re.IGNORECASE):
            return tdp / threads, f"{cpu_model}: TDP {tdp} W / {threads} threads"
    return DEFAULT_W_PER_THREAD, (f"CPU {cpu_model!r} not in the TDP table: default {DEFAULT_W_PER_THREAD:g} W per busy "
                                  "thread; set [energy] cpu_w_per_core in the suite")


class EstimatePart:
    """Only when nothing is readable: this process's (and its children's) CPU time × watts per busy thread.
    Rows say energy_source=estimated and carry the assumption in energy_note."""

    domain = "cpu"
    source = "estimated"

    def __init__(self, w_per_thread: float, basis: str):
        import psutil

        self.proc = psutil.Process()
        self.w = w_per_thread
        self.basis = basis
        self._children: list = []
        self._children_at = -1e9

    def cpu_seconds(self) -> float:
        """This process, its finished children, and its live child processes (a server the harness started)."""
        import psutil

        t = self.proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        now = time.monotonic()
        if now - self._children_at > 2.0:  # scanning the process table is costly: at most every 2 s
            self._children = self.proc.children(recursive=True)
            self._children_at = now
        for child in self._children:
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                continue
        return total

    def counter_j(self) -> float | None:
        return self.cpu_seconds() * self.w

    def power_w(self) -> float | None:
        return None

    def describe(self) -> str:
        return f"estimate: process (and child processes) CPU time x {self.w:.2f} W per busy thread ({self.basis})"

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------- composite meter


class PowerLog:
    """The run's power time series, ``<run>.power.csv``: one row per sampler tick and part."""

    COLUMNS = ["t_s", "domain", "source", "power_w", "gpu_util_pct", "gpu_mem_used_gb", "sm_clock_mhz",
               "gpu_temp_c", "clock_event_mask"]

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "x", newline="", encoding="utf-8")
        self._w = csv.writer(self._f, lineterminator="\n")
        self._w.writerow(self.COLUMNS)
        self._n = 0

    def write(self, values: list) -> None:
        self._w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in values])
        self._n += 1
        if self._n % 20 == 0:
            self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


class EnergyMeter:
    """GPU and/or CPU parts behind one window protocol, with a sampler thread at ``sample_hz``."""

    def __init__(self, parts: list, sample_hz: float = 10.0, align_counter: bool = True):
        self.parts = parts
        self.name = "+".join(p.source for p in parts)
        self.interval = 1.0 / sample_hz if sample_hz > 0 else 0.0
        self.align_counter = align_counter
        self._samples: list[tuple[float, list]] = []  # (t, [power_w per part]); state per part in _state
        self._state: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open: dict[str, tuple[float, list]] = {}
        self._last_counter: list[tuple[float, float] | None] = [None] * len(parts)
        self.log: PowerLog | None = None
        self.sampler_errors: list[str] = []
        self.t_origin = time.perf_counter()

    # -- sampler
    def start(self, power_log: Path | None = None) -> None:
        if power_log is not None:
            self.log = PowerLog(power_log)
        if self.interval and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="shadowbench-sampler", daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        t = time.perf_counter()
        powers = []
        for i, part in enumerate(self.parts):
            p = part.power_w()
            if p is None:
                c = part.counter_j()
                prev = self._last_counter[i]
                if c is not None:
                    self._last_counter[i] = (t, c)
                    if prev is not None and t > prev[0]:
                        p = (c - prev[1]) / (t - prev[0])
            powers.append(p)
        states = [part.state() if hasattr(part, "state") else {} for part in self.parts]
        with self._lock:
            self._samples.append((t, powers))
            self._state.append((t, states))
        if self.log is not None:
            for part, p, st in zip(self.parts, powers, states):
                self.log.write([t - self.t_origin, part.domain, part.source, p, st.get("gpu_util_pct"),
                                st.get("gpu_mem_used_gb"), st.get("sm_clock_mhz"), st.get("gpu_temp_c"),
                                st.get("clock_event_mask")])

    def _loop(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - a sampler must not die silently mid-run
                self.sampler_errors.append(repr(e))
                if len(self.sampler_errors) > 100:
                    return
            next_t += self.interval
            delay = next_t - time.perf_counter()
            if delay < 0:  # fell behind (a slow NVML call): skip ahead instead of bursting
                next_t = time.perf_counter()
                delay = 0
            self._stop.wait(delay)

    # -- counters at the window edges
    def _counter_at_edge(self, part, edge: str) -> tuple[float, float | None]:
        """(time, energy J) at a window edge. The NVML counter updates about every 100 ms, so with alignment on,
        the edge waits for the next update and moves the reading back (begin: forward) to the edge with the
        instantaneous power, instead of being up to 100 ms stale."""
        t_edge = time.perf_counter()
        c = part.counter_j()
        if c is None or not self._aligned(part):
            return t_edge, c
        p_edge = part.power_w() or 0.0
        deadline = t_edge + 0.15
        while time.perf_counter() < deadline:
            time.sleep(0.002)
            c2 = part.counter_j()
            if c2 is None:
                return t_edge, None
            if c2 != c:
                t_u = time.perf_counter()
                if edge == "begin":
                    return t_u, c2  # the window starts at the update; the caller takes its time from here
                return t_edge, c2 - p_edge * (t_u - t_edge)
        return t_edge, c

    def _aligned(self, part) -> bool:
        return self.align_counter and part.source == "nvml_counter"

    def begin(self, key: str) -> None:
        # parts whose edge waits for a counter update first, so the others are read right before t0
        order = sorted(range(len(self.parts)), key=lambda i: not self._aligned(self.parts[i]))
        readings: list = [None] * len(self.parts)
        for i in order:
            readings[i] = self._counter_at_edge(self.parts[i], "begin")
        t0 = time.perf_counter()
        # energy at t0: each reading moved forward from its own time with the latest power
        counters = []
        for part, (t, c) in zip(self.parts, readings):
            if c is not None and part.source == "nvml_counter":
                c += (part.power_w() or 0.0) * (t0 - t)
            counters.append(c)
        self._open[key] = (t0, counters)

    def end(self, key: str) -> EnergyWindow:
        t1 = time.perf_counter()
        t0, c0 = self._open.pop(key)
        # parts read at once first, then those whose edge waits for a counter update
        order = sorted(range(len(self.parts)), key=lambda i: self._aligned(self.parts[i]))
        readings: list = [None] * len(self.parts)
        for i in order:
            readings[i] = self._counter_at_edge(self.parts[i], "end")
        duration = t1 - t0
        with self._lock:
            samples = [s for s in self._samples if t0 - 1.0 <= s[0] <= t1 + 1.0]
            states = [s for s in self._state if t0 <= s[0] <= t1]
            self._samples = [s for s in self._samples if s[0] >= t1 - 1.0]  # keep memory flat over long runs
            self._state = [s for s in self._state if s[0] >= t1]
        flags: list[str] = ["sampler_error"] if self.sampler_errors else []
        extra: dict[str, object] = {}
        by_domain: dict[str, tuple[float | None, str]] = {}
        powers_total = []
        for i, part in enumerate(self.parts):
            integrated = _integrate([(t, p[i]) for t, p in samples if p[i] is not None], t0, t1)
            counter = None
            if c0[i] is not None and readings[i][1] is not None:
                counter = readings[i][1] - c0[i]
            energy = counter
            if part.source == "nvml_power_integrated":
                energy = integrated
            if getattr(part, "lost", False):
                energy = None
                flags.append(part.lost_reason or "gpu_lost")
            if part.domain == "gpu":
                extra["gpu_energy_counter_j"] = counter
                extra["gpu_energy_integrated_j"] = integrated
                if counter is not None and integrated is not None and duration >= CROSS_CHECK_MIN_S and counter > 0:
                    if abs(integrated - counter) / counter > CROSS_CHECK_TOLERANCE:
                        flags.append("nvml_counter_vs_power_mismatch")
                extra.update(_gpu_state_summary(part, [s[i] for _, s in states]))
            elif part.source == "estimated":
                extra["energy_note"] = part.describe()
            by_domain[part.domain] = (energy, part.source)
            pw = [p[i] for t, p in samples if t0 <= t <= t1 and p[i] is not None]
            powers_total.append(pw)
        gpu_e, gpu_src = by_domain.get("gpu", (None, "none"))
        cpu_e, cpu_src = by_domain.get("cpu", (None, "none"))
        parts_ok = [e for e, _ in by_domain.values()]
        total = sum(parts_ok) if parts_ok and all(e is not None for e in parts_ok) else None
        source = "+".join(s for _, s in by_domain.values()) if total is not None else "none"
        peak = None
        if powers_total and all(powers_total):
            n = min(len(p) for p in powers_total)
            peak = max(sum(p[k] for p in powers_total) for k in range(n)) if n else None
        return EnergyWindow(
            duration_s=duration, energy_j=total, energy_source=source,
            gpu_energy_j=gpu_e, gpu_energy_source=gpu_src if gpu_e is not None else "none",
            cpu_energy_j=cpu_e, cpu_energy_source=cpu_src if cpu_e is not None else "none",
            avg_power_w=(total / duration) if total is not None and duration > 0 else None,
            peak_power_w=peak, flags=tuple(flags), extra=extra, t0=t0, t1=t1)

    def describe(self) -> list[str]:
        return [p.describe() for p in self.parts]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.log is not None:
            self.log.close()
        for p in self.parts:
            p.close()


def _integrate(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Trapezoidal integral of power samples over [t0, t1], linearly interpolated at the edges."""
    if len(points) < 2 or points[0][0] > t0 + 0.25 or points[-1][0] < t1 - 0.25:
        return None  # too few samples to cover the window

    def at(t):
        for (ta, pa), (tb, pb) in zip(points, points[1:]):
            if ta <= t <= tb:
                return pa + (pb - pa) * (t - ta) / (tb - ta) if tb > ta else pa
        return points[0][1] if t < points[0][0] else points[-1][1]

    inner = [(t, p) for t, p in points if t0 < t < t1]
    pts = [(t0, at(t0)), *inner, (t1, at(t1))]
    return sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in zip(pts, pts[1:]))


def _gpu_state_summary(part, states: list[dict]) -> dict:
    states = [s for s in states if s]
    out: dict[str, object] = {"gpu_power_limit_w": part.power_limit_w() if not part.lost else None}
    if states:
        out["gpu_util_pct"] = sum(s["gpu_util_pct"] for s in states) / len(states)
        out["gpu_mem_peak_gb"] = max(s["gpu_mem_used_gb"] for s in states)
        clocks = sorted(s["sm_clock_mhz"] for s in states)
        out["sm_clock_mhz"] = clocks[len(clocks) // 2]
        out["gpu_temp_c_max"] = max(s["gpu_temp_c"] for s in states)
        mask = 0
        for s in states:
            mask |= s["clock_event_mask"]
        from .nvml import reason_names

        out["clock_events"] = ";".join(reason_names(part.nv, mask))
    out["gpu_foreign_pids"] = ";".join(part.foreign_processes())
    return out


# ------------------------------------------------------------------------------------------------------ building


def build_meter(kind: str = "auto", cpu_w_per_core: float | None = None, sample_hz: float = 10.0,
                nvml_module=None, rapl_root: str | Path = "/sys/class/powercap") -> tuple[Meter, list[str]]:
    """The meter for this box and a line per meter saying whether it is used, and why (for `shadowbench env`)."""
    from .nvml import NVML, NVMLPart
    from .errors import ConfigError, DeviceUnavailable
    from .provenance import cpu_model

    kinds = ("auto", "nvml", "rapl", "estimate", "none")
    if kind not in kinds:
        raise ConfigError("<command line>", "--meter", f"one of {', '.join(kinds)}", kind)
    report: list[str] = []
    if kind == "none":
        return NullMeter(), ["none: energy not measured (energy_source=none)"]
    parts: list = []
    if kind in ("auto", "nvml"):
        try:
            gpu = NVMLPart(NVML.open(nvml_module))
            gpu.open()
            parts.append(gpu)
            report.append(f"nvml: used ({'energy counter' if gpu.has_counter else 'integrated power, no counter'}"
                          f", {'instant power field' if gpu.has_instant else 'power usage (1 s average)'})")
        except DeviceUnavailable as e:
            if kind == "nvml":
                raise
            report.append(f"nvml: unavailable: {e}")
    if kind in ("auto", "rapl"):
        rapl, why = RAPLPart.probe(rapl_root)
        if rapl is not None:
            parts.append(rapl)
            report.append(f"rapl: used ({rapl.describe()})")
        else:
            if kind == "rapl":
                raise DeviceUnavailable(why)
            report.append(f"rapl: unavailable: {why}")
    if kind == "estimate" or (kind == "auto" and not any(p.domain == "cpu" for p in parts)):
        w, basis = cpu_watts_per_thread(cpu_model(), cpu_w_per_core)
        est = EstimatePart(w, basis)
        parts.append(est)
        report.append(f"estimate: used for the CPU, labeled energy_source=estimated ({est.describe()})")
    else:
        report.append("estimate: not used (a measured CPU source exists)")
    return EnergyMeter(parts, sample_hz=sample_hz), report
