"""The cost model. Local running cost (measured energy through the PSU, the rest of the platform while busy,
idle power over the hours the box is on) is subtracted from the API spend before dividing the hardware price:
months = hardware ÷ (API per month − local running cost per month), and "never" when that difference is ≤ 0.
Token prices are weighted by the actual input and output tokens.

Pure formulas on numbers and catalog entries: no pandas and no result files (``analysis.rows`` turns rows into a
``LocalUnit``)."""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import Build, LLMPrice

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class LocalUnit:
    """How the local box does one task: busy seconds and device energy, and where those figures come from."""

    seconds: float
    device_energy_j: float | None  # None: no device measurement; wall power from the build is used instead
    basis: str  # "measured", "anchor", "guide"
    energy_source: str = ""
    estimated: bool = False
    rows: str = ""  # provenance of measured figures


@dataclass(frozen=True)
class LocalMonthly:
    energy_usd: float
    idle_usd: float
    busy_hours_per_day: float
    capacity_per_day: float | None
    over_capacity: bool
    basis: str
    note: str = ""

    @property
    def total_usd(self) -> float:
        return self.energy_usd + self.idle_usd


def api_llm_monthly(price: LLMPrice, requests_per_day: float, prompt_tokens: float, output_tokens: float,
                    days: float = 30) -> float:
    return price.request_usd(prompt_tokens, output_tokens) * requests_per_day * days


def guide_blended_daily(price: LLMPrice, requests_per_day: float, prompt_tokens: float, output_tokens: float) -> float:
    """The guides' arithmetic: all tokens at the plain average of the input and output prices."""
    avg = (price.usd_per_mtok_in + price.usd_per_mtok_out) / 2
    return requests_per_day * (prompt_tokens + output_tokens) * avg / 1e6


def breakeven_months(hardware_usd: float | None, api_monthly: float, local_monthly: float) -> float | None:
    """Months until the hardware pays for itself; None means never (the box costs at least as much to run as the
    API would)."""
    if hardware_usd is None:
        return None
    saving = api_monthly - local_monthly
    if saving <= 0:
        return None
    return hardware_usd / saving


def guide_breakeven_months(hardware_usd: float, api_monthly: float) -> float:
    """The guides' arithmetic: hardware ÷ API spend, ignoring what the box costs to run."""
    return hardware_usd / api_monthly


def fmt_months(m: float | None) -> str:
    if m is None:
        return "never"
    if m >= 24:
        return f"{m:.1f} months ({m / 12:.1f} years)"
    return f"{m:.1f} months"


def fmt_volume(v: float | None) -> str:
    return "no volume the box can serve" if v is None else f"{v:,.0f}" if v >= 10 else f"{v:.2g}"


def wall_energy_j(unit: LocalUnit, b: Build) -> float:
    """Energy at the wall for one task: device energy through the PSU plus the rest of the platform while busy;
    without a device measurement, the build's wall power while busy."""
    if unit.device_energy_j is None:
        return b.busy_wall_w * unit.seconds
    return unit.device_energy_j / b.psu_efficiency + b.platform_busy_w * unit.seconds


def local_monthly(unit: LocalUnit, tasks_per_day: float, b: Build, usd_per_kwh: float, days: float = 30,
                  hours_per_day: float | None = None) -> LocalMonthly:
    hours_on = b.hours_per_day if hours_per_day is None else hours_per_day
    busy_h = tasks_per_day * unit.seconds / 3600
    capacity = hours_on * 3600 / unit.seconds if unit.seconds > 0 else None
    energy_kwh = tasks_per_day * wall_energy_j(unit, b) / J_PER_KWH
    idle_kwh = (b.idle_wall_w or 0.0) * max(0.0, hours_on - busy_h) / 1000
    note = "" if b.idle_wall_w is not None else "idle wall power unknown for this build: not charged"
    return LocalMonthly(energy_usd=energy_kwh * usd_per_kwh * days, idle_usd=idle_kwh * usd_per_kwh * days,
                        busy_hours_per_day=busy_h, capacity_per_day=capacity, over_capacity=busy_h > hours_on,
                        basis=unit.basis, note=note)


def guide_local_monthly(b: Build) -> LocalMonthly:
    if b.guide_power_usd_per_month is None:
        raise ValueError(f"build {b.id} has no guide power figure")
    return LocalMonthly(energy_usd=b.guide_power_usd_per_month, idle_usd=0.0, busy_hours_per_day=b.hours_per_day,
                        capacity_per_day=None, over_capacity=False, basis="guide",
                        note=f"the guide's flat ${b.guide_power_usd_per_month:g}/month"
                             + (f" ({b.guide_power_basis})" if b.guide_power_basis else ""))


def amortization_per_task(b: Build, tasks_per_day: float) -> float | None:
    if b.hardware_usd is None or tasks_per_day <= 0:
        return None
    return b.hardware_usd / (b.lifetime_years * 365 * tasks_per_day)


# ------------------------------------------------------------------------------------------- units from catalog


def llm_unit_from_anchor(b: Build, output_tokens: int) -> LocalUnit:
    """The build's public/guide decode speed; prompt processing (20-50x faster on GPUs) is not counted."""
    a = b.anchor_llm
    if not a:
        raise LookupError(f"build {b.id} has no LLM speed figure")
    return LocalUnit(seconds=output_tokens / a["tg_tokens_per_s"], device_energy_j=None, basis="anchor",
                     rows=f"builds.toml {b.id}: {a['model']} at {a['tg_tokens_per_s']} tokens/s ({a['source']}), "
                          f"{b.busy_wall_w:g} W at the wall while busy")


# ------------------------------------------------------------------------------------------- volume sweep


def breakeven_at(n: float, api_usd_per_task: float, unit: LocalUnit | None, b: Build, usd_per_kwh: float,
                 days: float = 30, flat_local_monthly: float | None = None,
                 hours_per_day: float | None = None) -> tuple[float, float, float | None, bool]:
    """(API per month, local running per month, break-even months or None, over capacity) at n tasks per day.
    ``flat_local_monthly`` is the guides' flat power figure, used instead of the modeled running cost."""
    api = api_usd_per_task * n * days
    if flat_local_monthly is not None:
        return api, flat_local_monthly, breakeven_months(b.hardware_usd, api, flat_local_monthly), False
    m = local_monthly(unit, n, b, usd_per_kwh, days, hours_per_day)
    return api, m.total_usd, breakeven_months(b.hardware_usd, api, m.total_usd), m.over_capacity


def crossover_volume(api_usd_per_task: float, unit: LocalUnit | None, b: Build, usd_per_kwh: float,
                     days: float = 30, flat_local_monthly: float | None = None,
                     within_months: float | None = None, hours_per_day: float | None = None) -> float | None:
    """The smallest daily volume at which the box costs less to run than the API (or, with ``within_months``,
    pays for itself within that many months); None if no volume the box can serve does."""
    def ok(n):
        api, local, be, over = breakeven_at(n, api_usd_per_task, unit, b, usd_per_kwh, days, flat_local_monthly,
                                            hours_per_day)
        if over:
            return None
        if within_months is None:
            return api > local
        return be is not None and be <= within_months

    hi = 1.0
    while True:  # grow until it pays or the box runs out of hours
        r = ok(hi)
        if r is None:
            return None
        if r:
            break
        hi *= 2
        if hi > 1e9:
            return None
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
