"""A machine's wall calibration: what its smart plug measured, in place of the build catalog's assumptions.

``shadowbench calibrate --machine M`` reads the committed rows of ``results/M/`` that carry wall energy and writes
``results/M/calibration.toml``: the box's idle draw at the wall (the runs' wall idle baselines, median), and per
workload the ratio of wall energy to the devices' energy (GPU + CPU, as the rows measured or estimated them) under
load, which holds the PSU's losses and the rest of the platform. The cost model then prices a task's wall energy as
device energy × that ratio and the idle hours at the measured idle watts: the same formula
(``cost.wall_energy_j``) with PSU efficiency = 1 / ratio and no separate platform term. Every cost output says
which it used: "measured at the wall" or "assumed (builds.toml)".
"""
from __future__ import annotations

import math

import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.errors import ConfigError

from . import rows

FILE = "calibration.toml"


@dataclass(frozen=True)
class Calibration:
    machine: str
    path: Path
    idle_w: float | None
    ratio: float  # wall ÷ devices under load, all the machine's rows
    workloads: dict = field(default_factory=dict)  # workload -> {"ratio", "overhead_w", "rows"}
    measured_utc: str = ""

    def ratio_for(self, workload: str | None) -> float:
        return self.workloads.get(workload, {}).get("ratio", self.ratio)

    def apply(self, b, workload: str | None = None):
        """The build with this machine's measured wall figures: (build, what each replaced figure now says)."""
        r = self.ratio_for(workload)
        src = f"measured at the wall ({self.path})"
        b2 = replace(b, psu_efficiency=1.0 / r, platform_busy_w=0.0,
                     idle_wall_w=self.idle_w if self.idle_w is not None else b.idle_wall_w)
        said = {"psu_efficiency": f"{src}: wall ÷ devices = {r:.3f} under load",
                "platform_busy_w": f"{src}: in the wall ratio"}
        if self.idle_w is not None:
            said["idle_wall_w"] = src
        return b2, said


def calibrate(results_dir: Path, machine: str) -> tuple[Path, Calibration]:
    df, _ = rows.load(results_dir)
    m = df[df["machine"] == machine] if not df.empty else df
    if m.empty:
        raise ConfigError("<command line>", "--machine", "a machine with committed rows (results/<machine>/)", machine)
    if "wall_energy_j" not in m:
        m = m.assign(wall_energy_j=float("nan"))
    w = m[m["wall_energy_j"].notna() & m["energy_j"].notna() & (m["energy_j"] > 0)]
    if w.empty:
        raise ConfigError(results_dir / machine, "wall_energy_j", "rows measured with a smart plug (run with --wall "
                          "URL)", "<no row with wall energy>")
    ratio = (w["wall_energy_j"] / w["energy_j"])
    idle = m["wall_idle_power_w"].dropna() if "wall_idle_power_w" in m else pd.Series(dtype=float)
    per = {}
    for name, g in w.groupby("workload"):
        per[name] = {"ratio": round(float((g["wall_energy_j"] / g["energy_j"]).median()), 4),
                     "overhead_w": round(float((g["wall_avg_power_w"] - g["avg_power_w"]).median()), 2),
                     "rows": int(len(g))}
    files = ", ".join(sorted(set(w["file"])))
    checks = [("ratio", float(ratio.median()), "the rows' wall energy ÷ their devices' energy")]
    checks += [(f'workloads."{n}".ratio', v["ratio"], f"workload {n}'s rows") for n, v in per.items()]
    if not idle.empty:
        checks.append(("idle_w", float(idle.median()), "the runs' wall_idle_power_w"))
    for key, v, what in checks:  # a plug that read nothing, or rows edited by hand, never become a calibration
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(files, key, f"a finite number > 0 from {what} (a plug that measured the box)", v)
    cal = Calibration(machine, results_dir / machine / FILE, float(idle.median()) if not idle.empty else None,
                      round(float(ratio.median()), 4), per, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    lines = [f"# written by `shadowbench calibrate --machine {machine}` from {len(w)} rows with wall energy",
             f"# ({', '.join(sorted(set(w['file'])))}); the cost model prices this machine's work with it.",
             "[wall]", f'measured_utc = "{cal.measured_utc}"']
    if cal.idle_w is not None:
        lines.append(f"idle_w = {cal.idle_w:.2f}    # the box idle at the wall (median of the runs' baselines)")
    lines.append(f"ratio = {cal.ratio}    # wall energy ÷ the devices' (GPU + CPU) under load, median of all rows")
    for name, v in sorted(per.items()):
        lines += ["", f'[workloads."{name}"]', f"ratio = {v['ratio']}", f"overhead_w = {v['overhead_w']}    "
                  "# wall minus the devices' average power", f"rows = {v['rows']}"]
    cal.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cal.path, cal


def load(results_dir: Path, machine: str | None) -> Calibration | None:
    if machine is None:
        return None
    path = Path(results_dir) / machine / FILE
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        wall = data["wall"]
        ratio = float(wall["ratio"])
        idle_w = wall.get("idle_w")
        if not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"ratio = {ratio!r}, expected a finite number > 0")
        if idle_w is not None and not (math.isfinite(float(idle_w)) and float(idle_w) > 0):
            raise ValueError(f"idle_w = {idle_w!r}, expected a finite number > 0")
        for name, v in data.get("workloads", {}).items():
            r = float(v["ratio"])
            if not (math.isfinite(r) and r > 0):
                raise ValueError(f'workloads."{name}".ratio = {r!r}, expected a finite number > 0')
        return Calibration(machine, path, wall.get("idle_w"), ratio, data.get("workloads", {}),
                           wall.get("measured_utc", ""))
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as e:
        raise ConfigError(path, "wall", "a calibration written by `shadowbench calibrate`", f"<{e}>") from None
