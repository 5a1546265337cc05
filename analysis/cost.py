"""The cost model, one for `cost`, the scenarios, the routing and the report. A local task costs its energy at the
wall (device energy through the PSU plus the rest of the platform while busy), its share of the box's idle hours,
and its share of the hardware over the box's life (amortization); the first two are the running cost. Break-even:
months = hardware ÷ (API per month − local running cost per month), "never" when that difference is ≤ 0, and no
break-even at all when the volume is more than the box can serve in its hours on. Token prices are computed by the
price library for the actual request (tiers included).

One calendar, declared here and nowhere else: months of 30 days, years of 365.25 days; a lifetime is in those years.

Pure formulas on numbers and catalog entries: no pandas and no result files (``analysis.rows`` turns rows into a
``LocalUnit``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import Build, LLMPrice

J_PER_KWH = 3.6e6
DAYS_PER_MONTH = 30.0
DAYS_PER_YEAR = 365.25
DAYS_PER_WEEK = 7.0
# a volume key of a mix or scenario task -> the days it spans (so 30/7 weeks a month)
DAYS_PER_VOLUME = {"units_per_day": 1.0, "units_per_week": DAYS_PER_WEEK, "units_per_month": DAYS_PER_MONTH}
MONTHS_PER_YEAR = DAYS_PER_YEAR / DAYS_PER_MONTH
CALENDAR = "months of 30 days, years of 365.25 days"


def months_to_years(months: float) -> float:
    return months * DAYS_PER_MONTH / DAYS_PER_YEAR


def lifetime_months(b: Build) -> float:
    return b.lifetime_years * MONTHS_PER_YEAR


@dataclass(frozen=True)
class LocalUnit:
    """How the local box does one task: busy seconds and device energy, and where those figures come from."""

    seconds: float
    device_energy_j: float | None  # None: no device measurement; wall power from the build is used instead
    basis: str  # "measured", "anchor", "guide"
    energy_source: str = ""
    estimated: bool = False
    rows: str = ""  # provenance of measured figures
    idle_device_w: float | None = None  # the rows' measured idle baseline (device level), where they have one
    model: str = ""  # the local model that does the task (for the quality caveat)
    parts: tuple = ()  # (domain, share of device energy, estimated) where a measured and an estimated part mix
    cpu_share: float = 0.0  # the CPU meter's share of device_energy_j: those watts are the platform's, not extra


@dataclass(frozen=True)
class LocalMonthly:
    """The box's monthly running cost at a daily volume, its capacity, and its hardware's monthly share."""

    energy_usd: float
    idle_usd: float
    busy_hours_per_day: float
    capacity_per_day: float | None  # None: not checked (no speed figure)
    over_capacity: bool
    basis: str
    note: str = ""
    amortization_usd: float | None = None  # per month over the box's life; None without a hardware price
    tasks_per_day: float = 0.0

    @property
    def total_usd(self) -> float:
        """Running cost per month: energy and idle (what break-even subtracts from the API spend)."""
        return self.energy_usd + self.idle_usd

    @property
    def all_in_usd(self) -> float | None:
        return None if self.amortization_usd is None else self.total_usd + self.amortization_usd

    def per_task(self) -> "TaskCost":
        n = self.tasks_per_day * DAYS_PER_MONTH
        per = (lambda v: v / n if n > 0 and v is not None else None)  # noqa: E731
        return TaskCost(energy_usd=per(self.energy_usd), idle_usd=per(self.idle_usd),
                        amortization_usd=per(self.amortization_usd))


@dataclass(frozen=True)
class TaskCost:
    """One task's local cost, by component (None where it cannot be known)."""

    energy_usd: float | None
    idle_usd: float | None
    amortization_usd: float | None

    @property
    def running_usd(self) -> float | None:
        return None if self.energy_usd is None else self.energy_usd + (self.idle_usd or 0.0)

    @property
    def all_in_usd(self) -> float | None:
        r = self.running_usd
        return None if r is None or self.amortization_usd is None else r + self.amortization_usd


