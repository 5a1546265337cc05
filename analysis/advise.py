"""`shadowbench advise`: the guides' decision framework, fed by measurements, for a user's own mix of work.

A mix is the scenario file format (``analysis/scenarios/case-*.toml`` are the guides' case studies as mixes; the
routing pattern's routes are read as tasks too): tasks with a kind, a volume, a request shape and the API that would
do them, and constraints: ``private = true`` makes local mandatory, ``needs = "frontier"`` makes the API mandatory
(the guides' first two branches). Each task is then priced as ``shadowbench cost`` prices it alone (the same
``cost.local_monthly``, ``crossover_volume`` and API prices), and the box's hours are shared out: private work first,
then the work that saves the most per busy second; what does not fit overflows to the task's API (hybrid). The
month's totals count the box once: the local tasks' energy summed, the idle hours left and the hardware's share.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bench.errors import ConfigError

from . import catalog, cost, frame, rows

KINDS = ("llm", *catalog.UNIT_KINDS)
TASK_KEYS = {"name", "kind", "api", "units_per_day", "units_per_week", "units_per_month", "prompt_tokens",
             "output_tokens", "private", "needs", "workload"}
# a mix's [scenario] (or [mix]) table: what it is, the scenario table's own keys, and the frame's options
HEAD_KEYS = {"id", "title", "source", "build", "guide_verdict", "power", "requests_per_day", "all_api",
             *frame.OPTION_KEYS}


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    per_day: float
    api: str
    prompt_tokens: int = 0
    output_tokens: int = 0
    private: bool = False
    frontier: bool = False
    workload: str | None = None


@dataclass(frozen=True)
class Mix:
    path: Path
    title: str
    source: str
    build: str | None
    tasks: tuple[Task, ...]
    guide_verdict: str = ""
    options: frame.Options = frame.Options()


def _num(path, key, v, ok, expected):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
        raise ConfigError(path, key, expected, v if not isinstance(v, str) else repr(v))
    return v


def load_mix(path: str | Path) -> Mix:
    """A mix (or scenario) file, every problem a one-line ConfigError naming the file and key (exit status 2)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "<file>", "an existing mix file", "<no such file>") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "<syntax>", "valid TOML", f"<{e}>") from None
    table = "scenario" if "scenario" in data else "mix"
    head = data.get(table) or {}
    for k in head:
        if k not in HEAD_KEYS:
            raise ConfigError(path, f"{table}.{k}", f"one of the known keys ({', '.join(sorted(HEAD_KEYS))})",
                              "<an unknown key>")
    options = frame.Options.from_mix(path, head)
    options.check()
    raw = list(data.get("tasks", []))
    if "routes" in data:  # the routing pattern: routes are tasks at a share of the day's requests
        for i, r in enumerate(data["routes"]):
            n = _num(path, f"routes[{i}].share", r.get("share"), lambda v: 0 <= v <= 1, "a share from 0 to 1")
            raw.append({"name": ", ".join(r.get("task_types", [f"route {i}"])), "kind": "llm",
                        "units_per_day": n * head.get("requests_per_day", 0), "api": r.get("api", head.get("all_api")),
                        "prompt_tokens": r.get("prompt_tokens", 0), "output_tokens": r.get("output_tokens", 0),
                        **({"needs": "frontier"} if "api" in r else {})})
    if not raw:
        raise ConfigError(path, "tasks", "at least one [[tasks]] table", "<none>")
    tasks = []
    for i, t in enumerate(raw):
        where = f"tasks[{i}]"
        for k in t:
            if k not in TASK_KEYS:
                raise ConfigError(path, f"{where}.{k}", f"one of the known keys ({', '.join(sorted(TASK_KEYS))})",
                                  "<an unknown key>")
        kind = t.get("kind")
        if kind not in KINDS:
            raise ConfigError(path, f"{where}.kind", f"one of {', '.join(KINDS)}", kind or "<missing>")
        volume = [k for k in cost.DAYS_PER_VOLUME if k in t]
        if len(volume) != 1:
            raise ConfigError(path, where, "one of units_per_day, units_per_week, units_per_month", "<" +
                              (", ".join(volume) or "none") + ">")
        v = _num(path, f"{where}.{volume[0]}", t[volume[0]], lambda x: x >= 0, "a volume >= 0")
        per_day = v / cost.DAYS_PER_VOLUME[volume[0]]
        private = t.get("private", False)
        if not isinstance(private, bool):
            raise ConfigError(path, f"{where}.private", "true or false", private)
        needs = t.get("needs")
        if needs not in (None, "frontier"):
            raise ConfigError(path, f"{where}.needs", '"frontier" (the API is mandatory)', needs)
        if private and needs == "frontier":
            raise ConfigError(path, where, "private (local mandatory) or needs = \"frontier\" (API mandatory), "
                              "not both", "<both>")
        p = o = 0
        if kind == "llm":
            p = _num(path, f"{where}.prompt_tokens", t.get("prompt_tokens", 0), lambda x: x >= 0 and x == int(x),
                     "a whole number >= 0")
            o = _num(path, f"{where}.output_tokens", t.get("output_tokens", 0), lambda x: x >= 0 and x == int(x),
                     "a whole number >= 0")
        api = t.get("api")
        if not isinstance(api, str):
            raise ConfigError(path, f"{where}.api", f"the {kind} API price id that would do the task", api)
        try:
            catalog.llm_price(api) if kind == "llm" else catalog.unit_price(kind, api)
        except ConfigError as e:
            raise ConfigError(path, f"{where}.api", e.expected, api) from None
        workload = t.get("workload")
        if workload is not None and not isinstance(workload, str):
            raise ConfigError(path, f"{where}.workload", "a workload name of the machine's rows", workload)
        tasks.append(Task(str(t.get("name", f"task {i + 1}")), kind, float(per_day), api, int(p), int(o), private,
                          needs == "frontier", workload))
    build = head.get("build")
    if build is not None:
        try:
            catalog.build(build)
        except ConfigError as e:
            raise ConfigError(path, "scenario.build", e.expected, build) from None
    return Mix(path, head.get("title", path.stem), head.get("source", ""), build, tuple(tasks),
               head.get("guide_verdict", ""), options)


