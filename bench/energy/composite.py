"""The composite meter: GPU and/or CPU parts behind one window protocol, with a sampler thread at ``sample_hz``
that records instantaneous power for the run's power series (``<run>.power.csv``) and for integration, and each
part's counter read at the window edges. Everything vendor-specific is asked of the part (``base.Part``)."""
from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path

from .base import Clock, EnergyWindow, Part, Scope


class PowerLog:
    """The run's power time series, ``<run>.power.csv``: one row per sampler tick and part."""

    COLUMNS = ["t_s", "domain", "source", "power_w", "gpu_util_pct", "gpu_mem_used_gb", "sm_clock_mhz",
               "gpu_temp_c", "clock_event_mask"]
    FLUSH_EVERY = 20  # samples: about every 2 s at 10 Hz, flushed and fsynced

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "x", newline="", encoding="utf-8")
        self._w = csv.writer(self._f, lineterminator="\n")
        self._w.writerow(self.COLUMNS)
        self._n = 0

    def write(self, values: list) -> None:
        self._w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in values])
        self._n += 1
        if self._n % self.FLUSH_EVERY == 0:
            self._sync()

    def _sync(self) -> None:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError:  # a full disk must not stop the measurement; the rows file reports it
            pass

    def close(self) -> None:
        if not self._f.closed:
            self._sync()
            try:
                self._f.close()
            except OSError:
                pass


