"""One pricing frame: everything around the cost model that decides an answer, built in one place for `cost` and
`advise` (and, through them, the report's question section).

A frame is the build as priced (the user's figures first, then a smart plug's calibration or the rows' measured
idle, then builds.toml), the electricity price, and whether the hardware is already owned and the box on anyway.
``answer()`` prices one task at a daily volume in a frame:

- over capacity, the box runs at its capacity and the rest goes to the API (the capped answer), with its break-even;
- the decision counts the hardware unless it is owned: local (or hybrid, over capacity) only where local is cheaper
  all-in over the box's life, which is the same as "the hardware pays back within its life"; owned hardware
  decides on running cost alone; without a hardware price the decision is on running cost and says so.

Every output names its frame in one line (``Frame.words``)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.errors import ConfigError

from . import catalog, cost

# a frame's options: the flags of `cost` and `advise`, and the same keys (underscored) in a mix file's [scenario]
BUILD_FIELDS = {"hardware_usd": "hardware_usd", "lifetime_years": "lifetime_years", "idle_w": "idle_wall_w",
                "busy_w": "busy_wall_w", "psu_efficiency": "psu_efficiency", "platform_w": "platform_busy_w",
                "hours_per_day": "hours_per_day"}
OPTION_KEYS = (*BUILD_FIELDS, "usd_per_kwh", "tou", "on_from", "already_own", "box_on_anyway")

# what a question may ask: far past any real box or bill, short of numbers that print as 300 digits (the page's
# calculator takes the same bounds from the report's data)
MAX_VOLUME = 1e12  # units (requests, audio minutes, characters, images, tokens) a day
MAX_TOKENS = 10_000_000  # per request
MAX_USD_PER_KWH = 100.0
MAX_HARDWARE_USD = 1e9
MAX_YEARS = 100
MAX_WATTS = 1_000_000
RANGES = {  # option -> (ok, expected)
    "hours_per_day": (lambda v: 0 < v <= 24, "a number of hours > 0 and <= 24"),
    "usd_per_kwh": (lambda v: 0 <= v <= MAX_USD_PER_KWH, f"a price from 0 to {MAX_USD_PER_KWH:g}"),
    "hardware_usd": (lambda v: 0 <= v <= MAX_HARDWARE_USD, f"a price from 0 to {MAX_HARDWARE_USD:.0e}"),
    "lifetime_years": (lambda v: 0 < v <= MAX_YEARS, f"a number of years > 0 and <= {MAX_YEARS}"),
    "idle_w": (lambda v: 0 <= v <= MAX_WATTS, f"watts from 0 to {MAX_WATTS:,}"),
    "busy_w": (lambda v: 0 <= v <= MAX_WATTS, f"watts from 0 to {MAX_WATTS:,}"),
    "psu_efficiency": (lambda v: 0 < v <= 1, "a fraction > 0 and <= 1"),
    "platform_w": (lambda v: 0 <= v <= MAX_WATTS, f"watts from 0 to {MAX_WATTS:,}"),
    "on_from": (lambda v: 0 <= v < 24, "an hour >= 0 and < 24"),
}


def parse_tou(text: str, where: str = "<command line>", key: str = "--tou") -> list[tuple[float, float, float]]:
    """``"0-7:0.10,7-23:0.31,23-24:0.10"`` -> [(0, 7, 0.10), ...]; ConfigError unless the rows cover 0–24 once, in
    order, at prices >= 0."""
    rows_, at = [], 0.0
    expected = 'hour ranges with prices covering 0-24 in order, like "0-7:0.10,7-23:0.31,23-24:0.10"'
    try:
        for part in text.split(","):
            span, rate = part.split(":")
            a, b = (float(x) for x in span.split("-"))
            r = float(rate)
            if a != at or not (a < b <= 24) or not (math.isfinite(r) and r >= 0):
                raise ValueError(part)
            rows_.append((a, b, r))
            at = b
    except ValueError:
        raise ConfigError(where, key, expected, text) from None
    if at != 24:
        raise ConfigError(where, key, expected, text)
    return rows_


@dataclass(frozen=True)
class Options:
    """The user's framing of a question (None: the build's own figure)."""

    hardware_usd: float | None = None
    lifetime_years: float | None = None
    idle_w: float | None = None
    busy_w: float | None = None
    psu_efficiency: float | None = None
    platform_w: float | None = None
    hours_per_day: float | None = None
    usd_per_kwh: float | None = None
    tou: str | None = None
    on_from: float = 0.0
    already_own: bool = False
    box_on_anyway: bool = False
    where: str = "<command line>"  # what an error names: the command line, or a mix file

    @classmethod
    def from_args(cls, args) -> "Options":
        return cls(**{k: getattr(args, k, None) for k in OPTION_KEYS if getattr(args, k, None) is not None})

    @classmethod
    def from_mix(cls, path, head: dict) -> "Options":
        """The frame keys of a mix file's [scenario] table (the same names as the flags, underscored)."""
        got = {}
        for k in OPTION_KEYS:
            if k not in head:
                continue
            v = head[k]
            if k in ("already_own", "box_on_anyway"):
                if not isinstance(v, bool):
                    raise ConfigError(path, f"scenario.{k}", "true or false", v)
            elif k == "tou":
                if not isinstance(v, str):
                    raise ConfigError(path, "scenario.tou", 'a tariff like "0-7:0.10,7-23:0.31,23-24:0.10"', v)
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(path, f"scenario.{k}", RANGES[k][1], v)
            got[k] = float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        return cls(where=str(path), **got)

    def merged(self, over: "Options") -> "Options":
        """These options with ``over``'s given values on top (the command line over a mix file)."""
        given = {k: v for k in OPTION_KEYS if (v := getattr(over, k)) is not None and v is not False
                 and not (k == "on_from" and over.tou is None)}  # a 0 is given (0 == False, so `is`, not `in`)
        return replace(self, **given, where=over.where if given else self.where)

    def check(self) -> None:
        """Every number finite and in range, else the one-line error (exit 2) naming the flag or key."""
        for k, (ok, expected) in RANGES.items():
            v = getattr(self, k)
            if v is not None and not (math.isfinite(v) and ok(v)):
                raise ConfigError(self.where, self._name(k), expected, str(v))
        if self.tou is not None and self.usd_per_kwh is not None:
            raise ConfigError(self.where, self._name("tou"), "either a time-of-use tariff or a flat price, not both",
                              self.tou)

    def _name(self, key: str) -> str:
        return "--" + key.replace("_", "-") if self.where == "<command line>" else f"scenario.{key}"