# ------------------------------------------------------------------------------------------------ the advice


@dataclass
class Line:
    task: Task
    api_per_task: float
    api_monthly: float
    unit: cost.LocalUnit | None
    basis: str
    alone: cost.LocalMonthly | None  # what `cost` prints for this task alone
    crossover: float | None  # volume/day from which the box runs it cheaper than the API (cost's crossover)
    payback: float | None  # ... and pays back within its life
    verdict: str = ""  # local | API | hybrid
    reason: str = ""
    local_share: float = 0.0
    quality: str = ""
    extra_usd: float = 0.0  # a private task's local cost above its API price, per month
    answer: frame.Answer | None = None  # the task alone, as `cost` answers it
    workload: str | None = None  # the rows' workload that prices it


@dataclass
class Total:
    api_usd: float
    local: cost.LocalMonthly | None
    amortization_usd: float

    @property
    def running_usd(self) -> float:
        return self.api_usd + (self.local.total_usd if self.local else 0.0)

    @property
    def all_in_usd(self) -> float:
        return self.running_usd + self.amortization_usd


@dataclass
class Advice:
    mix: Mix
    build: catalog.Build
    machine: str | None
    usd_per_kwh: float
    lines: list[Line]
    all_api: Total
    all_local: Total
    recommended: Total
    breakeven_months: float | None
    notes: list[str] = field(default_factory=list)
    frame: frame.Frame | None = None
    basis: str = ""


@lru_cache(maxsize=1)
def guide_thresholds() -> dict:
    return tomllib.loads((catalog.DATA / "decision.toml").read_text())["thresholds"]


