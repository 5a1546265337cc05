"""Scenario files (analysis/scenarios/*.toml): the guides' break-even examples, case studies and routing pattern,
computed with the cost model, side by side with what the guides printed."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import ConfigError

from . import catalog, cost

SCENARIOS = Path(__file__).parent / "scenarios"

# The errors the guides' arithmetic makes, named once; a scenario case lists the ones behind its guide figures
# (``guide_errors``) and the report's "why they differ" says them in these words.
GUIDE_ERRORS = {
    "unweighted_blend": "input and output prices averaged into one rate, without weighting by the tokens of each",
    "running_cost_ignored": "hardware ÷ API spend: the box's own running cost is left out",
    "gpt4o_mini_price": "GPT-4.1-mini priced at gpt-4o-mini's $0.15/$0.60 per 1M (it is $0.40/$1.60)",
    "blend_of_wrong_price": "the $0.375/1M blend averages gpt-4o-mini's prices, not GPT-4.1-mini's ($0.40/$1.60)",
    "days_for_years": "days written where the arithmetic gives years",
    "four_week_month": "a month of 4 weeks (28 days); shadowbench counts 30/7 weeks per month",
    "flat_power_arithmetic": "the flat monthly power figure does not follow from its own basis in 30-day months",
    "capacity_ignored": "the volume needs more busy hours than the box has in its hours on: it cannot serve it",
    "retired_model": "the API model priced has been retired since (see `shadowbench prices`)",
}


@dataclass
class TaskLine:
    name: str
    kind: str
    units_per_month: float
    price_id: str
    api_usd_per_month: float
    local_seconds_per_day: float
    local_basis: str
    output_tokens: int = 0


@dataclass
class CaseResult:
    """One case of a scenario: shadowbench's figures from the corrected model, the guide's as printed."""

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
    over_capacity: bool = False
    capacity_note: str = ""

    def why(self) -> str:
        """The named guide errors behind the difference, then the case's own arithmetic note."""
        parts = [GUIDE_ERRORS[e] for e in self.guide.get("errors", [])]
        if self.guide.get("note"):
            parts.append(self.guide["note"])
        return "; ".join(parts) or "; ".join(self.notes)


def load(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "<syntax>", "valid TOML", f"<{e}>") from e


def _unit_seconds(task: dict, b: catalog.Build) -> tuple[float | None, str]:
    """Busy seconds per unit (request, audio minute, character, image) from the build's speed figures; None where
    the build has no speed figure for the kind."""
    try:
        u = cost.unit_from_anchor(b, task["kind"], task.get("output_tokens", 0))
        return u.seconds, u.rows
    except LookupError:
        return None, f"no {task['kind']} speed figure for {b.id}: busy time not counted, idle power only"


def _api_line(task: dict, per_month: float, file: Path, days: float) -> tuple[str, float]:
    kind = task["kind"]
    if kind == "llm":
        price = catalog.llm_price(task["api"])
        return price.id, price.request_usd(task["prompt_tokens"], task["output_tokens"]) * per_month
    if kind in catalog.UNIT_KINDS:
        price = catalog.unit_price(kind, task["api"])
        return price.id, price.usd_per_unit * per_month
    raise ConfigError(file, "tasks.kind", "one of llm, stt, tts, image", kind)


def compute(path: Path, power: str | None = None, usd_per_kwh: float | None = None) -> list[CaseResult]:
    data = load(path)
    sc = data["scenario"]
    b = catalog.build(sc["build"])
    days = cost.DAYS_PER_MONTH
    kwh = catalog.tariff_usd_per_kwh() if usd_per_kwh is None else usd_per_kwh
    power = power or sc.get("power", "guide")
    out = []
    for case in data.get("cases", [{"label": "as given", "scale": 1}]):
        scale = case.get("scale", 1)
        lines = []
        checked = True
        for t in data["tasks"]:
            per_month = _per_month(t, path) * scale
            price_id, usd = _api_line(t, per_month, path, days)
            secs, basis = _unit_seconds(t, b)
            checked = checked and secs is not None
            lines.append(TaskLine(t["name"], t["kind"], per_month, price_id, usd, (secs or 0.0) * per_month / days,
                                  basis, t.get("output_tokens", 0)))
        api = sum(x.api_usd_per_month for x in lines)
        notes = []
        busy_s = sum(x.local_seconds_per_day for x in lines)
        unit = cost.LocalUnit(seconds=busy_s, device_energy_j=None, basis="model")  # one day's work as one task
        if power == "guide" and b.guide_power_usd_per_month is not None:
            local = cost.guide_local_monthly(b, unit if checked and busy_s > 0 else None, tasks_per_day=1)
        else:
            local = cost.local_monthly(unit, 1, b, kwh, days)
            notes += sorted({x.local_basis for x in lines})
        over = checked and busy_s > b.hours_per_day * 3600
        cap_note = (f"needs {busy_s / 3600:,.1f} busy hours a day; the box is on {b.hours_per_day:g}" if over
                    else "" if checked else "capacity not checked (no speed figure for every task)")
        be = None if over else cost.breakeven_months(b.hardware_usd, api, local.total_usd)
        guide_style = cost.guide_breakeven_months(b.hardware_usd, api) if b.hardware_usd and api > 0 else None
        out.append(CaseResult(scenario_id=sc["id"], title=sc["title"], source=sc["source"], label=case["label"],
                              build=b, lines=lines, api_monthly=api, local=local, breakeven=be,
                              guide_style_breakeven=guide_style,
                              guide={k[6:]: v for k, v in case.items() if k.startswith("guide_")}, notes=notes,
                              over_capacity=over, capacity_note=cap_note))
    return out