def api_llm_monthly(price: LLMPrice, requests_per_day: float, prompt_tokens: float, output_tokens: float,
                    days: float = DAYS_PER_MONTH) -> float:
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
        return f"{m:.1f} months ({months_to_years(m):.1f} years)"
    return f"{m:.1f} months"


def fmt_volume(v: float | None) -> str:
    """A crossover volume, rounded up: the named volume is one that already pays."""
    if v is None:
        return "no volume the box can serve"
    return f"{math.ceil(v):,}" if v >= 10 else f"{math.ceil(v * 100) / 100:.2g}"


def wall_energy_j(unit: LocalUnit, b: Build) -> float:
    """Energy at the wall for one task: device energy through the PSU plus the rest of the platform while busy;
    without a device measurement, the build's wall power while busy. Where the device energy holds the CPU meter's
    part (a GPU row's energy is the GPU counter plus the CPU), those watts are part of the platform figure (CPU,
    board, fans): only the platform watts beyond them are added, never the CPU twice."""
    if unit.device_energy_j is None:
        return b.busy_wall_w * unit.seconds
    return unit.device_energy_j / b.psu_efficiency + platform_beyond_cpu_w(unit, b) * unit.seconds


def platform_beyond_cpu_w(unit: LocalUnit, b: Build) -> float:
    """The platform's busy watts not already in the unit's measured device energy (its CPU meter's watts)."""
    cpu_w = unit.cpu_share * unit.device_energy_j / unit.seconds if unit.device_energy_j and unit.seconds > 0 else 0.0
    return max(0.0, b.platform_busy_w - cpu_w)


def tou_usd_per_kwh(table: list[tuple[float, float, float]], hours_on: float, on_from: float) -> float:
    """A time-of-use tariff as one price: the mean $/kWh of the hours the box is on (``hours_on`` hours a day from
    hour ``on_from``, past midnight if need be), its energy (busy and idle) taken as spread evenly over them.
    ``table``: (start hour, end hour, $/kWh) rows covering 0–24 once, in order."""
    total, t, end = 0.0, on_from, on_from + hours_on
    while t < end - 1e-9:
        h = t % 24
        start, stop, rate = next(r for r in table if r[0] <= h < r[1])
        step = min(end - t, stop - h)
        total += rate * step
        t += step
    return total / hours_on


def amortization_monthly(b: Build) -> float | None:
    """The hardware's share per month over its life; None without a hardware price."""
    return None if b.hardware_usd is None else b.hardware_usd / lifetime_months(b)


def capacity_per_day(seconds_per_task: float, hours_on: float) -> float | None:
    return hours_on * 3600 / seconds_per_task if seconds_per_task > 0 else None


def local_monthly(unit: LocalUnit, tasks_per_day: float, b: Build, usd_per_kwh: float, days: float = DAYS_PER_MONTH,
                  hours_per_day: float | None = None) -> LocalMonthly:
    hours_on = b.hours_per_day if hours_per_day is None else hours_per_day
    busy_h = tasks_per_day * unit.seconds / 3600
    energy_kwh = tasks_per_day * wall_energy_j(unit, b) / J_PER_KWH
    idle_kwh = (b.idle_wall_w or 0.0) * max(0.0, hours_on - busy_h) / 1000
    note = "" if b.idle_wall_w is not None else "idle wall power unknown for this build: not charged"
    return LocalMonthly(energy_usd=energy_kwh * usd_per_kwh * days, idle_usd=idle_kwh * usd_per_kwh * days,
                        busy_hours_per_day=busy_h, capacity_per_day=capacity_per_day(unit.seconds, hours_on),
                        over_capacity=busy_h > hours_on, basis=unit.basis, note=note,
                        amortization_usd=amortization_monthly(b), tasks_per_day=tasks_per_day)


