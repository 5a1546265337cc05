"""Power-limit sweeps: per workload class (decode, prompt processing, image, speech) the curve of throughput against
energy per unit of work over the limits a sweep set, and what it means: the firmware plateau (limits above which
the card draws no more power), the knee (the limit with the lowest energy per unit), the lowest limit that keeps at
least 95% of stock throughput, and the cost per task and per year at stock and at the knee.

Stock is the card's default limit where the sweep measured it, else the highest limit it measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import cost
from .cost import J_PER_KWH

KEEP = 0.95  # "keeps >= 95% of stock throughput"
PLATEAU = 0.02  # power rising by less than this share counts as not rising

# class, throughput column or formula, its unit, work units per row, the unit's name
CLASSES = {
    "decode": ("tg_tokens_per_s", "tokens/s", lambda r: r["output_tokens"], "output token"),
    "prompt processing": ("pp_tokens_per_s", "tokens/s", lambda r: r["prompt_tokens"], "prompt token"),
    "image": ("images_per_s", "images/s", lambda r: r["images"], "image"),
    "speech": ("audio_min_per_hour", "audio min/h", lambda r: r["audio_s"] / 60, "audio minute"),
}


def work_class(row) -> str | None:
    if row["kind"] == "llm":
        has_pp, has_tg = pd.notna(row.get("pp_tokens_per_s")), pd.notna(row.get("tg_tokens_per_s"))
        return "decode" if has_tg and not has_pp else "prompt processing" if has_pp and not has_tg else None
    return {"image": "image", "asr": "speech"}.get(row["kind"])


@dataclass
class Point:
    limit_w: float
    throughput: float
    energy_per_unit_j: float
    avg_power_w: float | None


@dataclass
class Curve:
    machine: str
    workload: str
    test: str
    cls: str
    unit: str
    throughput_unit: str
    default_w: float | None
    points: list[Point] = field(default_factory=list)
    estimated: bool = False
    rows: str = ""

    @property
    def stock(self) -> Point:
        at_default = [p for p in self.points if self.default_w is not None and abs(p.limit_w - self.default_w) < 0.5]
        return at_default[0] if at_default else max(self.points, key=lambda p: p.limit_w)

    @property
    def knee(self) -> Point:
        return min(self.points, key=lambda p: p.energy_per_unit_j)

    @property
    def keeps_95(self) -> Point | None:
        ok = [p for p in self.points if p.throughput >= KEEP * self.stock.throughput]
        return min(ok, key=lambda p: p.limit_w) if ok else None

    @property
    def plateau_from_w(self) -> float | None:
        """The lowest limit from which a higher limit draws no more power (within 2%); None if power still rises
        at the highest limit measured."""
        pts = [p for p in self.points if p.avg_power_w is not None]
        for i, p in enumerate(pts[:-1]):
            if all(q.avg_power_w <= p.avg_power_w * (1 + PLATEAU) for q in pts[i + 1:]):
                return p.limit_w
        return None

    def usd_per_task(self, p: Point, b, usd_per_kwh: float) -> float:
        """Energy at the wall for one unit at this point (the build's PSU and platform), priced."""
        unit = cost.LocalUnit(seconds=self.seconds_per_unit(p), device_energy_j=p.energy_per_unit_j, basis="measured")
        return cost.wall_energy_j(unit, b) / J_PER_KWH * usd_per_kwh

    def seconds_per_unit(self, p: Point) -> float:
        return 3600 / p.throughput if self.cls == "speech" else 1 / p.throughput  # audio min/h; others per second


def curves(df: pd.DataFrame) -> list[Curve]:
    if df.empty or "power_limit_w" not in df or not df["power_limit_w"].notna().any():
        return []
    sw = df[df["power_limit_w"].notna()].copy()
    sw = sw.assign(images_per_s=1 / sw["s_per_image"]) if "s_per_image" in sw else sw
    sw["_class"] = sw.apply(work_class, axis=1)
    out = []
    for (machine, workload, test, cls), g in sw[sw["_class"].notna()].groupby(
            ["machine", "workload", "test", "_class"], sort=False):
        col, tunit, units, uname = CLASSES[cls]
        c = Curve(machine, workload, test, cls, uname, tunit,
                  float(g["power_limit_default_w"].dropna().iloc[0]) if g["power_limit_default_w"].notna().any()
                  else None, estimated=bool(g["estimated"].any()))
        for limit, h in g.groupby("power_limit_w"):
            e = (h["energy_j"] / h.apply(units, axis=1)).median()
            if pd.isna(e) or h[col].isna().all():
                continue
            c.points.append(Point(float(limit), float(h[col].median()), float(e),
                                  float(h["avg_power_w"].median()) if h["avg_power_w"].notna().any() else None))
        c.points.sort(key=lambda p: p.limit_w)
        if len(c.points) >= 2:
            from .rows import provenance

            c.rows = provenance(g)
            out.append(c)
    return out