def capped(r: CaseResult):
    """A one-task case over capacity as `cost` answers it (analysis/frame.py): the box at its capacity, the rest on
    the API, on the build's catalog figures."""
    from . import frame

    [t] = r.lines
    per_day = t.units_per_month / cost.DAYS_PER_MONTH
    unit = cost.unit_from_anchor(r.build, t.kind, t.output_tokens)
    fr = frame.build_frame(frame.Options(), r.build.id)
    return frame.answer(fr, t.api_usd_per_month / t.units_per_month, per_day, unit, volumes=False)


def _per_month(t: dict, path: Path) -> float:
    """Units per 30-day month from units_per_day, units_per_week (30/7 weeks a month) or units_per_month."""
    for key, days in cost.DAYS_PER_VOLUME.items():
        if key in t:
            return t[key] / days * cost.DAYS_PER_MONTH
    raise ConfigError(path, "tasks", "units_per_day, units_per_week or units_per_month", "<none of them>")


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


def routing(path: Path, requests_per_day: float | None = None, usd_per_kwh: float | None = None,
            build: catalog.Build | None = None, local_unit=None) -> RoutingResult:
    """Monthly cost of the routed mix against all-API. Local routes run within the box's capacity (hours on per
    day); what does not fit overflows to the all-API model and is charged as such. ``local_unit(output_tokens)``
    gives a local request's busy seconds and energy from measured serving rows (default: the build's speed
    figure); ``build`` replaces the scenario's build (a measured machine's)."""
    data = load(path)
    sc = data["scenario"]
    b = build or catalog.build(sc["build"])
    days = cost.DAYS_PER_MONTH
    kwh = catalog.tariff_usd_per_kwh() if usd_per_kwh is None else usd_per_kwh
    n = requests_per_day if requests_per_day is not None else sc["requests_per_day"]
    default = catalog.llm_price(sc["all_api"])
    all_api = hybrid_api = 0.0
    busy_s = 0.0
    capacity_s = b.hours_per_day * 3600
    rows = []
    overflow = 0.0
    energy_j = 0.0
    for r in data["routes"]:
        reqs = n * r["share"]
        p, o = r["prompt_tokens"], r["output_tokens"]
        all_api += default.request_usd(p, o) * reqs * days
        if "local" in r:
            unit = local_unit(o) if local_unit else cost.llm_unit_from_anchor(b, o)
            fits = min(reqs, max(0.0, (capacity_s - busy_s) / unit.seconds))
            busy_s += fits * unit.seconds
            if unit.device_energy_j is not None:
                energy_j += fits * cost.wall_energy_j(unit, b)
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
    day = cost.LocalUnit(seconds=busy_s, device_energy_j=None, basis="anchor")
    if local_unit is not None:  # measured energy: the day's wall energy over its busy seconds
        day = cost.LocalUnit(seconds=busy_s, device_energy_j=None, basis="measured serving")
        b = _with_busy_watts(b, energy_j / busy_s if busy_s > 0 else 0.0)
    local = cost.local_monthly(day, 1, b, kwh, days)
    return RoutingResult(title=sc["title"], source=sc["source"], build=b, requests_per_day=n, all_api_monthly=all_api,
                         hybrid_api_monthly=hybrid_api, hybrid_local_monthly=local.total_usd,
                         overflow_share=overflow / n if n else 0.0, rows=rows, all_api_id=default.id)


def _with_busy_watts(b: catalog.Build, watts: float) -> catalog.Build:
    from dataclasses import replace

    return replace(b, busy_wall_w=watts)
