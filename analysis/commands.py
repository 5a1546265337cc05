"""The analysis half's commands (prices, cost, report), registered on the ``shadowbench`` command line by
``register``. Heavy imports (pandas, matplotlib) happen when a command runs, not when the parser is built."""
from __future__ import annotations

from pathlib import Path

from bench.errors import ConfigError


def register(sub) -> None:
    """Add the analysis commands to the ``shadowbench`` command line's subparsers."""
    pr = sub.add_parser("prices", help="list the dated API price catalog")
    pr.set_defaults(func=cmd_prices)

    c = sub.add_parser("cost", help="API cost vs local running cost and break-even for one workload")
    from bench import kinds

    c.add_argument("--kind", choices=sorted({k.PRICING.price_kind for k in kinds.contracts()}), default="llm",
                   help="what is priced: llm requests, stt audio minutes, tts characters, images")
    c.add_argument("--requests-per-day", type=float, required=True,
                   help="requests (llm), audio minutes (stt), characters (tts) or images (image) per day")
    c.add_argument("--prompt-tokens", type=int, default=500)
    c.add_argument("--output-tokens", type=int, default=200)
    c.add_argument("--api", required=True, help="API model or price id (see shadowbench prices)")
    c.add_argument("--build", required=True, help="hardware build id (analysis/data/builds.toml)")
    c.add_argument("--local-power", choices=["auto", "measured", "anchor", "guide"], default="auto",
                   help="local running cost from measured rows, the build's speed figure, or the guide's flat figure")
    c.add_argument("--machine", help="results/<machine> whose rows to use (default: the build's machines)")
    c.add_argument("--workload", help="workload whose rows to use")
    c.add_argument("--results-dir", default="results")
    c.add_argument("--usd-per-kwh", type=float)
    c.add_argument("--hours-per-day", type=float, help="hours the box is on per day (default: the build's)")
    c.set_defaults(func=cmd_cost)

    rp = sub.add_parser("report", help="write results/REPORT.md and its plots from every committed result file")
    rp.add_argument("--results-dir", default="results")
    rp.add_argument("--out", default=None, help="report file (default: RESULTS_DIR/REPORT.md)")
    rp.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from .report import write_report

    out, problems = write_report(Path(args.results_dir), Path(args.out) if args.out else None)
    for p in problems:
        print(f"warning: left out a results file: {p}")
    print(f"wrote {out} and {out.parent / 'figures'}/*.png")
    return 0