def _quality(df, machine: str | None, task: Task, workload: str | None) -> str:
    if df is None or workload is None:
        return "quality against the API not measured"
    g = df[(df["machine"] == machine) & (df["workload"] == workload)]
    if not g.empty:  # the suite version that prices the task: an older definition's rows never pool in
        g = rows.newest(g)
    if task.kind == "llm" and "kld_mean" in g and g["kld_mean"].notna().any():
        k = g[g["kld_mean"].notna()]
        return f"KLD {k['kld_mean'].median():.4f} from {k['kld_base'].iloc[0]}, same top token " \
               f"{k['same_top_p'].median():.1%} (the model's quality against the API's is not measured)"
    if task.kind in ("stt", "tts") and "wer" in g and g["wer"].notna().any():
        return f"word error rate {g['wer'].median():.1%} on the reference set"
    return "quality against the API not measured"


def _local_unit(df, machine, b: catalog.Build, task: Task, path: Path):
    """(unit, basis, workload) for a task: the machine's rows (the named workload, else the one with the most rows),
    else the build's catalog speed figure, else (None, why, None)."""
    from bench import kinds

    if machine is not None and df is not None:
        row_kind = kinds.by_price_kind(task.kind).NAME
        try:
            g, _ = rows.select(df, [machine], row_kind, task.workload)
        except LookupError as e:
            raise ConfigError(path, f"{task.name}: workload", "one workload (several tie)", f"<{e}>") from None
        synthetic = not g.empty and rows.synthetic(g)
        if synthetic and task.workload is None:  # a synthetic-weights pipeline prices no real task
            g = g.iloc[0:0]
        if not g.empty:
            try:
                u = (rows.llm_unit(g, task.prompt_tokens, task.output_tokens) if task.kind == "llm"
                     else rows.priced_unit(g, row_kind))
                est = " (ESTIMATED energy)" if u.estimated else ""
                return u, f"measured rows of {machine} / {g['workload'].iloc[0]}{est}", str(g["workload"].iloc[0])
            except LookupError:
                pass
        elif task.workload is not None:
            raise ConfigError(path, f"{task.name}: workload", f"a {row_kind} workload of machine {machine}",
                              task.workload)
    try:
        u = cost.unit_from_anchor(b, task.kind, task.output_tokens)
        return u, f"catalog speed of {b.id}", None
    except LookupError:
        return None, f"no {task.kind} figures for this box (no rows" + (
            " with real weights" if machine is not None and df is not None and synthetic_only(df, machine, task)
            else "") + ", no catalog speed)", None


def synthetic_only(df, machine: str, task: Task) -> bool:
    from bench import kinds

    g = df[(df["machine"] == machine) & (df["kind"] == kinds.by_price_kind(task.kind).NAME)]
    return not g.empty and rows.synthetic(g)


def _combined(lines: list[Line], shares: list[float], b: catalog.Build, kwh: float, hours: float):
    """The box's month for the local parts of a mix: one day's local work as one task (its busy seconds and wall
    energy summed), so idle hours and capacity are counted once, by cost.local_monthly."""
    secs = wall_j = 0.0
    for ln, s in zip(lines, shares):
        if s > 0 and ln.unit is not None:
            secs += s * ln.task.per_day * ln.unit.seconds
            wall_j += s * ln.task.per_day * cost.wall_energy_j(ln.unit, b)
    if secs <= 0:
        return None
    day = cost.LocalUnit(seconds=secs, device_energy_j=(wall_j - b.platform_busy_w * secs) * b.psu_efficiency,
                         basis="mix")
    return cost.local_monthly(day, 1, b, kwh, cost.DAYS_PER_MONTH, hours)


