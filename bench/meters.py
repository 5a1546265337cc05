"""Energy meters: a small protocol with windows (zeus's begin_window/end_window).

A meter is handed to the runner; nothing here probes hardware at import or construction time.
``energy_source`` says how a window's energy was obtained, and an estimate is never reported as a measurement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Protocol

ENERGY_SOURCES = ("nvml_counter", "nvml_power_integrated", "rapl", "estimated", "none")


@dataclass(frozen=True)
class EnergyWindow:
    duration_s: float
    energy_j: float | None = None  # None = not measured; never a 0 that looks measured
    energy_source: str = "none"
    gpu_energy_j: float | None = None
    gpu_energy_source: str = "none"
    cpu_energy_j: float | None = None
    cpu_energy_source: str = "none"
    avg_power_w: float | None = None
    peak_power_w: float | None = None
    flags: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)


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
        return EnergyWindow(duration_s=time.perf_counter() - self._t0.pop(key))

    def close(self) -> None:
        pass