def guide_local_monthly(b: Build, unit: LocalUnit | None = None, tasks_per_day: float = 0.0) -> LocalMonthly:
    """The guides' flat monthly power figure. Capacity comes from the build's speed figure (``unit``) where there is
    one; without it the output says "capacity not checked"."""
    if b.guide_power_usd_per_month is None:
        raise ValueError(f"build {b.id} has no guide power figure")
    cap = capacity_per_day(unit.seconds, b.hours_per_day) if unit is not None else None
    note = (f"the guide's flat ${b.guide_power_usd_per_month:g}/month"
            + (f" ({b.guide_power_basis})" if b.guide_power_basis else "")
            + ("" if cap is not None else "; capacity not checked (no speed figure)"))
    return LocalMonthly(energy_usd=b.guide_power_usd_per_month, idle_usd=0.0,
                        busy_hours_per_day=tasks_per_day * unit.seconds / 3600 if unit is not None else 0.0,
                        capacity_per_day=cap, over_capacity=cap is not None and tasks_per_day > cap, basis="guide",
                        note=note, amortization_usd=amortization_monthly(b), tasks_per_day=tasks_per_day)


# ------------------------------------------------------------------------------------------- units from catalog


def llm_unit_from_anchor(b: Build, output_tokens: int) -> LocalUnit:
    """The build's public/guide decode speed; prompt processing (20-50x faster on GPUs) is not counted."""
    a = b.anchor_llm
    if not a:
        raise LookupError(f"build {b.id} has no LLM speed figure")
    return LocalUnit(seconds=output_tokens / a["tg_tokens_per_s"], device_energy_j=None, basis="anchor",
                     rows=f"builds.toml {b.id}: {a['model']} at {a['tg_tokens_per_s']} tokens/s ({a['source']}), "
                          f"{b.busy_wall_w:g} W at the wall while busy")


def unit_from_anchor(b: Build, price_kind: str, output_tokens: int = 0) -> LocalUnit:
    """Busy seconds per priced unit (request, audio minute, character, image) from the build's speed figure for the
    kind, at its busy wall power; LookupError where the build has none."""
    if price_kind == "llm":
        return llm_unit_from_anchor(b, output_tokens)
    a = {"stt": b.anchor_stt, "tts": b.anchor_tts, "image": b.anchor_image}.get(price_kind) or {}
    if not a:
        raise LookupError(f"build {b.id} has no {price_kind} speed figure")
    if price_kind == "stt":
        seconds, what = 60 * a["rtf"], f"RTF {a['rtf']}"
    elif price_kind == "tts":
        seconds, what = a["rtf"] / a["chars_per_audio_s"], f"RTF {a['rtf']}, {a['chars_per_audio_s']} chars/s of speech"
    else:
        seconds, what = a["s_per_image"], f"{a['s_per_image']} s/image"
    return LocalUnit(seconds=seconds, device_energy_j=None, basis="anchor",
                     rows=f"builds.toml {b.id}: {a['model']} {what} ({a['source']}), {b.busy_wall_w:g} W at the wall "
                          "while busy")


# ------------------------------------------------------------------------------------------- volume sweep


def breakeven_at(n: float, api_usd_per_task: float, unit: LocalUnit | None, b: Build, usd_per_kwh: float,
                 days: float = DAYS_PER_MONTH, flat_local_monthly: float | None = None,
                 hours_per_day: float | None = None) -> tuple[float, float, float | None, bool]:
    """(API per month, local running per month, break-even months or None, over capacity) at n tasks per day.
    ``flat_local_monthly`` is the guides' flat power figure, used instead of the modeled running cost; capacity is
    still checked with ``unit`` (the build's speed) where given. Over capacity, there is no break-even (None)."""
    api = api_usd_per_task * n * days
    if flat_local_monthly is not None:
        cap = capacity_per_day(unit.seconds, b.hours_per_day if hours_per_day is None else hours_per_day) \
            if unit is not None else None
        over = cap is not None and n > cap
        be = None if over else breakeven_months(b.hardware_usd, api, flat_local_monthly)
        return api, flat_local_monthly, be, over
    m = local_monthly(unit, n, b, usd_per_kwh, days, hours_per_day)
    be = None if m.over_capacity else breakeven_months(b.hardware_usd, api, m.total_usd)
    return api, m.total_usd, be, m.over_capacity


def crossover_volume(api_usd_per_task: float, unit: LocalUnit | None, b: Build, usd_per_kwh: float,
                     days: float = DAYS_PER_MONTH, flat_local_monthly: float | None = None,
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