def _fit(lines: list[Line], wanted: list[float], hours: float) -> list[float]:
    """Local shares within the box's hours: private work first, then the most saving per busy second."""
    left = hours * 3600
    shares = [0.0] * len(lines)
    order = sorted(range(len(lines)), key=lambda i: (not lines[i].task.private, -_saving_per_second(lines[i])))
    for i in order:
        ln = lines[i]
        if wanted[i] <= 0 or ln.unit is None:
            continue
        need = ln.task.per_day * ln.unit.seconds * wanted[i]
        if need <= 0:
            shares[i] = wanted[i]
            continue
        take = min(need, left)
        shares[i] = wanted[i] * take / need
        left -= take
    return shares


def _saving_per_second(ln: Line) -> float:
    if ln.unit is None or ln.unit.seconds <= 0:
        return 0.0
    return ln.api_per_task / ln.unit.seconds


def advise(path: str | Path, machine: str | None = None, build: str | None = None, results_dir: Path | None = None,
           usd_per_kwh: float | None = None, hours_per_day: float | None = None, rows_df=None,
           options: frame.Options | None = None) -> Advice:
    """The advice for a mix on a committed machine's rows (``machine``; ``rows_df``: rows already loaded) or on a
    build's catalog figures (``build``, else the mix's own), in the frame of the mix's own keys with ``options``
    (the command line's flags) on top: each task priced as `shadowbench cost` prices it alone."""
    mix = load_mix(path)
    opts = mix.options.merged(options or frame.Options())
    if usd_per_kwh is not None or hours_per_day is not None:
        opts = opts.merged(frame.Options(usd_per_kwh=usd_per_kwh, hours_per_day=hours_per_day))
    df = None
    results_dir = Path(results_dir or "results")
    if machine is not None:
        df = rows_df if rows_df is not None else rows.load(results_dir)[0]
        if df.empty or machine not in set(df["machine"]):
            raise ConfigError("<command line>", "--machine", "a machine with committed rows (results/<machine>/)",
                              machine)
    bid = build or (catalog.machine_builds().get(machine) if machine else None) or mix.build
    if bid is None:
        raise ConfigError("<command line>", "--build", "a build (or a machine mapped to one in builds.toml)", None)
    fr = frame.build_frame(opts, bid)
    lines = []
    for t in mix.tasks:
        unit, basis, workload = _local_unit(df, machine, fr.build, t, mix.path)
        price = catalog.llm_price(t.api) if t.kind == "llm" else catalog.unit_price(t.kind, t.api)
        per_task = price.request_usd(t.prompt_tokens, t.output_tokens) if t.kind == "llm" else price.usd_per_unit
        ln = Line(t, per_task, per_task * t.per_day * cost.DAYS_PER_MONTH, unit, basis, None, None, None,
                  quality=_quality(df, machine, t, workload) if unit is not None else "")
        ln.workload = workload
        lines.append(ln)
    # measured rows frame the box as they do in `cost` (calibration, else the rows' idle baseline), once for the mix
    first = next((ln for ln in lines if ln.unit is not None and ln.unit.basis.startswith("measured")), None)
    if first is not None:
        fr = frame.with_rows(fr, opts, first.unit, results_dir, machine, first.workload)
    b, kwh, hours = fr.build, fr.usd_per_kwh, fr.hours
    for ln in lines:
        if ln.unit is None:
            continue
        if ln.unit.device_energy_j is None and not b.busy_wall_w:
            raise ConfigError("<command line>", "--build", f"a build with a busy wall-power figure for "
                              f"{ln.task.name} (no energy in its figures)", b.id)
        ln.answer = frame.answer(fr, ln.api_per_task, ln.task.per_day, ln.unit)
        ln.alone, ln.crossover, ln.payback = ln.answer.local, ln.answer.crossover, ln.answer.payback
    # verdicts before capacity: local where the box costs less to run (the hardware is counted below, for the mix)
    wanted = []
    for ln in lines:
        t = ln.task
        if t.frontier:
            ln.verdict, ln.reason = "API", "needs a frontier model: the API is mandatory"
        elif ln.unit is None:
            ln.verdict = "local" if t.private else "API"
            ln.reason = ("private: local is mandatory, but " if t.private else "") + ln.basis + \
                ("; its local cost is not counted" if t.private else "")
        elif t.private:
            ln.verdict, ln.reason = "local", "private: local is mandatory"
            ln.extra_usd = max(0.0, ln.alone.total_usd - ln.api_monthly * ln.answer.served_per_day / t.per_day
                               if t.per_day > 0 else 0.0)
            if ln.extra_usd > 0:
                ln.reason += f", at ${ln.extra_usd:,.2f}/month more than {t.api} for this task alone"
        elif ln.answer.running_saving_usd > 0:
            ln.verdict = "local"
            ln.reason = (f"{t.per_day:,.4g}/day is above the crossover: this box runs it cheaper than {t.api} from "
                         f"{cost.fmt_volume(ln.crossover)}/day")
        else:
            ln.verdict = "API"
            ln.reason = (f"{t.per_day:,.4g}/day is below the crossover: this box runs it cheaper than {t.api} "
                         f"only from {cost.fmt_volume(ln.crossover)}/day" if ln.crossover is not None else
                         f"no volume this box can serve runs it cheaper than {t.api}")
        wanted.append(1.0 if ln.verdict == "local" and ln.unit is not None else 0.0)

    def total(sh: list[float], everything_api: bool = False) -> Total:
        # a private task without local figures stays local (its cost uncounted, said in a note), never on an API
        api = sum(ln.api_monthly * (1 - s) for ln, s in zip(lines, sh)
                  if everything_api or not (ln.task.private and ln.unit is None))
        local = _combined(lines, sh, b, kwh, hours)
        amort = (fr.amortization_usd or 0.0) if local is not None else 0.0
        return Total(api, local, amort)

    all_api = total([0.0] * len(lines), everything_api=True)
    shares = _fit(lines, wanted, hours)
    rec = total(shares)
    # the hardware: unless it is owned (or private work needs the box anyway), the box is recommended only where the
    # mix pays it back within its life; each task that only saves running cost then goes back to its API
    needs_box = fr.already_own or any(ln.task.private for ln in lines)
    if (not needs_box and rec.local is not None and fr.amortization_usd is not None
            and rec.all_in_usd >= all_api.all_in_usd):
        be = cost.breakeven_months(b.hardware_usd, all_api.api_usd, rec.running_usd)
        why = (f"the box does not pay back on this mix: all-in ${rec.all_in_usd:,.2f}/month against all API "
               f"${all_api.all_in_usd:,.2f} (break-even {cost.fmt_months(be)}, its life {b.lifetime_years:g} years)")
        for i, ln in enumerate(lines):
            if wanted[i] > 0:
                wanted[i] = 0.0
                ln.verdict = "API"
                ln.reason = (f"cheaper to run locally, but {why}; this task alone pays it back from "
                             f"{cost.fmt_volume(ln.payback)}/day")
        shares = _fit(lines, wanted, hours)
        rec = total(shares)
    for ln, w, s in zip(lines, wanted, shares):
        ln.local_share = s
        if w > 0 and s < w - 1e-12:
            if ln.task.private:
                ln.reason += (f"; OVER CAPACITY: only {s:.0%} fits in the box's {hours:g} h and private work cannot "
                              "go to an API (a bigger box or more hours)")
            else:
                ln.verdict = "hybrid"
                ln.reason += f"; over capacity: {1 - s:.0%} ({(1 - s) * ln.task.per_day:,.4g}/day) overflows to the API"
    allowed = [0.0 if ln.task.frontier or ln.unit is None else 1.0 for ln in lines]
    be = None
    if rec.local is not None and not fr.already_own:
        be = cost.breakeven_months(b.hardware_usd, all_api.api_usd, rec.running_usd)
    notes = [w.removeprefix("warning: ") for w in fr.warnings]
    cal = fr.calibration
    if cal is not None:
        notes.append(f"wall power measured at the wall ({cal.path}): wall ÷ devices {cal.ratio:.3f}"
                     + (f", idle {cal.idle_w:.1f} W" if cal.idle_w is not None else ""))
    elif machine is not None:
        notes.append("wall power assumed (builds.toml: PSU efficiency, platform and idle watts); `shadowbench "
                     "calibrate` with a smart plug measures them")
    if any(ln.unit is None and ln.task.private for ln in lines):
        notes.append("a private task has no local figures on this box: the totals leave its local cost out")
    basis = (f"measured rows of {machine}" if first is not None else f"{b.id}'s published speed figures (builds.toml)")
    return Advice(mix, b, machine, kwh, lines, all_api, total(_fit(lines, allowed, hours)), rec, be, notes, fr,
                  basis)


