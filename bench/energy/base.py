"""The energy window and the protocols of meters and their parts (zeus's begin_window/end_window).

A *meter* measures windows; the composite meter (``composite.EnergyMeter``) holds *parts*, one per device domain
(``gpu``: NVML; ``cpu``: RAPL or the labeled estimate). Everything vendor-specific lives in the part that has it:
how its counter is read at a window edge, which figure is its energy, what state it reports. The composite knows
only this contract. ``energy_source`` says how a window's energy was obtained, and an estimate is never reported as
a measurement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

ENERGY_SOURCES = ("nvml_counter", "nvml_power_integrated", "rapl", "estimated", "none")
Clock = Callable[[], float]  # seconds, monotonic (time.perf_counter by default; tests pass a fake)


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
    extra: Mapping[str, object] = field(default_factory=dict)  # the parts' own result columns
    t0_s: float = 0.0  # the meter's clock at the window's edges
    t1_s: float = 0.0
    skew_s: float | None = None  # with a child's edges: how much longer the parent's own span was (not a column)

    def columns(self) -> dict[str, object]:
        """The window as result columns."""
        return {"wall_s": self.duration_s, "energy_j": self.energy_j, "energy_source": self.energy_source,
                "gpu_energy_j": self.gpu_energy_j, "gpu_energy_source": self.gpu_energy_source,
                "cpu_energy_j": self.cpu_energy_j, "cpu_energy_source": self.cpu_energy_source,
                "avg_power_w": self.avg_power_w, "peak_power_w": self.peak_power_w, "flags": ";".join(self.flags),
                **self.extra}


def parts_words(parts: list[tuple[str, float, bool]]) -> str:
    """Energy by part, ESTIMATED only on the estimated part: '231.8 J GPU (measured) + 9.0 J CPU (ESTIMATED)'.
    ``parts``: (domain, joules, estimated)."""
    return " + ".join(f"{j:.4g} J {d.upper()} ({'ESTIMATED' if est else 'measured'})" for d, j, est in parts)


class Meter(Protocol):
    name: str

    def begin(self, key: str) -> None: ...

    def end(self, key: str, edges: tuple[float, float] | None = None) -> EnergyWindow: ...

    def track(self, scope: "Scope") -> None: ...

    def close(self) -> None: ...


@dataclass
class PartWindow:
    """What a part says of one window: its energy (None = not measured), its own columns and flags."""

    energy_j: float | None
    columns: dict[str, object] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    """Whose work a window's energy is: this process and its children (``process``, the default), also a local
    server found by its port (``pids``), the whole machine when that server cannot be found (``system``), or
    nobody's here (``remote``: the server runs on another machine, so no energy is recorded)."""

    kind: str = "process"
    pids: tuple[int, ...] = ()
    note: str = ""


class Part:
    """The part contract, with the defaults of a plain counter (RAPL, the estimate):

    - ``domain`` ("gpu" or "cpu") and ``source`` (one of ENERGY_SOURCES);
    - ``counter_j()``: a cumulative energy in J, or None; ``power_w()``: instantaneous W, or None (the sampler then
      derives power from counter deltas); ``state()``: what the power series records beside power;
    - ``waits_at_edge`` and ``edge(which)``: (time, counter J) at a window edge; a part whose counter updates in
      steps waits for the next step there, and is read first at ``begin`` and last at ``end``;
      ``at(counter_j, t_from, t_to)`` moves such a reading to another time;
    - ``window(counter_j, integrated_j, states, duration_s, t0, t1)``: the part's energy, columns and flags for a
      window (t0, t1: its edges on the meter's clock);
    - ``domain`` "wall" (a plug the whole box is plugged into): its energy is not added to the devices' but
      reported beside them (its own columns).
    """

    domain = "cpu"
    source = "none"
    waits_at_edge = False

    def __init__(self, clock: Clock = time.perf_counter):
        self.clock = clock

    def counter_j(self) -> float | None:
        return None

    def power_w(self) -> float | None:
        return None

    def state(self) -> dict:
        return {}

    def edge(self, which: str) -> tuple[float, float | None]:
        return self.clock(), self.counter_j()

    def at(self, counter_j: float | None, t_from: float, t_to: float) -> float | None:
        return counter_j

    def window(self, counter_j: float | None, integrated_j: float | None, states: list[dict],
               duration_s: float, t0: float | None = None, t1: float | None = None) -> PartWindow:
        return PartWindow(counter_j)

    def track(self, scope: "Scope") -> None:
        """What the part should count besides this process (a device counter counts everything anyway)."""

    def describe(self) -> str:
        return self.source

    def close(self) -> None:
        pass


class NullMeter:
    """Measures time only: rows say energy_source=none with an empty energy_j."""

    name = "none"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self._t0: dict[str, float] = {}

    def begin(self, key: str) -> None:
        self._t0[key] = self.clock()

    def end(self, key: str, edges: tuple[float, float] | None = None) -> EnergyWindow:
        t1 = self.clock()
        t0 = self._t0.pop(key)
        skew = None
        if edges is not None:
            skew = (edges[0] - t0) + (t1 - edges[1])
            t0, t1 = edges
        return EnergyWindow(duration_s=t1 - t0, t0_s=t0, t1_s=t1, skew_s=skew)

    def track(self, scope: Scope) -> None:
        pass

    def close(self) -> None:
        pass