@dataclass(frozen=True)
class Frame:
    build: catalog.Build  # the build as priced
    sources: dict  # build field -> where its figure comes from
    usd_per_kwh: float
    kwh_source: str
    already_own: bool = False
    box_on_anyway: bool = False
    warnings: tuple = ()
    calibration: object = None  # the machine's smart-plug calibration that framed it (analysis/calibration.py)

    @property
    def hours(self) -> float:
        return self.build.hours_per_day

    @property
    def wall_measured(self) -> bool:
        return any(str(v).startswith("measured at the wall") for v in self.sources.values())

    @property
    def amortization_usd(self) -> float | None:
        """The hardware's share per month in this frame: 0 when owned, None without a price."""
        return 0.0 if self.already_own else cost.amortization_monthly(self.build)

    def words(self, basis: str) -> str:
        """The frame in one line: the basis of the local figures, the hardware, the hours, the electricity and
        whether the wall figures were measured."""
        b = self.build
        hw = ("hardware already owned" if self.already_own else
              f"${b.hardware_usd:,.0f} of hardware over {b.lifetime_years:g} years" if b.hardware_usd is not None
              else "no hardware price (running cost only)")
        return (f"frame: {basis}; {b.id}, {hw}; on {b.hours_per_day:g} h/day"
                + (" (on anyway: only the device's idle charged)" if self.box_on_anyway else "")
                + f"; electricity ${self.usd_per_kwh:g}/kWh; wall power "
                + ("measured" if self.wall_measured else "assumed") + f"; {cost.CALENDAR}")


def build_frame(opts: Options, build_id: str) -> Frame:
    """The frame from the user's options and a build (before any rows are looked at)."""
    opts.check()
    b0 = catalog.build(build_id)
    src = f"builds.toml {b0.id}"
    over = {f: getattr(opts, a) for a, f in BUILD_FIELDS.items() if getattr(opts, a) is not None}
    b = replace(b0, **over)
    flag = (lambda a: "--" + a.replace("_", "-")) if opts.where == "<command line>" else \
        (lambda a: f"{Path(opts.where).name} {a}")
    sources = {f: (flag(a) if f in over else src) for a, f in BUILD_FIELDS.items()}
    if opts.box_on_anyway and "idle_wall_w" not in over:
        if b.device_idle_w is None:
            raise ConfigError(opts.where, "--box-on-anyway" if opts.where == "<command line>" else
                              "scenario.box_on_anyway", "a build with the device's own idle draw (device_idle_w in "
                              "builds.toml), or an idle wattage", b.id)
        b = replace(b, idle_wall_w=b.device_idle_w)
        sources["idle_wall_w"] = f"{src} device_idle_w (the box is on anyway: only the device's idle is added)"
    if opts.tou is not None:
        kwh = cost.tou_usd_per_kwh(parse_tou(opts.tou, opts.where, opts._name("tou")), b.hours_per_day, opts.on_from)
        kwh_src = f"tariff {opts.tou}: the mean of the {b.hours_per_day:g} h on from {opts.on_from:g}:00"
    elif opts.usd_per_kwh is not None:
        kwh, kwh_src = opts.usd_per_kwh, flag("usd_per_kwh")
    else:
        kwh, kwh_src = catalog.tariff_usd_per_kwh(), "builds.toml [tariff] (the guides' price)"
    return Frame(b, sources, kwh, kwh_src, opts.already_own, opts.box_on_anyway)


