"""The analysis half's commands (prices, cost, report), registered on the ``shadowbench`` command line by
``register``. Heavy imports (pandas, matplotlib) happen when a command runs, not when the parser is built."""
from __future__ import annotations

import os
from pathlib import Path

from bench.errors import ConfigError


PER = {"day": "units_per_day", "week": "units_per_week", "month": "units_per_month"}  # -> cost.DAYS_PER_VOLUME


def question_arguments(c, required: bool) -> None:
    """The arguments of a cost question (`cost`, and `report` for its "your question" section)."""
    from bench import kinds

    c.add_argument("--kind", choices=sorted({k.PRICING.price_kind for k in kinds.contracts()}), default=None,
                   help="what is priced: llm requests, stt audio minutes, tts characters, images, embed tokens "
                        "(default: the kind of the --api price)")
    c.add_argument("--requests-per-day", type=float, required=required,
                   help="requests (llm), audio minutes (stt), characters (tts), images (image) or tokens (embed) per "
                        "day (per week or month with --per)")
    c.add_argument("--per", choices=sorted(PER), default="day",
                   help="the volume is per day (default), per week or per month (months of 30 days)")
    c.add_argument("--prompt-tokens", type=int, default=500)
    c.add_argument("--output-tokens", type=int, default=200)
    c.add_argument("--api", required=required, help="API model or price id (see shadowbench prices)")
    c.add_argument("--build", required=required, help="hardware build id (analysis/data/builds.toml)")
    c.add_argument("--local-power", choices=["auto", "measured", "anchor", "guide"], default="auto",
                   help="local running cost from measured rows, the build's speed figure, or the guide's flat figure")
    c.add_argument("--machine", help="results/<machine> whose rows to use (default: the build's machines)")
    c.add_argument("--workload", help="workload whose rows to use")
    c.add_argument("--results-dir", default="results")
    frame_arguments(c)
    c.add_argument("--ttft-p95", type=float, default=None, metavar="S",
                   help="serve under a latency target: price requests at the measured endpoint step with the highest "
                        "throughput whose time-to-first-token p95 is at most S seconds (default 2 with --itl-p95)")
    c.add_argument("--itl-p95", type=float, default=None, metavar="S",
                   help="... and whose inter-token latency p95 is at most S seconds (default 0.2 with --ttft-p95)")


def frame_arguments(c) -> None:
    """The flags that frame a question (analysis/frame.py): electricity, hours, the hardware and the box's watts,
    already owned, on anyway. `cost`, `advise` and `report` take the same ones."""
    c.add_argument("--usd-per-kwh", type=float)
    c.add_argument("--tou", metavar="TABLE", help='a time-of-use tariff instead of --usd-per-kwh: "0-7:0.10,7-23:0.31,'
                   '23-24:0.10" (hours from-to: $/kWh, covering the day once); the box\'s energy is priced at the mean '
                   "rate of the hours it is on")
    c.add_argument("--on-from", type=float, default=0.0, metavar="HOUR",
                   help="with --tou: the hour the box is switched on each day (default 0; it stays on --hours-per-day)")
    c.add_argument("--hours-per-day", type=float, help="hours the box is on per day (default: the build's)")
    for flag, what in (("--hardware-usd", "the hardware's price in $"), ("--lifetime-years", "its life in years"),
                       ("--idle-w", "the whole box's idle draw at the wall, W"),
                       ("--busy-w", "its draw at the wall while busy, W (used without measured energy)"),
                       ("--psu-efficiency", "the power supply's efficiency, 0-1"),
                       ("--platform-w", "the rest of the box (CPU, board, fans) while the device works, W")):
        c.add_argument(flag, type=float, default=None, help=f"{what} (default: the build's, see builds.toml)")
    c.add_argument("--already-own", action="store_true",
                   help="the hardware is already paid for: the answer is the monthly saving from day one")
    c.add_argument("--box-on-anyway", action="store_true",
                   help="the box is on anyway: only the device's own idle draw (device_idle_w) is charged")


