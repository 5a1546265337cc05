"""Scenario files (analysis/scenarios/*.toml): the guides' break-even examples, case studies and routing pattern,
computed with the cost model, side by side with what the guides printed."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import ConfigError

from . import catalog, cost

SCENARIOS = Path(__file__).parent / "scenarios"


@dataclass
class TaskLine:
    name: str
    kind: str
    units_per_month: float
    price_id: str
    api_usd_per_month: float
    local_seconds_per_day: float
    local_basis: str


@dataclass
class CaseResult:
    scenario_id: str
    title: str
    source: str
    label: str
    build: catalog.Build
    lines: list[TaskLine]
    api_monthly: float
    local: cost.LocalMonthly
    breakeven: float | None
    guide_style_breakeven: float | None
    guide: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "<syntax>", "valid TOML", f"<{e}>") from e


def _unit_seconds(task: dict, b: catalog.Build) -> tuple[float, str]:
    """Busy seconds per unit (request, audio minute, character, image) from the build's speed figures."""
    kind = task["kind"]
    try:
        if kind == "llm":
            u = cost.llm_unit_from_anchor(b, task["output_tokens"])
            return u.seconds, u.rows
        if kind == "stt" and b.anchor_stt:
            a = b.anchor_stt
            return 60 * a["rtf"], f"{a['model']} RTF {a['rtf']} ({a['source']})"
        if kind == "tts" and b.anchor_tts:
            a = b.anchor_tts
            return a["rtf"] / a["chars_per_audio_s"], f"{a['model']} RTF {a['rtf']} ({a['source']})"
        if kind == "image" and b.anchor_image:
            return b.anchor_image["s_per_image"], f"{b.anchor_image['model']} ({b.anchor_image['source']})"
    except LookupError:
        pass
    return 0.0, f"no {kind} speed figure for {b.id}: busy time not counted, idle power only"


def _api_line(task: dict, per_month: float, file: Path, days: float) -> tuple[str, float]:
    kind = task["kind"]
    if kind == "llm":
        price = catalog.llm_price(task["api"])
        return price.id, price.request_usd(task["prompt_tokens"], task["output_tokens"]) * per_month
    if kind in ("stt", "tts", "image"):
        price = catalog.unit_price(kind, task["api"])
        return price.id, price.usd_per_unit * per_month
    raise ConfigError(file, "tasks.kind", "one of llm, stt, tts, image", kind)


def compute(path: Path, power: str | None = None, usd_per_kwh: float | None = None) -> list[CaseResult]:
    data = load(path)
    sc = data["scenario"]
    b = catalog.build(sc["build"])
    days = catalog.days_per_month()
    kwh = catalog.tariff_usd_per_kwh() if usd_per_kwh is None else usd_per_kwh
    power = power or sc.get("power", "guide")
    out = []
    for case in data.get("cases", [{"label": "as given", "scale": 1}]):
        scale = case.get("scale", 1)
        lines = []
        for t in data["tasks"]:
            per_month = (t["units_per_day"] * days if "units_per_day" in t else t["units_per_month"]) * scale
            price_id, usd = _api_line(t, per_month, path, days)
            secs, basis = _unit_seconds(t, b)
            lines.append(TaskLine(t["name"], t["kind"], per_month, price_id, usd, secs * per_month / days, basis))
        api = sum(x.api_usd_per_month for x in lines)
        notes = []
        if power == "guide" and b.guide_power_usd_per_month is not None:
            local = cost.guide_local_monthly(b)
        else:
            busy_s = sum(x.local_seconds_per_day for x in lines)
            unit = cost.LocalUnit(seconds=busy_s, device_energy_j=None, basis="model")
            local = cost.local_monthly(unit, 1, b, kwh, days)
            notes += sorted({x.local_basis for x in lines})
        be = cost.breakeven_months(b.hardware_usd, api, local.total_usd)
        guide_style = cost.guide_breakeven_months(b.hardware_usd, api) if b.hardware_usd and api > 0 else None
        out.append(CaseResult(scenario_id=sc["id"], title=sc["title"], source=sc["source"], label=case["label"],
                              build=b, lines=lines, api_monthly=api, local=local, breakeven=be,
                              guide_style_breakeven=guide_style,
                              guide={k[6:]: v for k, v in case.items() if k.startswith("guide_")}, notes=notes))
    return out


def all_breakeven_files() -> list[Path]:
    return sorted(p for p in SCENARIOS.glob("*.toml") if not p.name.startswith("routing-"))


# ----------------------------------------------------------------------------------------------------- routing


@dataclass
class RoutingResult:
    title: str
    source: str
    build: catalog.Build
    requests_per_day: float
    all_api_monthly: float
    hybrid_api_monthly: float
    hybrid_local_monthly: float
    overflow_share: float
    rows: list[dict]
    all_api_id: str = ""

    @property
    def hybrid_monthly(self) -> float:
        return self.hybrid_api_monthly + self.hybrid_local_monthly

    @property
    def savings(self) -> float:
        return 1 - self.hybrid_monthly / self.all_api_monthly if self.all_api_monthly else 0.0


def routing(path: Path, requests_per_day: float | None = None, usd_per_kwh: float | None = None) -> RoutingResult:
    """Monthly cost of the routed mix against all-API. Local routes run within the box's capacity (hours on per
    day); what does not fit overflows to the all-API model and is charged as such."""
    data = load(path)
    sc = data["scenario"]
    b = catalog.build(sc["build"])
    days = catalog.days_per_month()
    kwh = catalog.tariff_usd_per_kwh() if usd_per_kwh is None else usd_per_kwh
    n = requests_per_day if requests_per_day is not None else sc["requests_per_day"]
    default = catalog.llm_price(sc["all_api"])
    all_api = hybrid_api = 0.0
    busy_s = 0.0
    capacity_s = b.hours_per_day * 3600
    rows = []
    overflow = 0.0
    for r in data["routes"]:
        reqs = n * r["share"]
        p, o = r["prompt_tokens"], r["output_tokens"]
        all_api += default.request_usd(p, o) * reqs * days
        if "local" in r:
            unit = cost.llm_unit_from_anchor(b, o)
            fits = min(reqs, max(0.0, (capacity_s - busy_s) / unit.seconds))
            busy_s += fits * unit.seconds
            spill = reqs - fits
            overflow += spill
            hybrid_api += default.request_usd(p, o) * spill * days
            rows.append({"route": ", ".join(r["task_types"]), "requests_per_day": reqs, "to": f"local {r['local']}",
                         "local_per_day": fits, "overflow_per_day": spill, "basis": unit.rows})
        else:
            price = catalog.llm_price(r["api"])
            hybrid_api += price.request_usd(p, o) * reqs * days
            rows.append({"route": ", ".join(r["task_types"]), "requests_per_day": reqs, "to": f"API {price.id}",
                         "local_per_day": 0, "overflow_per_day": 0, "basis": price.source})
    local = cost.local_monthly(cost.LocalUnit(seconds=busy_s, device_energy_j=None, basis="anchor"), 1, b, kwh, days)
    return RoutingResult(title=sc["title"], source=sc["source"], build=b, requests_per_day=n, all_api_monthly=all_api,
                         hybrid_api_monthly=hybrid_api, hybrid_local_monthly=local.total_usd,
                         overflow_share=overflow / n if n else 0.0, rows=rows, all_api_id=default.id)
