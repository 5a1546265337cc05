"""`shadowbench report`: results/REPORT.md with tables and PNG plots from every committed result file and the
dated catalogs. Every figure names the rows or catalog entries it was drawn from; estimated energy is labeled."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import catalog, cost, rows, scenarios  # noqa: E402

API_COMPARE = ["gpt-4o-mini", "gemini-2.5-flash", "claude-3-5-haiku", "claude-haiku-4-5", "gpt-4.1", "claude-3-5-sonnet"]
SHAPE = (500, 200)  # the guides' request: 500 prompt + 200 output tokens
THROUGHPUT = {"llm": [("tg_tokens_per_s", "tg tokens/s"), ("pp_tokens_per_s", "pp tokens/s")],
              "asr": [("rtf", "RTF (wall ÷ audio)")], "tts": [("chars_per_s", "chars/s")],
              "image": [("s_per_image", "s/image")]}


def _md_table(header: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def _g(v, fmt=".4g") -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else format(v, fmt)


def _stat(s: pd.Series) -> tuple[float, float, float, float | None]:
    s = s.dropna()
    cvv = s.std() / s.mean() if len(s) > 1 and s.mean() else None
    return s.median(), s.min(), s.max(), cvv


def _group_label(machine, workload, test, one_machine: bool = False) -> str:
    return f"{workload}\n{test}" if one_machine else f"{machine}\n{workload}\n{test}"


def measured_section(df: pd.DataFrame, figdir: Path) -> tuple[str, list[str]]:
    out, figs = ["## Measured on the committed boxes", ""], []
    if df.empty:
        return "## Measured on the committed boxes\n\nNo result rows yet: run `make bench` and commit the file.\n", []
    body = []
    for (m, w, t, k), g in df.groupby(["machine", "workload", "test", "kind"], sort=False):
        cells = [m, w, t, k, len(g)]
        thr = []
        for col, label in THROUGHPUT.get(k, []):
            if col in g and g[col].notna().any():
                med, lo, hi, cv = _stat(g[col])
                thr.append(f"{label} {med:.4g} ({lo:.4g}–{hi:.4g}{', CV ' + format(cv, '.1%') if cv is not None else ''})")
        cells.append("; ".join(thr))
        cells.append(_g(g["ttft_s"].median()) if "ttft_s" in g else "")
        if g["energy_j"].notna().any():
            src = "+".join(sorted(set(g["energy_source"])))
            e = g["energy_j"].median()
            label = " **ESTIMATED**" if g["estimated"].any() else ""
            cells.append(f"{e:.4g} J ({src}){label}")
            per_tok = (g["energy_j"] / g["output_tokens"].where(g["output_tokens"] > 0)).median() \
                if "output_tokens" in g else None
            cells.append(_g(per_tok))
            cells.append(_g(g["idle_power_w"].median()) if "idle_power_w" in g else "")
        else:
            cells += ["not measured", "", ""]
        runs = ", ".join(sorted(set(Path(f).name for f in g["file"])))
        cells.append(runs)
        body.append(cells)
    out.append(_md_table(["machine", "workload", "test", "kind", "n", "throughput: median (min–max, CV)", "TTFT s",
                          "energy per repetition (median)", "J per output token", "idle W", "rows from"], body))
    out.append("")

    # figure: LLM throughput per machine/workload/test
    llm = df[df["kind"] == "llm"]
    if not llm.empty:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, (col, label) in zip(axes, THROUGHPUT["llm"]):
            sub = llm[llm[col].notna()]
            groups = list(sub.groupby(["machine", "workload", "test"], sort=False))
            meds = [g[col].median() for _, g in groups]
            lo = [m - g[col].min() for m, (_, g) in zip(meds, groups)]
            hi = [g[col].max() - m for m, (_, g) in zip(meds, groups)]
            ax.bar(range(len(groups)), meds, yerr=[lo, hi], capsize=4, color="#4C72B0")
            one = llm["machine"].nunique() == 1
            ax.set_xticks(range(len(groups)), [_group_label(*k, one) for k, _ in groups], fontsize=7)
            ax.set_ylabel(label)
            ax.set_title(f"{label}: median, bars min–max")
        fig.suptitle("LLM throughput per box, workload and test"
                     + (f" ({llm['machine'].iloc[0]})" if llm["machine"].nunique() == 1 else ""))
        fig.tight_layout()
        fig.savefig(figdir / "throughput.png", dpi=110)
        plt.close(fig)
        figs.append("throughput.png")
        out += ["![LLM throughput](figures/throughput.png)", "",
                f"*Figure: LLM throughput. Rows: {rows.provenance(llm)}.*", ""]

    # figure: energy per repetition, estimated hatched
    with_e = df[df["energy_j"].notna()]
    if not with_e.empty:
        groups = list(with_e.groupby(["machine", "workload", "test"], sort=False))
        fig, ax = plt.subplots(figsize=(9, 5))
        for i, (k, g) in enumerate(groups):
            est = bool(g["estimated"].any())
            ax.bar(i, g["energy_j"].median(), color="#DD8452" if est else "#55A868", hatch="//" if est else None,
                   edgecolor="black", label="estimated (not measured)" if est else "measured")
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys())
        one = with_e["machine"].nunique() == 1
        ax.set_xticks(range(len(groups)), [_group_label(*k, one) for k, _ in groups], fontsize=7, rotation=25,
                      ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("J per repetition (median, gross, log)")
        ax.set_title("Energy per task" + (" — ESTIMATED from CPU time" if with_e["estimated"].all() else "")
                     + (f"\n{with_e['machine'].iloc[0]}" if one else ""))
        fig.tight_layout()
        fig.savefig(figdir / "energy.png", dpi=110)
        plt.close(fig)
        figs.append("energy.png")
        notes = sorted(set(n for n in with_e.get("energy_note", pd.Series(dtype=str)).dropna() if n))
        out += ["![Energy per task](figures/energy.png)", "",
                f"*Figure: energy per repetition (gross, before idle subtraction). Rows: {rows.provenance(with_e)}."
                + (f" Estimate basis: {'; '.join(notes)}." if notes else "") + "*", ""]
    return "\n".join(out), figs


def cost_per_request_section(df: pd.DataFrame, figdir: Path) -> str:
    p, o = SHAPE
    kwh = catalog.tariff_usd_per_kwh()
    out = [f"## Dollars per 1,000 requests of {p}+{o} tokens", "",
           f"Local: running cost only (energy at ${kwh:g}/kWh through the PSU, plus the rest of the platform while "
           "busy), no hardware amortization; API: token-weighted list prices.", ""]
    entries = []  # (label, usd per 1k, kind, source)
    mb = catalog.machine_builds()
    llm = df[df["kind"] == "llm"] if not df.empty else df
    for (m, w), g in (llm.groupby(["machine", "workload"]) if not llm.empty else []):
        try:
            unit = cost.llm_unit_from_rows(g, p, o)
        except LookupError:
            continue
        b = catalog.build(mb[m]) if m in mb else None
        if unit.device_energy_j is None or b is None:
            continue
        usd = cost.wall_energy_j(unit, b) / cost.J_PER_KWH * kwh * 1000
        est = "\n(ESTIMATED energy)" if unit.estimated else ""
        entries.append((f"{m}\n{w}{est}", usd, "measured", unit.rows))
    for bid in ("rtx3090", "rtx4060ti"):
        b = catalog.build(bid)
        unit = cost.llm_unit_from_anchor(b, o)
        usd = cost.wall_energy_j(unit, b) / cost.J_PER_KWH * kwh * 1000
        entries.append((f"{bid}\n{b.anchor_llm['model']}\n(catalog speed)", usd, "anchor", unit.rows))
    for mid in API_COMPARE:
        price = catalog.llm_price(mid)
        entries.append((f"API\n{mid}", price.request_usd(p, o) * 1000, "api", f"{price.source}"))
    out.append(_md_table(["what", "$ per 1,000 requests", "basis", "from"],
                         [[e[0].replace("\n", " "), f"{e[1]:.4f}", e[2], e[3]] for e in entries]))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = {"measured": "#55A868", "anchor": "#8172B2", "api": "#C44E52"}
    ax.bar(range(len(entries)), [e[1] for e in entries], color=[colors[e[2]] for e in entries])
    ax.set_yscale("log")
    ax.set_xticks(range(len(entries)), [e[0] for e in entries], fontsize=6, rotation=30, ha="right")
    ax.set_ylabel("$ per 1,000 requests (log)")
    ax.set_title(f"Local running cost vs API price, {p}+{o}-token requests")
    fig.tight_layout()
    fig.savefig(figdir / "usd_per_1k_requests.png", dpi=110)
    plt.close(fig)
    out += ["", "![Dollars per 1,000 requests](figures/usd_per_1k_requests.png)", "",
            "*Figure: $ per 1,000 requests. Green: measured rows (named in the table); purple: builds.toml speed and "
            "wall-power figures; red: API list prices (genai-prices snapshot). A 135M-parameter model is not a "
            "substitute for these APIs in quality: the CPU row shows what this box's measured energy costs.*", ""]
    return "\n".join(out)


UNIT_KINDS = {  # row kind -> (price catalog kind, unit label, catalog units per label unit, API ids to compare)
    "asr": ("stt", "audio minute", 1, ["whisper-1", "gpt-4o-mini-transcribe", "deepgram-nova-3",
                                        "assemblyai-universal"]),
    "tts": ("tts", "1M characters", 1e6, ["tts-1", "tts-1-hd", "google-tts-standard", "elevenlabs-multilingual-v2"]),
    "image": ("image", "image", 1, ["dall-e-2", "dall-e-3", "gpt-image-1-medium", "replicate-flux-schnell"]),
}


def unit_cost_section(df: pd.DataFrame) -> str:
    """Speech, voice and images: the measured running cost per unit beside the API prices of that unit."""
    kwh = catalog.tariff_usd_per_kwh()
    mb = catalog.machine_builds()
    out = ["## Dollars per audio minute, per 1M characters, per image", "",
           f"Local: energy per unit from the rows at ${kwh:g}/kWh through the PSU plus the rest of the platform while "
           "busy (running cost only); API: list prices from `analysis/data/prices.toml`.", ""]
    body = []
    for kind, (pkind, unit, scale, api_ids) in UNIT_KINDS.items():
        sub = df[(df["kind"] == kind) & df["energy_j"].notna()] if not df.empty else df
        for (m, w), g in (sub.groupby(["machine", "workload"]) if not sub.empty else []):
            u = cost.unit_from_rows(g, kind)
            j_per_unit, s_per_unit = u.device_energy_j * scale, u.seconds * scale
            b = catalog.build(mb[m]) if m in mb else None
            wall_j = cost.wall_energy_j(u, b) * scale if b else j_per_unit
            label = []
            if g["estimated"].any():
                label.append("ESTIMATED energy")
            if "weights" in g and (g["weights"] == "synthetic").any():
                label.append("synthetic weights")
            body.append([f"{m} / {w}" + (f" ({', '.join(label)})" if label else ""), unit,
                         f"${wall_j / cost.J_PER_KWH * kwh:.3g}", f"{j_per_unit:.4g} J, {s_per_unit:.3g} s",
                         rows.provenance(g)])
        for pid in api_ids:
            p = catalog.unit_price(pkind, pid)
            per = p.usd_per_unit * scale
            body.append([f"API {pid}", unit, f"${per:.3g}", "", f"prices.toml {pid}: {p.source}, as of {p.as_of}"])
    out.append(_md_table(["what", "per", "$ per unit", "device energy and busy time per unit", "from"], body))
    out.append("")
    return "\n".join(out)


def scenarios_section(figdir: Path) -> str:
    out = ["## The guides' break-even examples and case studies", "",
           "shadowbench: months = hardware ÷ (API per month − local running cost per month), *never* when the box "
           "costs at least as much to run; token prices weighted by input and output tokens; months of 30 days. "
           "`hardware ÷ API` is the guides' own formula, shown to separate the two errors.", ""]
    body = []
    for f in scenarios.all_breakeven_files():
        for r in scenarios.compute(f):
            guide_api = r.guide.get("monthly_usd")
            body.append([r.title, r.label, f"${r.api_monthly:,.2f}",
                         f"${guide_api:,.2f}" if guide_api is not None else "",
                         f"${r.local.total_usd:,.2f} ({r.local.basis})", f"**{cost.fmt_months(r.breakeven)}**",
                         cost.fmt_months(r.guide_style_breakeven), r.guide.get("breakeven", ""),
                         r.guide.get("note", "") or "; ".join(r.notes), f"`analysis/scenarios/{f.name}`"])
    out.append(_md_table(["scenario", "case", "API / month", "guide's API / month", "local running / month",
                          "break-even (shadowbench)", "hardware ÷ API", "guide says", "why they differ", "from"],
                         body))
    # cumulative cost plot: Haiku at 2,000 requests/day vs the RTX 4060 Ti box
    b = catalog.build("rtx4060ti")
    price = catalog.llm_price("claude-3-5-haiku")
    api_m = cost.api_llm_monthly(price, 2000, *SHAPE)
    modeled = cost.local_monthly(cost.llm_unit_from_anchor(b, SHAPE[1]), 2000, b, catalog.tariff_usd_per_kwh())
    months = list(range(0, 25))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(months, [api_m * m for m in months], label=f"API claude-3-5-haiku (${api_m:.0f}/month)", color="#C44E52")
    for lm, lab, style in ((b.guide_power_usd_per_month, "guide's flat power", "--"),
                           (modeled.total_usd, "modeled power (catalog speed, idle)", "-")):
        ax.plot(months, [b.hardware_usd + lm * m for m in months], style, color="#4C72B0",
                label=f"{b.id}: ${b.hardware_usd:.0f} + ${lm:.2f}/month ({lab})")
        be = cost.breakeven_months(b.hardware_usd, api_m, lm)
        if be is not None and be <= months[-1]:
            ax.axvline(be, color="gray", lw=0.8, ls=":")
            ax.annotate(f"{be:.1f} months", (be, b.hardware_usd + lm * be), textcoords="offset points",
                        xytext=(5, -15), fontsize=8)
    guide_be = cost.guide_breakeven_months(b.hardware_usd, api_m)
    sweep = volume_sweep(price)
    ax.set_xlabel("months")
    ax.set_ylabel("cumulative $")
    ax.set_title("2,000 requests/day of 500+200 tokens: cumulative cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figdir / "cumulative_cost.png", dpi=110)
    plt.close(fig)
    out += ["", "![Cumulative cost](figures/cumulative_cost.png)", "",
            f"*Figure: cumulative cost at 2,000 requests/day. Catalog entries: genai-prices "
            f"{catalog.genai_prices_version()} claude-3-5-haiku (${price.usd_per_mtok_in:g}/${price.usd_per_mtok_out:g} "
            f"per 1M); builds.toml {b.id} (${b.hardware_usd:.0f}, guide power ${b.guide_power_usd_per_month}/month, "
            f"{b.anchor_llm['tg_tokens_per_s']} tokens/s, {b.busy_wall_w:g} W busy, {b.idle_wall_w:g} W idle). "
            f"The guide's formula (hardware ÷ API, ${api_m:.0f}/month) gives {guide_be:.1f} months; the guide printed "
            f"~7 months from a $100/month API figure that averages input and output prices.*", "", sweep]
    return "\n".join(out)


def volume_sweep(price) -> str:
    """Break-even over daily volume for the guides' request shape, and the crossover volumes, per guide build."""
    kwh = catalog.tariff_usd_per_kwh()
    per_task = price.request_usd(*SHAPE)
    volumes = [50, 100, 250, 500, 1000, 2000, 5000]
    body = []
    for bid in ("rtx4060ti", "rtx3090"):
        b = catalog.build(bid)
        unit = cost.llm_unit_from_anchor(b, SHAPE[1])
        for label, u, flat in (("modeled", unit, None), ("guide's flat power", None, b.guide_power_usd_per_month)):
            cells = [f"{bid} ({label})"]
            for v in volumes:
                _, _, be, over = cost.breakeven_at(v, per_task, u, b, kwh, flat_local_monthly=flat)
                cells.append("over capacity" if over else cost.fmt_months(be).split(" (")[0])
            cells.append(cost.fmt_volume(cost.crossover_volume(per_task, u, b, kwh, flat_local_monthly=flat)))
            cells.append(cost.fmt_volume(cost.crossover_volume(per_task, u, b, kwh, flat_local_monthly=flat,
                                                               within_months=b.lifetime_years * 12)))
            body.append(cells)
    return "\n".join([
        f"### Break-even by volume: {price.id}, {SHAPE[0]}+{SHAPE[1]}-token requests", "",
        _md_table(["build"] + [f"{v:,}/day" for v in volumes]
                  + ["runs cheaper than the API from (requests/day)", "pays back within its life from"], body), "",
        f"*Modeled: builds.toml speed, busy and idle wall watts over {catalog.build('rtx4060ti').hours_per_day:g} "
        f"hours on per day at ${kwh:g}/kWh; guide's flat power: the guides' monthly figure. Life: the builds' "
        f"lifetime (4 years). Catalog: genai-prices {catalog.genai_prices_version()} {price.id}.*", ""])