def with_rows(frame: Frame, opts: Options, unit: cost.LocalUnit | None, results_dir: Path, machine: str | None,
              workload: str | None = None) -> Frame:
    """The frame once measured rows price the task: a smart plug's calibration of their machine replaces the PSU,
    platform and idle figures, else their measured idle baseline is the box's idle (the user's figures win over
    both). Rows of a machine not mapped to the build never price that build's idle or power: a warning says so."""
    if unit is None or not unit.basis.startswith("measured"):
        return frame
    b, sources, warnings = frame.build, dict(frame.sources), list(frame.warnings)
    mapped = [m for m, bid in catalog.machine_builds().items() if bid == b.id]
    mine = machine or (mapped[0] if len(mapped) == 1 else None)
    if machine is not None and machine not in mapped:
        warnings.append(f"warning: machine {machine} is not mapped to build {b.id} in builds.toml [machines]: its "
                        "rows price the work's speed and device energy only; the build's own idle and wall figures "
                        "are used")
        return replace(frame, warnings=tuple(warnings))
    from . import calibration

    cal = calibration.load(Path(results_dir), mine)
    if cal is not None:
        b2, said = cal.apply(b, workload)
        for field_, given in (("psu_efficiency", opts.psu_efficiency), ("platform_busy_w", opts.platform_w),
                              ("idle_wall_w", opts.idle_w if not opts.box_on_anyway else b.idle_wall_w)):
            if given is None and field_ in said:
                b = replace(b, **{field_: getattr(b2, field_)})
                sources[field_] = said[field_]
    elif unit.idle_device_w is not None and opts.idle_w is None and not opts.box_on_anyway:
        b = replace(b, idle_wall_w=unit.idle_device_w / b.psu_efficiency)
        sources["idle_wall_w"] = ("the rows' measured idle baseline ÷ PSU efficiency"
                                  + (" (ESTIMATED)" if unit.estimated else ""))
    return replace(frame, build=b, sources=sources, warnings=tuple(warnings), calibration=cal)