def render(a: Advice) -> str:
    g = guide_thresholds()
    from bench import kinds

    out = [f"advise: {a.mix.title}" + (f" ({a.mix.source})" if a.mix.source else ""), a.frame.words(a.basis), ""]
    out += [f"warning: {n}" for n in a.notes if "not mapped to build" in n]
    for ln in a.lines:
        t = ln.task
        shape = f" of {t.prompt_tokens}+{t.output_tokens} tokens" if t.kind == "llm" else ""
        unit = kinds.by_price_kind(t.kind).PRICING.unit + "s"
        out.append(f"- {t.name}: {t.per_day:,.4g} {unit}/day{shape} -> {ln.verdict.upper()}: {ln.reason}")
        extra = [f"API {t.api} ${ln.api_monthly:,.2f}/month"]
        if ln.alone is not None:
            extra.append(f"local alone ${ln.alone.total_usd:,.2f}/month running ({ln.basis})")
            if a.build.hardware_usd is not None and not a.frame.already_own:
                extra.append(f"the box pays back within {a.build.lifetime_years:g} years from "
                             f"{cost.fmt_volume(ln.payback)}/day")
        if ln.quality:
            extra.append(ln.quality)
        out.append("    " + "; ".join(extra))
        if t.kind == "llm" and not t.frontier and not t.private and ln.crossover is not None:
            out.append(f"    the guide: cloud below {g['cloud_below']}/day, hybrid to {g['local_above']}/day, local "
                       f"above; measured on this box: local from {cost.fmt_volume(ln.crossover)}/day")
    out.append("")
    out.append("per month:")
    totals = (("all API", a.all_api), ("all local where allowed", a.all_local), ("recommended", a.recommended))
    for label, tot in totals:
        local = tot.local.total_usd if tot.local else 0.0
        out.append(f"  {label + ':':<26}${tot.all_in_usd:>10,.2f}  (API ${tot.api_usd:,.2f} + local running "
                   f"${local:,.2f} + hardware ${tot.amortization_usd:,.2f})"
                   + ("  OVER CAPACITY" if tot.local is not None and tot.local.over_capacity else ""))
    if a.recommended.local is None:
        out.append("the recommended mix needs no box: everything goes to the APIs")
    elif a.frame.already_own:
        saves = a.all_api.api_usd - a.recommended.running_usd
        out.append(f"the box is already owned: the recommended mix saves ${saves:,.2f}/month against all API from "
                   "day one")
    elif a.build.hardware_usd is None:
        out.append("break-even of the box for the recommended mix: n/a (no hardware price)")
    else:
        out.append(f"break-even of the box for the recommended mix: {cost.fmt_months(a.breakeven_months)} for "
                   f"${a.build.hardware_usd:,.0f} (API ${a.all_api.api_usd:,.2f}/month against "
                   f"${a.recommended.running_usd:,.2f} running)")
    out.append(f"the guide's thresholds: {g['text']} ({g['source']})")
    if a.mix.guide_verdict:
        out.append(f"the guide's verdict for this case: {a.mix.guide_verdict}")
    out += [f"note: {n}" for n in a.notes if "not mapped to build" not in n]
    return "\n".join(out)