def cmd_prices(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import catalog

    con = Console(width=160)
    t = Table(title=f"LLM API prices per 1M tokens (genai-prices {catalog.genai_prices_version()} bundled snapshot; "
                    "guide rows as printed)")
    for c in ("model", "provider", "input", "output", "batch in/out", "cache read", "source / date"):
        t.add_column(c)
    for mid in catalog.LISTED_LLMS:
        p = catalog.llm_price(mid)
        batch = f"${p.batch_in:g} / ${p.batch_out:g}" if p.batch_in is not None else ""
        cache = f"${p.usd_per_mtok_cache_read:g}" if p.usd_per_mtok_cache_read is not None else ""
        t.add_row(p.id, p.provider, f"${p.usd_per_mtok_in:g}", f"${p.usd_per_mtok_out:g}", batch, cache, p.as_of)
    raw = {e["id"]: e for e in catalog._prices_toml()["llm"]}
    for p in catalog.guide_llms().values():
        now = ""
        cid = raw[p.id].get("catalog_id")
        if cid:
            c = catalog.llm_price(cid)
            same = (c.usd_per_mtok_in, c.usd_per_mtok_out) == (p.usd_per_mtok_in, p.usd_per_mtok_out)
            now = f"; genai-prices {cid}: ${c.usd_per_mtok_in:g}/${c.usd_per_mtok_out:g}{'' if same else ' (DIFFERS)'}"
        t.add_row(p.id, "guide", f"${p.usd_per_mtok_in:g}", f"${p.usd_per_mtok_out:g}", "", "",
                  f"{p.source}, {p.as_of}{now}")
    con.print(t)
    for kind, title, fmt in (("stt", "Speech-to-text per audio minute", lambda v: f"${v:g}"),
                             ("tts", "Text-to-speech per 1M characters", lambda v: f"${v * 1e6:g}"),
                             ("image", "Images per image", lambda v: f"${v:g}")):
        t = Table(title=title)
        for c in ("id", "provider", "price", "as of", "source", "checked"):
            t.add_column(c)
        for p in catalog.unit_prices(kind).values():
            t.add_row(p.id, p.provider, fmt(p.usd_per_unit), p.as_of, p.source, p.note)
        con.print(t)
    print(f"electricity: ${catalog.tariff_usd_per_kwh():g}/kWh (analysis/data/builds.toml)")
    return 0


def _measured_unit(results_dir: Path, build_id: str, machine: str | None, workload: str | None, kind: str,
                   prompt: int, output: int):
    """The local unit of work from the committed rows of the build's machines (or --machine): one workload, the
    named one or else the one with the most rows."""
    from bench import kinds

    from . import catalog, rows

    df, problems = rows.load(results_dir)
    if df.empty:
        return None, problems
    row_kind = kinds.by_price_kind(kind).NAME  # stt -> asr; llm -> llm (in-process rows)
    machines = [machine] if machine else [m for m, b in catalog.machine_builds().items() if b == build_id]
    g = rows.select(df, machines, row_kind, workload)
    if g.empty:
        return None, problems
    if kind == "llm":
        return rows.llm_unit(g, prompt, output), problems
    return rows.priced_unit(g, row_kind), problems


def _sweep(n, per_task, unit, b, kwh, days, flat, units, hours) -> None:
    """Break-even over a range of volumes around the question's, and the crossover volumes."""
    from . import cost

    flat_usd = flat.total_usd if flat is not None else None
    print(f"sweep ({units}/day: API / local running per month -> break-even):")
    for f in (0.1, 0.25, 0.5, 1, 2, 5, 10):
        v = n * f
        api, local, be, over = cost.breakeven_at(v, per_task, unit, b, kwh, days, flat_usd, hours)
        print(f"  {v:>12,.0f}: ${api:>10,.2f} / ${local:>8,.2f} -> "
              + ("more than the box can serve in its hours on" if over else cost.fmt_months(be)))
    cross = cost.crossover_volume(per_task, unit, b, kwh, days, flat_usd, hours_per_day=hours)
    life = cost.crossover_volume(per_task, unit, b, kwh, days, flat_usd, within_months=b.lifetime_years * 12,
                                 hours_per_day=hours)
    print(f"crossover: local costs less to run than the API from {cost.fmt_volume(cross)} {units}/day; "
          f"the hardware pays back within its {b.lifetime_years:g}-year life from {cost.fmt_volume(life)} {units}/day")


def cmd_cost(args) -> int:
    from bench import kinds

    from . import catalog, cost

    b = catalog.build(args.build)
    days = catalog.days_per_month()
    kwh = args.usd_per_kwh if args.usd_per_kwh is not None else catalog.tariff_usd_per_kwh()
    hours = args.hours_per_day
    n = args.requests_per_day
    units = kinds.by_price_kind(args.kind).PRICING.unit + "s"
    print(f"question: {n:g} {units}/day of {args.kind} on {b.label} "
          f"vs API {args.api}; months of {days:g} days; electricity ${kwh:g}/kWh")
    if args.kind == "llm":
        price = catalog.llm_price(args.api)
        per_req = price.request_usd(args.prompt_tokens, args.output_tokens)
        api_month = per_req * n * days
        print(f"API: {price.id} at ${price.usd_per_mtok_in:g}/${price.usd_per_mtok_out:g} per 1M input/output tokens "
              f"({price.source}; {price.as_of}): ${per_req:.6f} per request of {args.prompt_tokens}+"
              f"{args.output_tokens} tokens -> ${api_month:,.2f}/month")
    else:
        price = catalog.unit_price(args.kind, args.api)
        api_month = price.usd_per_unit * n * days
        print(f"API: {price.id} at ${price.usd_per_unit:g} per {price.unit} ({price.source}, as of {price.as_of}) "
              f"-> ${api_month:,.2f}/month")

    mode = args.local_power
    unit = None
    problems: list[str] = []
    if mode in ("auto", "measured"):
        unit, problems = _measured_unit(Path(args.results_dir), b.id, args.machine, args.workload, args.kind,
                                        args.prompt_tokens, args.output_tokens)
        if unit is None and mode == "measured":
            raise ConfigError(args.results_dir, "--local-power measured",
                              f"result rows of kind {args.kind} for build {b.id} (see [machines] in builds.toml) or "
                              "--machine",
                              "<no such rows>")
    for p in problems:
        print(f"warning: skipped a results file: {p}")
    if unit is None and mode in ("auto", "anchor") and args.kind == "llm" and b.anchor_llm:
        unit = cost.llm_unit_from_anchor(b, args.output_tokens)
    if unit is None and mode in ("auto", "guide") and b.guide_power_usd_per_month is not None:
        local = cost.guide_local_monthly(b)
        print(f"local running cost: ${local.total_usd:,.2f}/month ({local.note})")
        print("rows used: none (guide figure)")
    elif unit is None:
        raise ConfigError("<command line>", "--local-power", "a basis this build and kind have (measured rows, a "
                          "speed figure in builds.toml, or a guide power figure)", mode)
    else:
        local = cost.local_monthly(unit, n, b, kwh, days, hours)
        label = " (ESTIMATED energy)" if unit.estimated else ""
        what = "request" if args.kind == "llm" else price.unit
        print(f"local: {unit.seconds:.4g} s busy per {what}; "
              + (f"{unit.device_energy_j:.4g} J at the device{label}; " if unit.device_energy_j is not None else "")
              + f"{cost.wall_energy_j(unit, b):.4g} J at the wall")
        print(f"local running cost: ${local.total_usd:,.2f}/month = energy ${local.energy_usd:,.2f} + idle "
              f"${local.idle_usd:,.2f} ({local.busy_hours_per_day:.2f} busy of {hours or b.hours_per_day:g} h/day on)"
              + (f"; {local.note}" if local.note else ""))
        if local.capacity_per_day is not None:
            print(f"capacity: {local.capacity_per_day:,.0f} {what}s/day in {hours or b.hours_per_day:g} h"
                  + ("  (OVER CAPACITY at this volume)" if local.over_capacity else ""))
        print(f"rows used: {unit.rows}")
    be = cost.breakeven_months(b.hardware_usd, api_month, local.total_usd)
    if b.hardware_usd is not None:
        _sweep(n, api_month / (n * days) if n else 0.0, unit, b, kwh, days, local if unit is None else None, units,
               hours)
    if b.hardware_usd is None:
        print("break-even: n/a (no hardware price for this build)")
    else:
        print(f"break-even: {cost.fmt_months(be)} for ${b.hardware_usd:,.0f} of hardware "
              f"(hardware ÷ (API ${api_month:,.2f} − local ${local.total_usd:,.2f} per month))")
        am = cost.amortization_per_task(b, n)
        if am is not None:
            print(f"amortization: ${am:.6g} per {'request' if args.kind == 'llm' else price.unit} over "
                  f"{b.lifetime_years:g} years at this volume")
    return 0