@dataclass(frozen=True)
class Answer:
    """One task at a daily volume in a frame."""

    frame: Frame
    tasks_per_day: float
    api_per_task: float
    local: cost.LocalMonthly  # the box's month at the volume it serves (its capacity, over capacity)
    served_per_day: float
    unit: cost.LocalUnit | None  # None: the guide's flat figure
    crossover: float | None = None  # volume/day from which local costs less to run
    payback: float | None = None  # ... and pays the hardware back within its life
    notes: list = field(default_factory=list)

    @property
    def api_monthly(self) -> float:
        return self.api_per_task * self.tasks_per_day * cost.DAYS_PER_MONTH

    @property
    def over_capacity(self) -> bool:
        return self.served_per_day < self.tasks_per_day

    @property
    def overflow_per_day(self) -> float:
        return self.tasks_per_day - self.served_per_day

    @property
    def overflow_api_usd(self) -> float:
        return self.api_per_task * self.overflow_per_day * cost.DAYS_PER_MONTH

    @property
    def running_usd(self) -> float:
        """Local running cost per month, with the overflow's API bill over capacity."""
        return self.local.total_usd + self.overflow_api_usd

    @property
    def amortization_usd(self) -> float | None:
        return self.frame.amortization_usd

    @property
    def all_in_usd(self) -> float | None:
        a = self.amortization_usd
        return None if a is None else self.running_usd + a

    @property
    def running_saving_usd(self) -> float:
        return self.api_monthly - self.running_usd

    @property
    def breakeven_months(self) -> float | None:
        """Months until the hardware pays back; None when owned (nothing to pay back), without a price, or never."""
        if self.frame.already_own:
            return None
        return cost.breakeven_months(self.frame.build.hardware_usd, self.api_monthly, self.running_usd)

    @property
    def lifetime_months(self) -> float:
        return cost.lifetime_months(self.frame.build)

    @property
    def decides_on(self) -> str:
        """'running' (owned, or no hardware price) or 'all-in'."""
        return "running" if self.frame.already_own or self.amortization_usd is None else "all-in"

    @property
    def local_wins(self) -> bool:
        if self.decides_on == "running":
            return self.running_saving_usd > 0
        return self.all_in_usd < self.api_monthly

    @property
    def decision(self) -> str:
        """local, hybrid (the box at capacity, the rest on the API) or API."""
        if not self.local_wins or self.served_per_day <= 0:
            return "API"
        return "hybrid" if self.over_capacity else "local"

    def verdict(self, units: str) -> str:
        """The answer in plain words: all-in over the box's life first (running only when owned or unpriced)."""
        n, b = self.tasks_per_day, self.frame.build
        head = ""
        if self.over_capacity:
            head = (f"OVER CAPACITY: the box serves {self.served_per_day:,.0f} {units}/day in {self.frame.hours:g} h; "
                    f"{self.overflow_per_day:,.0f}/day go to the API (${self.overflow_api_usd:,.2f}/month); priced "
                    "capped: ")
        local_words = "the box at capacity plus the overflow" if self.over_capacity else "local"
        if self.decides_on == "running":
            why = "the box you own" if self.frame.already_own else "local (no hardware price: running cost only)"
            s = self.running_saving_usd
            return head + (f"{why} {'saves' if s > 0 else 'costs'} ${abs(s):,.2f}/month "
                           + ("from day one " if self.frame.already_own else "") + f"at {n:,g} {units}/day (API "
                           f"${self.api_monthly:,.2f} vs {local_words} ${self.running_usd:,.2f} running)")
        be = self.breakeven_months
        life = f"{b.lifetime_years:g}-year life"
        if self.local_wins:
            return head + (f"local is cheaper all-in: ${self.all_in_usd:,.2f}/month against the API's "
                           f"${self.api_monthly:,.2f} at {n:,g} {units}/day (${self.amortization_usd:,.2f} of "
                           f"hardware a month included); break-even {cost.fmt_months(be)} for ${b.hardware_usd:,.0f}"
                           f" of hardware, within its {life}")
        pays = (f"; local pays back within its life from {cost.fmt_volume(self.payback)} {units}/day"
                if self.payback is not None and self.payback > n else
                "; no volume the box can serve pays it back within its life" if self.payback is None else "")
        return head + (f"the API is cheaper: ${self.api_monthly:,.2f}/month against local all-in "
                       f"${self.all_in_usd:,.2f} at {n:,g} {units}/day (break-even {cost.fmt_months(be)}"
                       + (f", beyond the box's {life}" if be is not None else "") + ")" + pays)

    def running_words(self, units: str) -> str:
        """The second line: what the box costs to run, the hardware left out."""
        s = self.running_saving_usd
        return (f"to run: local {'saves' if s > 0 else 'costs'} ${abs(s):,.2f}/month (API ${self.api_monthly:,.2f}"
                f" vs local running ${self.running_usd:,.2f}"
                + (", the box at capacity + the overflow on the API" if self.over_capacity else "")
                + "); local costs less to run from "
                f"{cost.fmt_volume(self.crossover)} {units}/day")


def answer(frame: Frame, api_per_task: float, tasks_per_day: float, unit: cost.LocalUnit | None,
           flat: bool = False, volumes: bool = True) -> Answer:
    """``unit`` prices the box's work (measured rows or a build's speed figure); ``flat``: the guide's flat monthly
    power figure instead, ``unit`` (the build's speed, or None) checking capacity only."""
    b, kwh, hours, days = frame.build, frame.usd_per_kwh, frame.hours, cost.DAYS_PER_MONTH
    cap = cost.capacity_per_day(unit.seconds, hours) if unit is not None else None
    served = tasks_per_day if cap is None else min(tasks_per_day, cap)
    if flat:
        local = cost.guide_local_monthly(b, unit, served)
    else:
        local = cost.local_monthly(unit, served, b, kwh, days, hours)
    flat_usd = local.total_usd if flat else None
    cross = pay = None
    if volumes:
        cross = cost.crossover_volume(api_per_task, unit, b, kwh, days, flat_usd, hours_per_day=hours)
        if b.hardware_usd is not None:
            pay = cost.crossover_volume(api_per_task, unit, b, kwh, days, flat_usd,
                                        within_months=cost.lifetime_months(b), hours_per_day=hours)
    return Answer(frame, tasks_per_day, api_per_task, local, served, unit, cross, pay)