def register(sub) -> None:
    """Add the analysis commands to the ``shadowbench`` command line's subparsers."""
    pr = sub.add_parser("prices", help="list the dated API price catalog")
    pr.add_argument("--update", action="store_true",
                    help="download genai-prices' current LLM price data (needs network) into ~/.cache/shadowbench/"
                         "prices/; use it with SHADOWBENCH_PRICE_DATA=FILE (the bundled snapshot stays the default)")
    pr.add_argument("--url", default=None, help="where --update downloads from (default: genai-prices' own URL)")
    pr.set_defaults(func=cmd_prices)

    c = sub.add_parser("cost", help="API cost vs local running cost and break-even for one workload")
    question_arguments(c, required=True)
    c.add_argument("--json", action="store_true", help="every figure of the answer as one JSON object (for scripts)")
    c.set_defaults(func=cmd_cost)

    cp = sub.add_parser("compare", help="compare machines or runs: medians, ratio with a 95%% confidence interval, "
                        "verdict, and the settings that differ")
    cp.add_argument("sides", nargs="*", help="machine folders, run files or machine@run (default: every machine "
                    "under --results-dir); the first is the base")
    cp.add_argument("--results-dir", default="results")
    cp.add_argument("--format", choices=["table", "md", "csv", "json"], default="table")
    cp.set_defaults(func=cmd_compare)

    ca = sub.add_parser("calibrate", help="measured wall figures of a machine (idle watts, wall ÷ device energy) from "
                        "its rows with a smart plug, written to results/<machine>/calibration.toml")
    ca.add_argument("--machine", required=True)
    ca.add_argument("--results-dir", default="results")
    ca.set_defaults(func=cmd_calibrate)

    ad = sub.add_parser("advise", help="the guides' decision framework on your mix of work: per task local, API or "
                        "hybrid and why, and the month's totals")
    ad.add_argument("mix", help="a mix file (analysis/scenarios/case-*.toml are the guides' case studies)")
    ad.add_argument("--machine", help="price local work from this committed machine's rows (results/<machine>/)")
    ad.add_argument("--build", help="the box's hardware, and its catalog figures where no rows price a task "
                    "(default: the machine's build in builds.toml [machines], else the mix's build)")
    ad.add_argument("--results-dir", default="results")
    frame_arguments(ad)  # on top of the same keys in the mix file's [scenario] table
    ad.set_defaults(func=cmd_advise)

    rp = sub.add_parser("report", help="write results/REPORT.md and its plots from every committed result file")
    rp.add_argument("--out", default=None, help="report file (default: RESULTS_DIR/REPORT.md)")
    question_arguments(rp, required=False)  # with --requests-per-day, --api and --build: a "your question" section
    rp.set_defaults(func=cmd_report)


def cmd_compare(args) -> int:
    from . import compare, rows

    results_dir = Path(args.results_dir)
    names = list(args.sides)
    if not names and results_dir.is_dir():  # every machine; with only one, each of its runs (before and after)
        names = sorted(p.name for p in results_dir.iterdir() if p.is_dir() and p.name != "figures")
        if len(names) == 1:
            df, _ = rows.load(results_dir)
            names = [f"{names[0]}@{run}" for run in sorted(set(df["run_id"]))]
    if len(names) < 2:
        raise ConfigError("<command line>", "compare", "at least two sides (machines, run files or machine@run)",
                          " ".join(names) or "<none>")
    sides = [compare.load_side(n, results_dir) for n in names]
    comps, refused = compare.compare(sides)
    print(compare.render(comps, refused, args.format))
    if not comps and not refused:
        print("nothing to compare: the sides share no workload and test")
    return 0


def _question_text(args) -> str | None:
    """The `cost` answer to the question given to `report`, as it prints it; None without a question."""
    import contextlib
    import io

    given = [args.requests_per_day is not None, args.api is not None, args.build is not None]
    if not any(given):
        return None
    if not all(given):
        raise ConfigError("<command line>", "--requests-per-day/--api/--build", "all three for a question", "<not all>")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cmd_cost(args)
    return buf.getvalue()


def cmd_calibrate(args) -> int:
    from .calibration import calibrate

    path, cal = calibrate(Path(args.results_dir), args.machine)
    print(f"wrote {path}")
    print(f"idle at the wall: {cal.idle_w:.1f} W" if cal.idle_w is not None else
          "idle at the wall: not measured (no run with an idle baseline and a plug)")
    print(f"wall ÷ devices under load: {cal.ratio:.3f} (median of all rows)")
    for name, v in sorted(cal.workloads.items()):
        print(f"  {name}: {v['ratio']:.3f}, {v['overhead_w']:.1f} W above the devices, {v['rows']} rows")
    print(f"`shadowbench cost --machine {args.machine} ...` now prices idle and overhead from it")
    return 0