class EnergyMeter:
    """GPU and/or CPU parts behind one window protocol, with a sampler thread at ``sample_hz``. ``clock`` is the
    time source of windows and samples (tests pass a fake and call ``tick()`` themselves)."""

    def __init__(self, parts: list[Part], sample_hz: float = 10.0, clock: Clock = time.perf_counter):
        self.parts = parts
        self.name = "+".join(p.source for p in parts if p.domain != "wall")
        self.interval_s = 1.0 / sample_hz if sample_hz > 0 else 0.0
        self.clock = clock
        self._samples: list[tuple[float, list]] = []  # (t, [power_w per part])
        self._state: list[tuple[float, list[dict]]] = []  # (t, [state per part])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open: dict[str, tuple[float, list]] = {}
        self._last_counter: list[tuple[float, float] | None] = [None] * len(parts)
        self.log: PowerLog | None = None
        self.sampler_errors: list[str] = []
        self.t_origin_s = clock()

    # -- sampler
    def start(self, power_log: Path | None = None) -> None:
        if power_log is not None:
            self.log = PowerLog(power_log)
        for part in self.parts:
            if hasattr(part, "start"):  # a part that polls at its own pace (a smart plug)
                part.start()
        if self.interval_s and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="shadowbench-sampler", daemon=True)
            self._thread.start()

    def tick(self) -> None:
        """One sample of every part: instantaneous power (or the counter's rate since the last tick) and state."""
        t = self.clock()
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
        states = [part.state() for part in self.parts]
        with self._lock:
            self._samples.append((t, powers))
            self._state.append((t, states))
        if self.log is not None:
            for part, p, st in zip(self.parts, powers, states):
                self.log.write([t - self.t_origin_s, part.domain, part.source, p, st.get("gpu_util_pct"),
                                st.get("gpu_mem_used_gb"), st.get("sm_clock_mhz"), st.get("gpu_temp_c"),
                                st.get("clock_event_mask")])

    def _loop(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - a sampler must not die silently mid-run
                self.sampler_errors.append(repr(e))
                if len(self.sampler_errors) > 100:
                    return
            next_t += self.interval_s
            delay = next_t - time.perf_counter()
            if delay < 0:  # fell behind (a slow NVML call): skip ahead instead of bursting
                next_t = time.perf_counter()
                delay = 0
            self._stop.wait(delay)

    # -- whose work is measured
    def track(self, scope: Scope) -> None:
        self.scope = scope
        self._last_counter = [None] * len(self.parts)  # a counter's meaning may change with the scope
        for part in self.parts:
            part.track(scope)

    scope = Scope()

    # -- windows
    def begin(self, key: str) -> None:
        # parts whose edge waits for a counter step first, so the others are read right before t0
        order = sorted(range(len(self.parts)), key=lambda i: not self.parts[i].waits_at_edge)
        readings: list = [None] * len(self.parts)
        for i in order:
            readings[i] = self.parts[i].edge("begin")
        t0 = self.clock()
        self._open[key] = (t0, [part.at(c, t, t0) for part, (t, c) in zip(self.parts, readings)])

    def end(self, key: str, edges: tuple[float, float] | None = None) -> EnergyWindow:
        """The window since ``begin(key)``; with ``edges`` (start, end on this meter's clock, both inside the
        begin-end span: a child process's exact run), the window is those edges, each part's readings moved to
        them (``Part.at``). The parent's own span and the child's differ by the pipe's round trip."""
        t1 = self.clock()
        t0, c0 = self._open.pop(key)
        # parts read at once first, then those whose edge waits for a counter step
        order = sorted(range(len(self.parts)), key=lambda i: self.parts[i].waits_at_edge)
        readings: list = [None] * len(self.parts)
        for i in order:
            readings[i] = self.parts[i].edge("end")
        skew = None
        if edges is not None:
            e0, e1 = edges
            if not (t0 - 1e-3 <= e0 <= e1 <= t1 + 1e-3):
                raise ValueError(f"window edges {edges} are not inside the meter's span ({t0}, {t1}): not one clock")
            c0 = [part.at(c, t0, e0) for part, c in zip(self.parts, c0)]
            readings = [(e1, part.at(c, t, e1)) for part, (t, c) in zip(self.parts, readings)]
            skew = (e0 - t0) + (t1 - e1)
            t0, t1 = e0, e1
        duration = t1 - t0
        with self._lock:
            samples = [s for s in self._samples if t0 - 1.0 <= s[0] <= t1 + 1.0]
            states = [s for s in self._state if t0 <= s[0] <= t1]
            self._samples = [s for s in self._samples if s[0] >= t1 - 1.0]  # keep memory flat over long runs
            self._state = [s for s in self._state if s[0] >= t1]
        flags: list[str] = ["sampler_error"] if self.sampler_errors else []
        extra: dict[str, object] = {}
        by_domain: dict[str, tuple[float | None, str]] = {}
        in_window = []
        for i, part in enumerate(self.parts):
            integrated = integrate([(t, p[i]) for t, p in samples if p[i] is not None], t0, t1)
            counter = readings[i][1] - c0[i] if c0[i] is not None and readings[i][1] is not None else None
            pw = part.window(counter, integrated, [s[i] for _, s in states], duration, t0=t0, t1=t1)
            flags += pw.flags
            extra.update(pw.columns)
            if part.domain == "wall":  # the whole box at the plug: beside the devices' energy, not added to it
                continue
            by_domain[part.domain] = (pw.energy_j, part.source)
            in_window.append([p[i] for t, p in samples if t0 <= t <= t1 and p[i] is not None])
        if self.scope.kind == "remote":  # the work ran on another machine: nothing measured here is its energy
            by_domain = {d: (None, src) for d, (_, src) in by_domain.items()}
            extra["energy_note"] = self.scope.note
            for k in ("wall_energy_j", "wall_avg_power_w"):
                if k in extra:
                    extra[k] = None
        gpu_e, gpu_src = by_domain.get("gpu", (None, "none"))
        cpu_e, cpu_src = by_domain.get("cpu", (None, "none"))
        parts_e = [e for e, _ in by_domain.values()]
        total = sum(parts_e) if parts_e and all(e is not None for e in parts_e) else None
        source = "+".join(s for _, s in by_domain.values()) if total is not None else "none"
        peak = None
        if in_window and all(in_window):
            n = min(len(p) for p in in_window)
            peak = max(sum(p[k] for p in in_window) for k in range(n)) if n else None
        return EnergyWindow(
            duration_s=duration, energy_j=total, energy_source=source,
            gpu_energy_j=gpu_e, gpu_energy_source=gpu_src if gpu_e is not None else "none",
            cpu_energy_j=cpu_e, cpu_energy_source=cpu_src if cpu_e is not None else "none",
            avg_power_w=(total / duration) if total is not None and duration > 0 else None,
            peak_power_w=peak, flags=tuple(flags), extra=extra, t0_s=t0, t1_s=t1, skew_s=skew)

    def describe(self) -> list[str]:
        return [p.describe() for p in self.parts]

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.log is not None:
            self.log.close()
        for p in self.parts:
            p.close()


def integrate(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Trapezoidal integral of power samples over [t0, t1], linearly interpolated at the edges; None when the
    samples do not cover the window."""
    if len(points) < 2 or points[0][0] > t0 + 0.25 or points[-1][0] < t1 - 0.25:
        return None

    def at(t):
        for (ta, pa), (tb, pb) in zip(points, points[1:]):
            if ta <= t <= tb:
                return pa + (pb - pa) * (t - ta) / (tb - ta) if tb > ta else pa
        return points[0][1] if t < points[0][0] else points[-1][1]

    inner = [(t, p) for t, p in points if t0 < t < t1]
    pts = [(t0, at(t0)), *inner, (t1, at(t1))]
    return sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in zip(pts, pts[1:]))