def routing_section(figdir: Path) -> str:
    path = scenarios.SCENARIOS / "routing-homelab.toml"
    r = scenarios.routing(path)
    out = ["## Hybrid routing", "", f"{r.title}, {r.requests_per_day:,.0f} requests/day "
           f"(`analysis/scenarios/{path.name}`; {r.source}).", ""]
    out.append(_md_table(["route", "requests/day", "to", "local/day", "overflow to API/day", "basis"],
                         [[x["route"], f"{x['requests_per_day']:,.0f}", x["to"], f"{x['local_per_day']:,.0f}",
                           f"{x['overflow_per_day']:,.0f}", x["basis"]] for x in r.rows]))
    out += ["", f"All-API: **${r.all_api_monthly:,.2f}/month**. Hybrid: API ${r.hybrid_api_monthly:,.2f} + local "
            f"running ${r.hybrid_local_monthly:,.2f} = **${r.hybrid_monthly:,.2f}/month**, "
            f"saving **{r.savings:.0%}** (the guide claims 60–80% of API spend). Hardware "
            f"${r.build.hardware_usd:,.0f} pays back in "
            f"{cost.fmt_months(cost.breakeven_months(r.build.hardware_usd, r.all_api_monthly, r.hybrid_monthly))}.", ""]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(["all API"], [r.all_api_monthly], color="#C44E52")
    ax.bar(["hybrid"], [r.hybrid_api_monthly], color="#C44E52", label="API")
    ax.bar(["hybrid"], [r.hybrid_local_monthly], bottom=[r.hybrid_api_monthly], color="#4C72B0",
           label="local running cost")
    ax.set_ylabel("$ per month")
    ax.set_title(f"Hybrid routing saves {r.savings:.0%}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(figdir / "routing.png", dpi=110)
    plt.close(fig)
    out += ["![Hybrid routing](figures/routing.png)", "",
            f"*Figure: monthly cost, all-API vs hybrid. Catalog entries: genai-prices {catalog.genai_prices_version()}"
            f" claude-haiku-4-5; builds.toml {r.build.id} speed and power figures; the route shares in the scenario "
            "file.*", ""]
    return "\n".join(out)


def write_report(results_dir: Path, out: Path | None = None) -> tuple[Path, list[str]]:
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "REPORT.md"
    figdir = out.parent / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    df, problems = rows.load(results_dir)
    prices_dates = sorted({p.as_of for k in ("stt", "tts", "image") for p in catalog.unit_prices(k).values()})
    head = [
        "# shadowbench report", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `shadowbench report` from "
        f"{df['file'].nunique() if not df.empty else 0} result files ({len(df)} rows) under `{results_dir}`.", "",
        f"Prices: LLM tokens from genai-prices {catalog.genai_prices_version()} (bundled data snapshot); "
        f"speech, voice and image prices from `analysis/data/prices.toml`, dated {', '.join(prices_dates)} "
        "(see `shadowbench prices`); the guides' rows as printed. Electricity "
        f"${catalog.tariff_usd_per_kwh():g}/kWh. Builds and their assumptions: `analysis/data/builds.toml`.", ""]
    if not df.empty and df["estimated"].any():
        head += ["> **Estimated energy.** Some rows carry `energy_source=estimated`: no energy counter was readable "
                 "on that box, so energy is CPU time × watts per busy thread (see each row's `energy_note`). Such "
                 "figures are labeled ESTIMATED wherever they appear and are not measurements.", ""]
    body, figs = measured_section(df, figdir)
    parts = head + [body, cost_per_request_section(df, figdir), unit_cost_section(df), scenarios_section(figdir),
                    routing_section(figdir)]
    if problems:
        parts += ["## Result files left out", ""] + [f"- {p}" for p in problems] + [""]
    out.write_text("\n".join(parts) + "\n")
    return out, problems
