"""Energy metering: the window and part contract (``base``), the composite meter with its sampler
(``composite``), and one file per source: NVML (``nvml``), RAPL (``rapl``) and the labeled estimate
(``estimate``). Nothing probes hardware at import time; probing happens only in ``build_meter``."""
from __future__ import annotations

from pathlib import Path

from .base import ENERGY_SOURCES, EnergyWindow, Meter, NullMeter, Part, PartWindow  # noqa: F401
from .composite import EnergyMeter  # noqa: F401

METER_CHOICES = ("auto", "nvml", "rapl", "estimate", "none")


def build_meter(kind: str = "auto", cpu_w_per_core: float | None = None, sample_hz: float = 10.0,
                nvml_module=None, rapl_root: str | Path = "/sys/class/powercap",
                wall: str | None = None) -> tuple[Meter, list[str]]:
    """The meter for this box and a line per source saying whether it is used, and why (for `shadowbench env`).
    ``wall``: the smart plug's URL (``energy.wall``); a plug that does not answer is reported and left out."""
    from ..errors import ConfigError, DeviceUnavailable
    from ..provenance import cpu_model
    from .estimate import EstimatePart, cpu_watts_per_thread
    from .nvml import NVML, NVMLPart
    from .rapl import RAPLPart

    if kind not in METER_CHOICES:
        raise ConfigError("<command line>", "--meter", f"one of {', '.join(METER_CHOICES)}", kind)
    report: list[str] = []
    if kind == "none":
        return NullMeter(), ["none: energy not measured (energy_source=none)"]
    parts: list[Part] = []
    if kind in ("auto", "nvml"):
        try:
            gpu = NVMLPart(NVML.open(nvml_module))
            gpu.open()
            parts.append(gpu)
            report.append(f"nvml: used ({gpu.describe()})")
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
    if wall:
        from .wall import WallPart

        from ..errors import ConfigError
        from .wall import parse

        parse(wall)  # a URL the user gave that is not a plug's is their error (exit 2), said with secrets masked
        try:
            w = WallPart(wall)
            parts.append(w)
            report.append(f"wall: used ({w.describe()}; wall_energy_j beside energy_j)")
        except ConfigError:
            raise
        except (DeviceUnavailable, OSError) as e:
            report.append(f"wall: UNAVAILABLE, rows have no wall energy: {e}")
        except Exception as e:  # noqa: BLE001 - a plug's first answer may fail in any way; the run still goes on
            report.append(f"wall: UNAVAILABLE, rows have no wall energy: {type(e).__name__}: {e}")
    return EnergyMeter(parts, sample_hz=sample_hz), report
