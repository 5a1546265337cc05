"""CPU package (and DRAM) energy from the Linux powercap sysfs (RAPL)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from .base import Clock, Part


class RAPLPart(Part):
    """``energy_uj`` deltas with wraparound at ``max_energy_range_uj``. The sampler reads the counters at every
    tick, so even long windows see every wrap."""

    domain = "cpu"
    source = "rapl"

    def __init__(self, zones: list[tuple[Path, str, int]], clock: Clock = time.perf_counter):
        super().__init__(clock)
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

    def describe(self) -> str:
        return "RAPL " + ", ".join(f"{z[1]} ({z[0].name})" for z in self.zones)