def cmd_advise(args) -> int:
    from .advise import advise, render
    from .frame import Options

    a = advise(args.mix, machine=args.machine, build=args.build, results_dir=Path(args.results_dir),
               options=Options.from_args(args))
    print(render(a))
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    if args.out:  # checked before any work: where the report goes must exist and be writable
        folder = Path(args.out).resolve().parent
        if not folder.is_dir():
            raise ConfigError(args.out, "--out", "a file in an existing folder", f"<no folder {folder}>")
        if not os.access(folder, os.W_OK):
            raise ConfigError(args.out, "--out", "a file in a folder shadowbench may write in",
                              f"<{folder}: read-only>")
    question = _question_text(args)
    out, problems = write_report(Path(args.results_dir), Path(args.out) if args.out else None, question=question)
    for p in problems:
        print(f"warning: left out a results file: {p}")
    print(f"wrote {out}, {out.with_name('report.html')} and {out.parent / 'figures'}/*.png")
    return 0


def cmd_prices(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import catalog

    if args.update:
        from genai_prices.update_prices import DEFAULT_UPDATE_URL

        from bench.cache import cache_dir

        cache = cache_dir("prices")
        path, n = catalog.update_price_data(args.url or DEFAULT_UPDATE_URL, cache)
        print(f"saved {n} providers' prices to {path}")
        print(f"use them with: {catalog.PRICE_DATA_ENV}={path} shadowbench cost ... (reports name the file); "
              "without it the bundled snapshot is used")
        return 0
    con = Console(width=160)
    snapshot = "" if catalog._price_data_file() else " bundled snapshot"
    t = Table(title=f"LLM API prices per 1M tokens (genai-prices {catalog.genai_prices_version()}{snapshot}; "
                    "guide rows as printed)")
    def status(pid: str) -> str:
        r = catalog.retirement(pid)
        return r.label() if r else ""

    for c in ("model", "provider", "input", "output", "batch in/out", "cache read", "source / date", "status"):
        t.add_column(c)
    for mid in catalog.LISTED_LLMS:
        p = catalog.llm_price(mid)
        batch = f"${p.batch_in:g} / ${p.batch_out:g}" if p.batch_in is not None else ""
        cache = f"${p.usd_per_mtok_cache_read:g}" if p.usd_per_mtok_cache_read is not None else ""
        t.add_row(p.id, p.provider, f"${p.usd_per_mtok_in:g}", f"${p.usd_per_mtok_out:g}", batch, cache, p.as_of,
                  status(p.id))
    raw = {e["id"]: e for e in catalog._prices_toml()["llm"]}
    for p in catalog.guide_llms().values():
        now = ""
        cid = raw[p.id].get("catalog_id")
        if cid:
            c = catalog.llm_price(cid)
            same = (c.usd_per_mtok_in, c.usd_per_mtok_out) == (p.usd_per_mtok_in, p.usd_per_mtok_out)
            now = f"; genai-prices {cid}: ${c.usd_per_mtok_in:g}/${c.usd_per_mtok_out:g}{'' if same else ' (DIFFERS)'}"
        t.add_row(p.id, "guide", f"${p.usd_per_mtok_in:g}", f"${p.usd_per_mtok_out:g}", "", "",
                  f"{p.source}, {p.as_of}{now}", status(p.id))
    con.print(t)
    from bench import kinds

    for kind in catalog.UNIT_KINDS:
        pricing = kinds.by_price_kind(kind).PRICING
        t = Table(title=f"{kind}: per {pricing.display}")
        fmt = lambda v, s=pricing.display_scale: f"${v * s:g}"  # noqa: E731
        for c in ("id", "provider", "price", "as of", "source", "checked", "status"):
            t.add_column(c)
        for p in catalog.unit_prices(kind).values():
            stale = catalog.stale(p.as_of)
            t.add_row(p.id, p.provider, fmt(p.usd_per_unit), p.as_of + (" (STALE)" if stale else ""), p.source,
                      p.note, "; ".join(x for x in (status(p.id), stale) if x))
        con.print(t)
    t = Table(title="Retired and deprecated models (requests to a retired model fail)")
    for c in ("id", "status", "date", "successor", "source"):
        t.add_column(c)
    for r in catalog.retirements().values():
        t.add_row(r.id, r.status, r.date, r.successor, r.source)
    con.print(t)
    print(f"electricity: ${catalog.tariff_usd_per_kwh():g}/kWh (analysis/data/builds.toml)")
    return 0


def _measured_unit(results_dir: Path, build_id: str, machine: str | None, workload: str | None, kind: str,
                   prompt: int, output: int, serving: tuple[float, float] | None = None,
                   volume: tuple[float, float] | None = None):
    """(unit of work, problems, note) from the committed rows of the build's machines (or --machine): one workload,
    the named one or else the one with the most rows, real weights before synthetic ones."""
    from bench import kinds

    from . import catalog, rows

    df, problems = rows.load(results_dir)
    if df.empty:
        return None, problems, ""
    row_kind = "endpoint" if serving else kinds.by_price_kind(kind).NAME  # stt -> asr; llm: in-process rows
    machines = [machine] if machine else [m for m, b in catalog.machine_builds().items() if b == build_id]

    def pick(kind_):
        try:
            return rows.select(df, machines, kind_, workload)
        except LookupError as e:
            raise ConfigError(results_dir, "--workload", "one workload (several tie)", f"<{e}>") from None

    if serving:
        g, note = pick("endpoint")
        if g.empty:
            raise ConfigError(results_dir, "--ttft-p95/--itl-p95", f"endpoint rows (a served workload) for build "
                              f"{build_id} or --machine", "<no such rows>")
        try:
            unit, why = rows.serving_unit(g, *serving, output_tokens=output,
                                          requests_per_day=volume[0] if volume else None,
                                          hours_per_day=volume[1] if volume else None)
        except LookupError as e:
            raise ConfigError(results_dir, "--ttft-p95/--itl-p95", "a latency target some measured step meets",
                              f"<{e}>") from None
        return unit, problems, why
    g, note = pick(row_kind)
    if g.empty:
        if machine or workload:  # rows the user named must be used, or say why not
            raise ConfigError(results_dir, "--machine/--workload", f"result rows of kind {row_kind} on machine "
                              f"{machine or ', '.join(machines) or '<none mapped to ' + build_id + '>'}"
                              + (f" from workload {workload}" if workload else ""), "<no such rows>")
        return None, problems, note
    if kind == "llm":
        try:
            return rows.llm_unit(g, prompt, output), problems, note
        except LookupError:
            tests = ", ".join(sorted(set(g["test"])))
            need = "a tg test (tg128)" + (" and a pp test (pp512)" if prompt else "")
            raise ConfigError(results_dir, "--workload", f"LLM rows with {need}, or a pp{prompt}+tg{output} test, "
                              f"for {prompt}+{output}-token requests", f"<rows of {tests} only>") from None
    return rows.priced_unit(g, row_kind), problems, note


def params_billions(model: str) -> float | None:
    """Parameters in billions, read from a model's name (``Llama-3-8B`` -> 8, ``SmolLM2-135M`` -> 0.135); a
    bundled model by its file's name; None when the name does not say."""
    import re

    from bench import models

    text = model
    for ref in model.split(", "):
        if ref.startswith("bundled:") and ref[8:] in models.BUNDLED:
            text += " " + models.BUNDLED[ref[8:]][1]
    m = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([MB])(?![A-Za-z])", text, re.IGNORECASE)
    if not m:
        return None
    return float(m[1]) / (1000 if m[2].upper() == "M" else 1)


def _check_inputs(args) -> None:
    """Every number of the question: finite and in range, else the one-line error (exit 2)."""
    import math

    from .frame import MAX_TOKENS, MAX_VOLUME

    checks = [("--requests-per-day", args.requests_per_day,
               lambda v: 0 <= v <= MAX_VOLUME, f"a number from 0 to {MAX_VOLUME:.0e}"),
              ("--prompt-tokens", args.prompt_tokens,
               lambda v: 0 <= v <= MAX_TOKENS, f"a whole number from 0 to {MAX_TOKENS:,}"),
              ("--output-tokens", args.output_tokens,
               lambda v: 0 <= v <= MAX_TOKENS, f"a whole number from 0 to {MAX_TOKENS:,}"),
              ("--ttft-p95", args.ttft_p95, lambda v: v > 0, "a number of seconds > 0"),
              ("--itl-p95", args.itl_p95, lambda v: v > 0, "a number of seconds > 0")]
    for flag, v, ok, expected in checks:
        if v is not None and not (math.isfinite(v) and ok(v)):
            raise ConfigError("<command line>", flag, expected, str(v))


def _kind(kind: str | None, api: str) -> str:
    """The price kind of a question: --kind, else the kind whose catalog has the --api id (llm otherwise)."""
    from . import catalog

    if kind is not None:
        return kind
    return next((k for k in catalog.UNIT_KINDS if api in catalog.unit_prices(k)), "llm")


def _api_price(kind: str, api: str):
    """The API price for the kind; an id of another kind is refused naming the kind it belongs to."""
    from . import catalog

    other = [k for k in catalog.UNIT_KINDS if k != kind and api in catalog.unit_prices(k)]
    if kind == "llm":
        if other:
            raise ConfigError("<command line>", "--api", f"an LLM model for --kind llm; {api} is a {other[0]} price: "
                              f"use --kind {other[0]}", api)
        price = catalog.llm_price(api)
        if not (price.usd_per_mtok_in or price.usd_per_mtok_out):
            raise ConfigError("<command line>", "--api", "an LLM model with token prices", f"<{api}: no token prices>")
        return price
    if api not in catalog.unit_prices(kind):
        if other:
            raise ConfigError("<command line>", "--api", f"a {kind} price; {api} is a {other[0]} price: use --kind "
                              f"{other[0]}", api)
        import difflib

        close = difflib.get_close_matches(api, list(catalog.unit_prices(kind)), n=3, cutoff=0.5)
        like = f" ({', '.join(close)})" if close else " (see shadowbench prices)"
        try:
            catalog.llm_price(api)
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError("<command line>", "--api", f"{article} {kind} price{like}; {api} is priced per token "
                              "as an LLM model in the catalog (--kind llm prices it so)", api)
        except catalog.UnknownName:
            pass
    return catalog.unit_price(kind, api)


BASIS_WORDS = {"anchor": "the build's published speed figure (builds.toml)", "guide": "the guide's flat power figure"}


def cmd_cost(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench import kinds

    from . import catalog, cost
    from . import frame as fr_

    _check_inputs(args)
    args.kind = _kind(args.kind, args.api)
    if args.per != "day":  # the answer is per day: a week's or a month's volume divided out, and said
        args.requests_per_day = args.requests_per_day / cost.DAYS_PER_VOLUME[PER[args.per]]
    opts = fr_.Options.from_args(args)
    fr = fr_.build_frame(opts, args.build)
    b, hours = fr.build, fr.hours
    price = _api_price(args.kind, args.api)
    days = cost.DAYS_PER_MONTH
    n = args.requests_per_day
    pricing = kinds.by_price_kind(args.kind).PRICING
    what, units = pricing.unit, pricing.unit + "s"
    shape = f" of {args.prompt_tokens}+{args.output_tokens} tokens" if args.kind == "llm" else ""
    if args.kind == "llm":
        per_task = price.request_usd(args.prompt_tokens, args.output_tokens)
        api_basis = (f"{price.id} at ${price.usd_per_mtok_in:g}/${price.usd_per_mtok_out:g} per 1M input/output "
                     f"tokens ({price.source}; {price.as_of})")
    else:
        per_task = price.usd_per_unit
        api_basis = f"{price.id} at ${price.usd_per_unit:g} per {price.unit} ({price.source}, as of {price.as_of})"
    retired = catalog.retirement(price.id)
    lines: list[str] = []  # printed after the verdict

    mode = args.local_power
    unit, note, problems = None, "", []
    if mode in ("auto", "measured"):
        serving = None
        if args.ttft_p95 is not None or args.itl_p95 is not None:
            from .rows import DEFAULT_ITL_P95_S, DEFAULT_TTFT_P95_S

            if args.kind != "llm":
                raise ConfigError("<command line>", "--ttft-p95/--itl-p95", "--kind llm (served requests)", args.kind)
            serving = (args.ttft_p95 if args.ttft_p95 is not None else DEFAULT_TTFT_P95_S,
                       args.itl_p95 if args.itl_p95 is not None else DEFAULT_ITL_P95_S)
        unit, problems, note = _measured_unit(Path(args.results_dir), b.id, args.machine, args.workload, args.kind,
                                              args.prompt_tokens, args.output_tokens, serving, (n, hours))
        if unit is None and mode == "measured":
            raise ConfigError(args.results_dir, "--local-power measured",
                              f"result rows of kind {args.kind} for build {b.id} (see [machines] in builds.toml) or "
                              "--machine", "<no such rows>")
        ref_model = b.anchor_llm.get("model", "") if args.kind == "llm" else ""
        got, want = (params_billions(unit.model), params_billions(ref_model)) if unit is not None else (None, None)
        if got is not None and want is not None and got * 10 < want:
            lines.append(f"warning: the rows are of {unit.model} (~{got:g}B parameters); build {b.id}'s reference "
                         f"model is {ref_model} ({want:g}B): these speeds and energies are not that model's")
        fr = fr_.with_rows(fr, opts, unit, Path(args.results_dir), args.machine, args.workload)
        b = fr.build
    lines = list(fr.warnings) + lines
    for p in problems:
        lines.append(f"warning: skipped a results file: {p}")
    anchor = None
    try:
        anchor = cost.unit_from_anchor(b, args.kind, args.output_tokens)
    except LookupError:
        pass
    if unit is None and mode in ("auto", "anchor"):
        unit = anchor
    flat = unit is None and mode in ("auto", "guide") and b.guide_power_usd_per_month is not None
    if flat:  # the build's speed figure, where it has one, checks capacity only
        ans = fr_.answer(fr, per_task, n, anchor, flat=True)
        local = ans.local
        basis = f"{local.note}; rows used: none"
        note = note or (f"the guide's flat ${b.guide_power_usd_per_month:g}/month power figure, as asked: not a "
                        "measurement of this box" if mode == "guide" else
                        f"the guide's flat ${b.guide_power_usd_per_month:g}/month stands in for {b.id}'s "
                        f"{args.kind} running cost: no measured rows and no {args.kind} speed figure for this build; "
                        "not a measurement, and the electricity price and hours do not change it")
    elif unit is None:
        raise ConfigError("<command line>", "--local-power", "a basis this build and kind have (measured rows, a "
                          "speed figure in builds.toml, or a guide power figure)", mode)
    else:
        if unit.device_energy_j is None and not b.busy_wall_w:  # never a "0 J, $0.00" that looks measured
            raise ConfigError("<command line>", "--build", f"rows with energy, or a build with a busy wall-power "
                              f"figure; the rows have no energy and {b.id} has no busy_wall_w", b.id)
        ans = fr_.answer(fr, per_task, n, unit)
        local = ans.local
        from bench.energy.base import parts_words

        label = " (ESTIMATED energy)" if unit.estimated and not unit.parts else ""
        by_part = (f" ({parts_words([(d, share * unit.device_energy_j, est) for d, share, est in unit.parts])})"
                   if unit.parts and unit.device_energy_j is not None else "")
        basis = (f"{unit.basis}{label}: {unit.seconds:.4g} s busy per {what}; "
                 + (f"{unit.device_energy_j:.4g} J at the device{by_part}; " if unit.device_energy_j is not None
                    else "")
                 + f"{cost.wall_energy_j(unit, b):.4g} J at the wall; rows used: {unit.rows}"
                 + (f"; {local.note}" if local.note else ""))
    measured = unit is not None and unit.basis.startswith("measured")
    frame_basis = ("measured rows" + (" (ESTIMATED energy)" if unit.estimated and not unit.parts else "")
                   if measured else
                   BASIS_WORDS["guide" if flat else "anchor"])
    if getattr(args, "json", False):
        import json

        tc = local.per_task()
        own = fr.already_own
        print(json.dumps({
            "kind": args.kind, "tasks_per_day": n, "api": price.id, "build": b.id, "usd_per_kwh": fr.usd_per_kwh,
            "hours_per_day": hours, "api_per_task_usd": per_task, "api_monthly_usd": ans.api_monthly,
            "local_basis": local.basis, "estimated": bool(unit is not None and unit.estimated),
            "frame": fr.words(frame_basis),
            # the box's own figures, at the volume it serves (its capacity, over capacity)
            "per_task": {"energy_usd": tc.energy_usd, "idle_usd": tc.idle_usd, "running_usd": tc.running_usd,
                         "amortization_usd": None if own else tc.amortization_usd,
                         "all_in_usd": tc.running_usd if own else tc.all_in_usd},
            "monthly": {"energy_usd": local.energy_usd, "idle_usd": local.idle_usd, "running_usd": local.total_usd,
                        "amortization_usd": None if own else local.amortization_usd,
                        "all_in_usd": local.total_usd if own else local.all_in_usd},
            # the answer: the box plus, over capacity, the overflow on the API
            "decision": ans.decision, "decides_on": ans.decides_on, "served_per_day": ans.served_per_day,
            "overflow_per_day": ans.overflow_per_day, "overflow_api_usd": ans.overflow_api_usd,
            "running_usd": ans.running_usd, "all_in_usd": ans.all_in_usd if not own else ans.running_usd,
            # owned hardware has nothing to pay back: no break-even, as the text says ("from day one")
            "already_own": own, "breakeven_months": ans.breakeven_months, "over_capacity": ans.over_capacity,
            "crossover_per_day": ans.crossover, "payback_per_day": ans.payback,
            "capacity_per_day": local.capacity_per_day, "busy_hours_per_day": local.busy_hours_per_day,
            "idle_wall_w": b.idle_wall_w, "psu_efficiency": b.psu_efficiency, "platform_busy_w": b.platform_busy_w,
            "wall_basis": "measured at the wall" if fr.wall_measured else "assumed (builds.toml)",
            "warnings": lines + [f"note: {note}"] * bool(note)}))
        return 0
    verdict = ans.verdict(units)
    if note.startswith("synthetic weights") or flat:  # in the verdict line itself, not after it
        verdict += f" [{note}]"
    print(f"verdict: {verdict}")
    print(ans.running_words(units))
    print(fr.words(frame_basis))
    given = f" ({n * cost.DAYS_PER_VOLUME[PER[args.per]]:,g} per {args.per})" if args.per != "day" else ""
    print(f"question: {n:,g} {units}/day{given}{shape} on {b.label} ({b.id}) vs API {price.id}"
          + ("; hardware already owned" if fr.already_own else "")
          + ("; the box is on anyway" if fr.box_on_anyway else ""))
    if retired:
        print(f"note: {price.id} is {retired.label()} ({retired.source})")
    for line in lines:
        print(line)

    # every figure that decides it, with its source; a figure the basis does not use says so
    print("assumptions:")
    sources = fr.sources
    unused = "not used (the guide's flat figure)" if flat else None
    uses_device = unit is not None and unit.device_energy_j is not None and not flat
    figures = [
        ("hardware", "sunk (--already-own)" if fr.already_own else
         (f"${b.hardware_usd:,.0f}" if b.hardware_usd is not None else "no price"), sources["hardware_usd"]),
        ("lifetime", f"{b.lifetime_years:g} years", sources["lifetime_years"]),
        ("hours on", f"{hours:g} h/day", sources["hours_per_day"]),
        ("idle at the wall", unused or (f"{b.idle_wall_w:g} W" if b.idle_wall_w is not None else
                                        "unknown: not charged"), sources["idle_wall_w"]),
        ("busy at the wall", unused or ("from measured energy" if uses_device else f"{b.busy_wall_w:g} W"),
         "result rows" if uses_device else sources["busy_wall_w"]),
        ("PSU efficiency", f"{b.psu_efficiency:g}" if uses_device else
         "not used (no device energy: the busy wall watts stand for the whole box)", sources["psu_efficiency"]),
        ("rest of the platform while busy", (f"{b.platform_busy_w:g} W" + (
            f" ({cost.platform_beyond_cpu_w(unit, b):.3g} W added: the CPU meter's watts are in the measured energy)"
            if unit.cpu_share > 0 and b.platform_busy_w > 0 else "")) if uses_device else
         "not used (in the busy wall watts)", sources["platform_busy_w"]),
        ("electricity", unused or f"${fr.usd_per_kwh:g}/kWh", fr.kwh_source),
        ("API price", api_basis, "dated catalog"),
    ]
    for name_, value, source in figures:
        print(f"  {name_}: {value}  [{source}]")
    print("  wall power: " + (next(v for v in sources.values() if str(v).startswith("measured at the wall"))
                              .split(":")[0] if fr.wall_measured else
                              "assumed (builds.toml): PSU efficiency, platform and idle watts are not measured here; "
                              "`shadowbench calibrate` a machine with a smart plug to measure them"))
    if args.kind == "llm" and price.batch_in is not None:
        batch = (args.prompt_tokens * price.batch_in + args.output_tokens * price.batch_out) / 1e6
        print(f"  API batch price: ${price.batch_in:g}/${price.batch_out:g} per 1M -> ${batch * n * days:,.2f}/month "
              "(for work that can wait up to a day)")
    if args.kind == "llm" and price.usd_per_mtok_cache_read is not None:
        print(f"  API cached-input price: ${price.usd_per_mtok_cache_read:g} per 1M (repeated prompt prefixes)")
    local_model = (unit.model if unit is not None and unit.model else
                   b.anchor_llm.get("model", "") if args.kind == "llm" else "")
    if args.kind == "llm":
        print(f"quality: local {local_model or 'model'} stands in for {price.id}; shadowbench measures speed, "
              "energy and cost, not whether its answers are as good")

    t = Table(title=None, box=None, pad_edge=False)
    for c, j in (("", "left"), (f"per {what}", "right"), ("per month", "right"), ("", "left")):
        t.add_column(c, justify=j)
    tc = local.per_task()
    money = lambda v, f=",.6f": "" if v is None else f"${v:{f}}"  # noqa: E731
    t.add_row("API", money(per_task), money(ans.api_monthly, ",.2f"), escape(price.id))
    served = f" ({ans.served_per_day:,.0f}/day, the box's capacity)" if ans.over_capacity else ""
    if local.basis == "guide":
        t.add_row("local running (guide's flat power)", money(tc.energy_usd), money(local.total_usd, ",.2f"), served)
    else:
        t.add_row("local energy at the wall", money(tc.energy_usd), money(local.energy_usd, ",.2f"),
                  f"{local.busy_hours_per_day:.2f} busy h/day{served}")
        t.add_row("local idle share", money(tc.idle_usd), money(local.idle_usd, ",.2f"),
                  f"{max(0.0, hours - local.busy_hours_per_day):.2f} idle h/day at {b.idle_wall_w or 0:g} W")
        t.add_row("local running", money(tc.running_usd), money(local.total_usd, ",.2f"), "energy + idle")
    if ans.over_capacity:
        t.add_row("overflow on the API", money(per_task), money(ans.overflow_api_usd, ",.2f"),
                  f"{ans.overflow_per_day:,.0f}/day")
    if ans.amortization_usd is not None and not fr.already_own:
        t.add_row("hardware amortization", money(ans.amortization_usd / (n * days) if n > 0 else None),
                  money(ans.amortization_usd, ",.2f"),
                  f"${b.hardware_usd:,.0f} over {b.lifetime_years:g} years")
        t.add_row("local all-in" + (" (box + overflow)" if ans.over_capacity else ""),
                  money(ans.all_in_usd / (n * days) if n > 0 else None), money(ans.all_in_usd, ",.2f"),
                  "running + amortization")
    Console(width=200, highlight=False).print(t)
    cap_text = (f"{local.capacity_per_day:,.0f} {units}/day in {hours:g} h" if local.capacity_per_day is not None
                else "not checked (no speed figure for this build and kind)")
    print(f"capacity: {cap_text}" + ("  (OVER CAPACITY at this volume: priced capped)" if ans.over_capacity else ""))
    print(f"local basis: {basis}")
    if note and not (note.startswith("synthetic weights") or flat):  # that one is in the verdict line
        print(f"note: {note}")
    if b.hardware_usd is not None and not fr.already_own:
        _sweep(fr, per_task, n, unit if unit is not None else anchor, flat, units, ans)
    return 0


def _sweep(fr, per_task, n, unit, flat, units, ans) -> None:
    """Break-even over a range of volumes around the question's (capped over capacity), and the crossover volumes."""
    from . import cost
    from . import frame as fr_

    print(f"sweep ({units}/day: API / local running per month -> break-even):")
    for f in (0.1, 0.25, 0.5, 1, 2, 5, 10):
        a = fr_.answer(fr, per_task, n * f, unit, flat=flat, volumes=False)
        print(f"  {n * f:>12,.0f}: ${a.api_monthly:>10,.2f} / ${a.running_usd:>8,.2f} -> "
              + cost.fmt_months(a.breakeven_months) + ("  (capped: the box at capacity + the overflow on the API)"
                                                       if a.over_capacity else ""))
    print(f"crossover: local costs less to run than the API from {cost.fmt_volume(ans.crossover)} {units}/day; "
          f"the hardware pays back within its {fr.build.lifetime_years:g}-year life from "
          f"{cost.fmt_volume(ans.payback)} {units}/day")
