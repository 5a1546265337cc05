"""`shadowbench report`: results/REPORT.md and its plots from every committed result file and the dated catalogs.

Each section is computed as data (``render.Section``: text, tables and figure specs) from the rows and catalogs;
``render`` turns them into markdown and PNGs. Every figure names the rows or catalog entries it was drawn from;
estimated energy is labeled. The editorial choices (which APIs, builds and volumes) are in
``analysis/data/report.toml``.
"""
from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pandas as pd

from bench import columns, kinds
from bench.errors import ConfigError
from bench.kinds.llm import request_test

from . import batching, bigmodels, catalog, cost, quality, rows, scenarios
from .render import BarChart, Bars, Figure, Line, LineChart, Scatter, Section, Table, figures, markdown, plot

GREEN, ORANGE, PURPLE, RED, BLUE = "#55A868", "#DD8452", "#8172B2", "#C44E52", "#4C72B0"


@lru_cache(maxsize=1)
def choices() -> dict:
    """The report's editorial choices (analysis/data/report.toml)."""
    return tomllib.loads((catalog.DATA / "report.toml").read_text())


def shape() -> tuple[int, int]:
    s = choices()["request_shape"]
    return s["prompt_tokens"], s["output_tokens"]


def _g(v, fmt=".4g") -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else format(v, fmt)


def _stat(s: pd.Series) -> tuple[float, float, float, float | None]:
    s = s.dropna()
    cvv = s.std() / s.mean() if len(s) > 1 and s.mean() else None
    return s.median(), s.min(), s.max(), cvv


def _workload_label(key: dict, versions: pd.Series) -> str:
    """The workload's name, with its suite version where the rows hold more than one version of it."""
    return key["workload"] + (f" (suite v{key['suite_version']})" if versions.nunique() > 1 else "")


def _bar_label(key: dict, one_machine: bool) -> str:
    return f"{key['workload']}\n{key['test']}" if one_machine else f"{key['machine']}\n{key['workload']}\n{key['test']}"


# ------------------------------------------------------------------------------------------------ measured


def measured_section(df: pd.DataFrame) -> Section:
    sec = Section("Measured on the committed boxes")
    if df.empty:
        sec.blocks.append("No result rows yet: run `make bench` and commit the file.")
        return sec
    # quality passes and batching tests: their own sections. Only the columns this section reads are copied (a
    # 200 MB results file must not be held twice)
    need = set(rows.COMPARABLE) | {"file", "run_id", "ttft_s", "energy_j", "energy_source", "estimated", "energy_note",
                                   "j_per_output_token", "idle_power_w"}
    need |= {c.name for k in df["kind"].unique() for c in columns.headline(k)}
    in_process = df.loc[(df["kind"] != "endpoint") & ((df["kind"] != "llm") | df["test"].map(request_test)),
                        [c for c in df.columns if c in need]]
    body = []
    for key, g in rows.groups(in_process):
        versions = in_process.loc[(in_process["machine"] == key["machine"])
                                  & (in_process["workload"] == key["workload"]), "suite_version"]
        thr = []
        for col in columns.headline(key["kind"]):
            if col.name in g and g[col.name].notna().any():
                med, lo, hi, cv = _stat(g[col.name])
                thr.append(f"{col.title()} {med:.4g} ({lo:.4g}–{hi:.4g}"
                           f"{', CV ' + format(cv, '.1%') if cv is not None else ''})")
        cells = [key["machine"], _workload_label(key, versions), key["test"], key["kind"], len(g), "; ".join(thr),
                 _g(g["ttft_s"].median())]
        if g["energy_j"].notna().any():
            src = "+".join(sorted(set(g["energy_source"])))
            label = " **ESTIMATED**" if g["estimated"].any() else ""
            cells += [f"{g['energy_j'].median():.4g} J ({src}){label}",
                      _g(g["j_per_output_token"].median()) + (label if g["j_per_output_token"].notna().any() else ""),
                      _g(g["idle_power_w"].median()) + (label if g["idle_power_w"].notna().any() else "")]
        else:
            cells += ["not measured", "", ""]
        cells.append(", ".join(sorted(set(Path(f).name for f in g["file"]))))
        body.append(cells)
    sec.blocks.append(Table(["machine", "workload", "test", "kind", "n", "throughput: median (min–max, CV)",
                             "TTFT s", "energy per repetition (median)", "J per output token", "idle W",
                             "rows from"], body))

    llm = in_process[in_process["kind"] == "llm"]
    if not llm.empty:
        one = llm["machine"].nunique() == 1
        panels = []
        for col in columns.headline("llm"):
            sub = llm[llm[col.name].notna()]
            gs = list(rows.groups(sub))
            meds = [g[col.name].median() for _, g in gs]
            panels.append(BarChart(
                labels=[_bar_label(k, one) for k, _ in gs], ylabel=col.title(),
                title=f"{col.title()}: median, bars min–max",
                series=[Bars(meds, BLUE, yerr=([m - g[col.name].min() for m, (_, g) in zip(meds, gs)],
                                               [g[col.name].max() - m for m, (_, g) in zip(meds, gs)]))]))
        sec.blocks.append(Figure(
            "throughput.png", "LLM throughput", f"LLM throughput. Rows: {rows.provenance(llm)}.", panels,
            suptitle="LLM throughput per box, workload and test" + (f" ({llm['machine'].iloc[0]})" if one else ""),
            size=(11, 4.2)))

    with_e = in_process[in_process["energy_j"].notna()]
    if not with_e.empty:
        gs = list(rows.groups(with_e))
        one = with_e["machine"].nunique() == 1
        est = [bool(g["estimated"].any()) for _, g in gs]
        legend = [(lab, col, h) for lab, col, h, present in (
            ("measured", GREEN, None, not all(est)), ("estimated (not measured)", ORANGE, "//", any(est))) if present]
        chart = BarChart(
            labels=[_bar_label(k, one) for k, _ in gs], ylabel="J per repetition (median, gross, log)", log=True,
            rotate=25, legend=legend,
            title="Energy per task" + (" — ESTIMATED from CPU time" if all(est) else "")
                  + (f"\n{with_e['machine'].iloc[0]}" if one else ""),
            series=[Bars([g["energy_j"].median() for _, g in gs], [ORANGE if e else GREEN for e in est],
                         hatches=["//" if e else None for e in est])])
        notes = sorted(set(n for n in with_e["energy_note"].dropna() if n))
        sec.blocks.append(Figure(
            "energy.png", "Energy per task",
            f"energy per repetition (gross, before idle subtraction). Rows: {rows.provenance(with_e)}."
            + (f" Estimate basis: {'; '.join(notes)}." if notes else ""), [chart]))
    return sec


# ------------------------------------------------------------------------------------------------- serving


def serving_section(df: pd.DataFrame) -> Section | None:
    """Endpoint rows: throughput, latency percentiles and energy per output token per concurrency or rate step."""
    ep = df[df["kind"] == "endpoint"] if not df.empty else df
    if ep.empty:
        return None
    sec = Section("Serving: an OpenAI-compatible server under load")
    sec.blocks.append(
        "One row per step (`cN`: N requests in flight; `rX`: X requests/s evenly spaced; `pX`: Poisson arrivals), "
        "medians over the repetitions. Latency "
        "percentiles are over completed requests; the failure rate is beside them. Per-request tokens/s is what one "
        "client sees (1 / time per output token); aggregate tokens/s is all requests' output over the step's wall "
        "time. Energy covers the server's process too where the harness spawned it.")
    body = []
    curves = []
    for (m, w), mw in ep.groupby(["machine", "workload"], sort=False):
        xs, agg, jpt, per = [], [], [], []
        for key, g in rows.groups(mw):
            med = lambda c: g[c].median()  # noqa: E731
            est = " **ESTIMATED**" if g["estimated"].any() else ""
            body.append([m, w, key["test"], len(g), f"{int(g['completed'].sum())}/{int(g['requests'].sum())}",
                         _g(med("failure_rate"), ".1%"), _g(med("agg_tokens_per_s")), _g(med("tg_tokens_per_s")),
                         " / ".join(_g(med(f"ttft_p{q}_s"), ".3g") for q in (50, 95, 99)),
                         " / ".join(_g(med(f"itl_p{q}_s"), ".3g") for q in (50, 95, 99)),
                         " / ".join(_g(med(f"e2e_p{q}_s"), ".3g") for q in (50, 95)),
                         (_g(med("j_per_output_token")) + est) if g["j_per_output_token"].notna().any() else "",
                         ";".join(sorted(set(g["token_count_source"].dropna()))),
                         ", ".join(sorted(set(Path(f).name for f in g["file"])))])
            if g["concurrency"].notna().any():
                xs.append(float(g["concurrency"].iloc[0]))
                agg.append(med("agg_tokens_per_s"))
                jpt.append(med("j_per_output_token"))
                per.append(med("tg_tokens_per_s"))
        if len(xs) > 1:
            curves.append((f"{m} / {w}" + (" (ESTIMATED energy)" if mw["estimated"].any() else ""), xs, agg, jpt,
                           per))
    sec.blocks.append(Table(["machine", "workload", "step", "n", "completed", "failure rate", "aggregate tokens/s",
                             "per-request tokens/s", "TTFT p50 / p95 / p99 s", "ITL p50 / p95 / p99 s",
                             "latency p50 / p95 s", "J per output token", "token counts", "rows from"], body))
    if curves:
        sec.blocks.append(Figure(
            "serving.png", "Throughput and energy per token vs concurrency",
            f"aggregate output tokens/s and energy per output token against requests in flight, and the serving "
            f"trade-off: what one request sees against what the box delivers (medians). Rows: "
            f"{rows.provenance(ep)}.",
            [LineChart([Line(lab, x, a, marker="o") for lab, x, a, _, _ in curves], "requests in flight",
                       "aggregate output tokens/s", "Throughput vs concurrency", logx=True),
             LineChart([Line(lab, x, j, marker="o") for lab, x, _, j, _ in curves], "requests in flight",
                       "J per output token", "Energy per token vs concurrency", logx=True),
             LineChart([Line(lab, p, a, marker="o") for lab, _, a, _, p in curves], "tokens/s one request sees",
                       "aggregate output tokens/s", "Per-request vs total throughput")],
            size=(15, 4.2)))
    return sec


# ---------------------------------------------------------------------------------------------------- costs


def cost_per_request_section(df: pd.DataFrame) -> Section:
    p, o = shape()
    kwh = catalog.tariff_usd_per_kwh()
    n = choices()["requests_per_day"]
    sec = Section(f"Dollars per 1,000 requests of {p}+{o} tokens", [
        f"At {n:,} requests/day. Local running: energy at ${kwh:g}/kWh through the PSU plus the rest of the platform "
        "while busy, and the idle hours the box is on spread over the requests. Local all-in: running plus the "
        f"hardware's share over its life at this volume ({cost.CALENDAR}). API: token-weighted list prices. A volume "
        "beyond the box's capacity is marked."])
    entries = []  # (label, running per 1k, all-in per 1k or None, basis, source, over capacity)
    mb = catalog.machine_builds()
    llm = df[df["kind"] == "llm"] if not df.empty else df
    for (m, w), g in (llm.groupby(["machine", "workload"]) if not llm.empty else []):
        g = rows.newest(g)
        try:
            unit = rows.llm_unit(g, p, o)
        except LookupError:
            continue
        b = catalog.build(mb[m]) if m in mb else None
        if unit.device_energy_j is None or b is None:
            continue
        tc = cost.local_monthly(unit, n, b, kwh)
        per = tc.per_task()
        est = unit.estimated
        entries.append((f"{m}\n{w}" + ("\n(ESTIMATED energy)" if est else ""), per.running_usd * 1000,
                        None if per.all_in_usd is None else per.all_in_usd * 1000,
                        "measured rows, ESTIMATED energy" if est else "measured rows", unit.rows, tc.over_capacity))
    for bid in choices()["anchor_builds"]:
        b = catalog.build(bid)
        unit = cost.llm_unit_from_anchor(b, o)
        tc = cost.local_monthly(unit, n, b, kwh)
        per = tc.per_task()
        entries.append((f"{bid}\n{b.anchor_llm['model']}\n(catalog speed)", per.running_usd * 1000,
                        None if per.all_in_usd is None else per.all_in_usd * 1000, "builds.toml speed and watts",
                        unit.rows, tc.over_capacity))
    for mid in choices()["llm_apis"]:
        price = catalog.llm_price(mid)
        usd = price.request_usd(p, o) * 1000
        entries.append((f"API\n{mid}", usd, usd, "API list price", f"{price.source}", False))

    def usd(v, over):
        return "" if v is None else f"{v:.4f}" + (" (over capacity)" if over else "")

    sec.blocks.append(Table(
        ["what", "$ per 1,000 requests: running", "$ per 1,000 requests: all-in", "basis", "from"],
        [[e[0].replace("\n", " "), usd(e[1], e[5]), usd(e[2], e[5]) if e[2] is not None else "no hardware price",
          e[3], e[4]] for e in entries]))
    colors = {"measured rows": GREEN, "measured rows, ESTIMATED energy": ORANGE, "builds.toml speed and watts": PURPLE,
              "API list price": RED}
    sec.blocks.append(Figure(
        "usd_per_1k_requests.png", "Dollars per 1,000 requests",
        f"$ per 1,000 requests at {n:,} requests/day, all-in where the hardware has a price, else running only "
        "(hatched). Rows: named in the table. Orange: this box's rows, whose energy is ESTIMATED from CPU time; "
        "purple: builds.toml speed and wall-power figures; red: API list prices (genai-prices snapshot). A "
        "135M-parameter model is not a substitute for these APIs in quality.",
        [BarChart([e[0] for e in entries],
                  [Bars([e[2] if e[2] is not None else e[1] for e in entries], [colors[e[3]] for e in entries],
                        hatches=[None if e[2] is not None else "//" for e in entries])],
                  "$ per 1,000 requests (log)", f"All-in local cost vs API price, {p}+{o}-token requests", log=True,
                  label_size=6, rotate=30)], size=(10, 5.5)))
    return sec


def unit_cost_section(df: pd.DataFrame) -> Section:
    """Speech, voice and images: the measured running cost per unit beside the API prices of that unit."""
    kwh = catalog.tariff_usd_per_kwh()
    mb = catalog.machine_builds()
    sec = Section("Dollars per audio minute, per 1M characters, per image, per 1M embedding tokens", [
        f"Local: energy per unit from the rows at ${kwh:g}/kWh through the PSU plus the rest of the platform while "
        "busy (running cost only); API: list prices from `analysis/data/prices.toml`. Speech rows carry their word "
        "error rate on the reference set (voice: of the round trip through speech-to-text), and embedding rows their "
        "retrieval check (recall@1 of fixed queries), so a faster model's saving is read beside what it gets wrong."])
    body = []
    for contract in kinds.contracts():
        pricing = contract.PRICING
        if pricing is None or pricing.price_kind not in choices()["unit_apis"]:
            continue
        kind, scale, unit = contract.NAME, pricing.display_scale, pricing.display
        sub = df[(df["kind"] == kind) & df["energy_j"].notna()] if not df.empty else df
        for (m, w), g in (sub.groupby(["machine", "workload"]) if not sub.empty else []):
            from bench.models import synthetic_words

            if not all(synthetic_words(str(x))[0] for x in set(g["model"].dropna())):
                continue  # a test shape (synthetic:tiny) never prices anything
            g = rows.newest(g)
            u = rows.priced_unit(g, kind)
            j_per_unit, s_per_unit = u.device_energy_j * scale, u.seconds * scale
            b = catalog.build(mb[m]) if m in mb else None
            wall_j = cost.wall_energy_j(u, b) * scale if b else j_per_unit
            label = []
            if g["estimated"].any():
                label.append("ESTIMATED energy")
            if (g["weights"] == "synthetic").any():
                label.append("synthetic weights")
            speed = [f"{col.title()} {g[col.name].median():.3g}" for col in columns.headline(kind)
                     if col.name in g and g[col.name].notna().any()]
            if "wer" in g and g["wer"].notna().any():
                speed.append(f"WER {g['wer'].median():.1%}")
            if "recall_at_1" in g and g["recall_at_1"].notna().any():
                speed.append(f"recall@1 {g['recall_at_1'].median():.0%}")
            body.append([f"{m} / {w}" + (f" ({', '.join(label)})" if label else ""), unit,
                         f"${wall_j / cost.J_PER_KWH * kwh:.3g}", f"{j_per_unit:.4g} J, {s_per_unit:.3g} s",
                         ", ".join(speed), rows.provenance(g)])
        for pid in choices()["unit_apis"][pricing.price_kind]:
            p = catalog.unit_price(pricing.price_kind, pid)
            body.append([f"API {pid}", unit, f"${p.usd_per_unit * scale:.3g}", "", "",
                         f"prices.toml {pid}: {p.source}, as of {p.as_of}"])
    sec.blocks.append(Table(["what", "per", "$ per unit", "device energy and busy time per unit",
                             "speed and quality (medians)", "from"], body))
    return sec


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:.0%}"


def _saves(v: float | None, what: str, verb: str = "") -> str:
    """'saves 62% of the input tokens' / 'costs 40% more busy time' ('has ... fewer/more' with verb='has')."""
    if v is None:
        return f"{what}: not measured"
    if verb == "has":
        return f"has {abs(v):.0%} {'fewer' if v >= 0 else 'more'} {what}"
    return f"saves {v:.0%} of the {what}" if v >= 0 else f"costs {-v:.0%} more {what}"


def batching_section(df: pd.DataFrame) -> Section | None:
    """The guides' Strategy 3 against the eachN / collectN rows: per 1,000 emails at the APIs' token prices and on
    the box (busy time, energy at the wall), labels right, the measured savings beside the guide's 90%."""
    pairs = batching.pairs(df)
    if not pairs:
        return None
    conf = batching.claims()
    emails, kwh, mb = conf["emails"], catalog.tariff_usd_per_kwh(), catalog.machine_builds()
    apis = [catalog.llm_price(a) for a in conf["apis"]]
    g = batching.guide_check()
    sec = Section("Batching: one request per email, or one request for many", [
        f"The guide's batching strategy ({g['source']}), measured: the same emails classified one request each "
        "(`eachN`) and in one request holding all N, numbered, the answer parsed back line by line (`collectN`); the "
        "same instructions, greedy decoding, the answer held to the five labels by a grammar (`bench/batching.py`). "
        f"Per {emails:,} emails: the API's cost is each request's measured input and output tokens at its token "
        f"prices; the box's is its busy time and its energy at the wall at ${kwh:g}/kWh (running cost only; the "
        "device's energy alone where the machine is not mapped to a build in `builds.toml`). "
        "\"Labeled right\" is the share of emails the model labeled as written: a batch that answers worse is not "
        "a saving."])
    body, sums = [], []
    for p in pairs:
        b = catalog.build(mb[p.machine]) if p.machine in mb else None
        usd_local = {}
        for m in (p.each, p.collect):
            u = m.unit()
            wall_j = (cost.wall_energy_j(u, b) if b else u.device_energy_j)
            usd_local[m.test] = None if wall_j is None else wall_j * emails / cost.J_PER_KWH * kwh
            est = ("" if b else " device only") + (" ESTIMATED" if m.estimated else "")
            body.append([f"{p.machine} / {p.workload}", m.test, f"{m.requests * emails / m.items:,.0f}",
                         f"{m.in_tokens:.1f}", f"{m.out_tokens:.1f}",
                         *[f"${m.api_usd(a, emails):.3g}" for a in apis],
                         f"{m.seconds * emails:,.0f} s",
                         "" if usd_local[m.test] is None else f"${usd_local[m.test]:.3g}{est}",
                         _pct(m.accuracy), m.rows])
        sv = {k: batching.saving(getattr(p.each, k), getattr(p.collect, k))
              for k in ("in_tokens", "out_tokens", "seconds")}
        sv["api"] = batching.saving(p.each.api_usd(apis[0], emails), p.collect.api_usd(apis[0], emails))
        sv["energy"] = batching.saving(usd_local[p.each.test], usd_local[p.collect.test])
        sums.append(
            f"**{p.machine} / {p.workload}, {p.items} emails per batch:** at {apis[0].id} collect-style "
            f"{_saves(sv['api'], 'API cost')} ({_saves(sv['in_tokens'], 'input tokens', 'has')}: "
            "only the instructions are shared, every email is still in the prompt; it "
            f"{_saves(sv['out_tokens'], 'output tokens', 'has')}: each answer line carries its number). On the box "
            f"it {_saves(sv['seconds'], 'busy time')} and {_saves(sv['energy'], 'energy')} "
            "(one request at a time reuses the cached instructions, as llama.cpp's server and Ollama do; the batch "
            "decodes its longer answer over a longer context). Labeled right: "
            f"{_pct(p.each.accuracy)} one at a time, {_pct(p.collect.accuracy)} batched.")
    sec.blocks.append(Table(["box / workload", "test", f"requests per {emails:,}", "input tokens per email",
                             "output tokens per email", *[f"API {a.id} per {emails:,}" for a in apis],
                             f"busy time per {emails:,}", f"local energy per {emails:,}", "labeled right", "from"],
                            body))
    sec.blocks.extend(sums)
    c = conf["guide"]
    sec.blocks.append(
        f"The guide: a {g['saving_printed']:.0%} saving, from {c['tokens_per_email_alone']} tokens per email one "
        f"request each against {c['tokens_per_batch']} tokens per {c['batch_size']}-email batch, input tokens only, "
        f"at one blended ${c['usd_per_mtok']:g}/1M. That counts a batched email at "
        f"{g['batched_tokens_per_email']:g} tokens where the same email alone is {c['tokens_per_email_alone']}: the "
        "emails do not shrink when batched, only the instructions are shared. Its dollars are ten times its own "
        f"figures: {c['tokens_per_email_alone'] * c['emails']:,} tokens at ${c['usd_per_mtok']:g}/1M is "
        f"${g['naive_usd']:.4f} (printed ${g['naive_usd_printed']:g}), batched ${g['batched_usd']:.5f} (printed "
        f"${g['batched_usd_printed']:g}).")
    for a in apis:
        sec.blocks.append(f"API {a.id}: ${a.usd_per_mtok_in:g} in / ${a.usd_per_mtok_out:g} out per 1M tokens, "
                          f"{a.source}, as of {a.as_of}.")
    return sec


def bigmodels_section(df: pd.DataFrame) -> Section:
    """The guides' 70B speeds and Qwen Image times on cards that cannot hold those models whole, beside the form
    that fits, the bandwidth bound it allows, and the measured rows."""
    d = bigmodels.data()
    m = d["llm"]
    sec = Section("The guides' big models on the guides' cards", [
        f"The guides quote {m['guide_model']} speeds for cards that cannot hold it: {m['label']} is "
        f"{m['file_gb']:g} GB ({m['source']}). It runs split by layer (`n_gpu_layers = \"fit\"`): the layers that "
        "fit on the card with their KV cache (n_ctx " + f"{m['n_ctx']:,}" + "), the rest in RAM. A decode step reads "
        "every weight once, so the split bounds the speed: tokens/s ≤ 1 ÷ (GPU bytes ÷ card bandwidth + RAM bytes "
        "÷ RAM bandwidth). The bound is arithmetic, not a measurement: the GPU suites carry the split model "
        "(`llama3.3-70b-q4_k_m-split`) for a card to measure."])
    body = []
    for c in bigmodels.llm_claims(df):
        if c.fits_ram is False:
            form = f"does not fit: {m['file_gb']:g} GB > {c.memory_gb:g} GB of unified memory"
        else:
            form = c.split.detail.split(" (estimated")[0]
        bound = "" if c.bound_tok_s is None else f"≤ {c.bound_tok_s:.1f}"
        diff = ""
        if c.fits_ram is False:
            diff = "the model does not fit this memory at Q4_K_M"
        elif c.bound_tok_s is not None:
            diff = f"the guide's figure is {c.guide_tok_s / c.bound_tok_s:.0f}× the bound"
        body.append([f"{c.label} (`{c.build}`)", f"~{c.guide_tok_s:g} ({c.guide_source})", f"{c.memory_gb:g} GB",
                     form, bound, c.bound_basis,
                     "" if c.measured_tok_s is None else f"{c.measured_tok_s:.3g}", c.measured_rows or "not measured "
                     "here", diff])
    sec.blocks.append(Table(["build", "guide: tokens/s", "card memory", "what fits", "bandwidth bound, tokens/s",
                             "bandwidths", "measured tokens/s", "from", "difference"], body))
    body = []
    for c in bigmodels.image_claims(df):
        body.append([f"{c['label']} (`{c['build']}`)", f"{c['guide_s']:g} s ({c['source']})",
                     "" if c["measured_s"] is None else f"{c['measured_s']:.3g} s", c["rows"] or "not measured here"])
    if body:
        sec.blocks.append("Qwen Image is a 20B-parameter transformer (41 GB in bf16) with a 16.6 GB text encoder: "
                          "the GPU suites run it as a Q4_K_S GGUF with model CPU offload on 24 GB and sequential "
                          "offload on 16 GB; the rows say the quantization and the offload.")
        sec.blocks.append(Table(["build", "guide: s/image", "measured s/image", "from"], body))
    f = bigmodels.flux_download()
    sec.blocks.append(f"{f['guide']} ({f['guide_source']}): the published files are {f['total_gb']:.1f} GB ("
                      + ", ".join(f"{n} {g:g} GB" for n, g in f["files"]) + f"); with the transformer as a Q8_0 GGUF "
                      f"({f['gguf_q8_0_gb']:g} GB), {f['gguf_total_gb']:.1f} GB. The guide's ~12 GB is about the "
                      f"quantized transformer alone. Sizes: {f['source']}.")
    return sec


def scenarios_section() -> Section:
    sec = Section("The guides' break-even examples and case studies", [
        "shadowbench: months = hardware ÷ (API per month − local running cost per month), *never* when the box "
        "costs at least as much to run, *over capacity* when the volume needs more busy hours than the box is on; "
        f"token prices weighted by input and output tokens at today's prices; {cost.CALENDAR}. One basis, as "
        "`shadowbench cost --local-power anchor` and `advise` price a build: the local running cost is modeled from "
        "the build's catalog figures in builds.toml (its speed figure's busy hours at its busy wall watts, its idle "
        "watts for the rest of its hours on, electricity at the [tariff]). Beside it, as the guide's: the break-even "
        "with the guide's flat monthly power figure, and `hardware ÷ API`, the guides' own formula, shown to "
        "separate the errors; the guides' figures are as printed."])
    body = []
    for f in scenarios.all_breakeven_files():
        flat = {r.label: r for r in scenarios.compute(f, power="guide")}
        for r in scenarios.compute(f, power="model"):
            guide_api = r.guide.get("monthly_usd")
            be = f"**over capacity** ({r.capacity_note})" if r.over_capacity else f"**{cost.fmt_months(r.breakeven)}**"
            running = f"${r.local.total_usd:,.2f}"
            if r.over_capacity and len(r.lines) == 1:  # the capped mix, as `cost` answers it
                capped = scenarios.capped(r)
                be += (f"; capped (the box at its {capped.served_per_day:,.0f}/day, the rest on the API): "
                       f"**{cost.fmt_months(capped.breakeven_months)}**")
                running = (f"${capped.local.total_usd:,.2f} at capacity + ${capped.overflow_api_usd:,.2f} of "
                           "overflow on the API")
            g = flat.get(r.label)
            with_flat = ("" if g is None or g.local.basis != "guide" else
                         f"{'over capacity' if g.over_capacity else cost.fmt_months(g.breakeven)} "
                         f"(${g.local.total_usd:,.2f}/month)")
            unchecked = ("; idle only: a task has no speed figure for this build, so its busy energy and the "
                         "capacity are not counted" if r.capacity_note and not r.over_capacity else "")
            body.append([r.title, r.label, f"${r.api_monthly:,.2f}",
                         f"${guide_api:,.2f}" if guide_api is not None else "",
                         f"{running}{unchecked}", be, with_flat,
                         cost.fmt_months(r.guide_style_breakeven), r.guide.get("breakeven", ""), r.why(),
                         f"`analysis/scenarios/{f.name}`"])
    sec.blocks.append(Table(["scenario", "case", "API / month", "guide's API / month",
                             "local running / month (builds.toml model)", "break-even (shadowbench)",
                             "with the guide's flat power", "hardware ÷ API", "guide says", "why they differ", "from"],
                            body))
    c = choices()["cumulative"]
    b = catalog.build(c["build"])
    price = catalog.llm_price(c["api"])
    n = c["requests_per_day"]
    api_m = cost.api_llm_monthly(price, n, *shape())
    modeled = cost.local_monthly(cost.llm_unit_from_anchor(b, shape()[1]), n, b, catalog.tariff_usd_per_kwh())
    months = list(range(0, c["months"] + 1))
    lines = [Line(f"API {price.id} (${api_m:.0f}/month)", months, [api_m * m for m in months], color=RED)]
    marks = []
    for lm, lab, style in ((b.guide_power_usd_per_month, "guide's flat power", "--"),
                           (modeled.total_usd, "modeled power (catalog speed, idle)", "-")):
        lines.append(Line(f"{b.id}: ${b.hardware_usd:.0f} + ${lm:.2f}/month ({lab})", months,
                          [b.hardware_usd + lm * m for m in months], style, BLUE))
        be = cost.breakeven_months(b.hardware_usd, api_m, lm)
        if be is not None and be <= months[-1]:
            marks.append((be, b.hardware_usd + lm * be, f"{be:.1f} months"))
    guide_be = cost.guide_breakeven_months(b.hardware_usd, api_m)
    p, o = shape()
    sec.blocks.append(Figure(
        "cumulative_cost.png", "Cumulative cost",
        f"cumulative cost at {n:,} requests/day. Catalog entries: genai-prices {catalog.genai_prices_version()} "
        f"{price.id} (${price.usd_per_mtok_in:g}/${price.usd_per_mtok_out:g} per 1M); builds.toml {b.id} "
        f"(${b.hardware_usd:.0f}, guide power ${b.guide_power_usd_per_month}/month, "
        f"{b.anchor_llm['tg_tokens_per_s']} tokens/s, {b.busy_wall_w:g} W busy, {b.idle_wall_w:g} W idle). "
        f"The guide's formula (hardware ÷ API, ${api_m:.0f}/month) gives {guide_be:.1f} months; {c['guide_quote']}.",
        [LineChart(lines, "months", "cumulative $", f"{n:,} requests/day of {p}+{o} tokens: cumulative cost",
                   marks=marks)], size=(8, 4.5)))
    return sec


def volume_sweep_section() -> Section:
    """Break-even over daily volume for the guides' request shape, and the crossover volumes, per guide build."""
    c = choices()["volume_sweep"]
    kwh = catalog.tariff_usd_per_kwh()
    price = catalog.llm_price(c["api"])
    per_task = price.request_usd(*shape())
    volumes = c["requests_per_day"]
    body = []
    for bid in c["builds"]:
        b = catalog.build(bid)
        unit = cost.llm_unit_from_anchor(b, shape()[1])
        for label, u, flat in (("modeled", unit, None), ("guide's flat power", None, b.guide_power_usd_per_month)):
            cells = [f"{bid} ({label})"]
            for v in volumes:
                _, _, be, over = cost.breakeven_at(v, per_task, u, b, kwh, flat_local_monthly=flat)
                cells.append("over capacity" if over else cost.fmt_months(be).split(" (")[0])
            cells.append(cost.fmt_volume(cost.crossover_volume(per_task, u, b, kwh, flat_local_monthly=flat)))
            cells.append(cost.fmt_volume(cost.crossover_volume(per_task, u, b, kwh, flat_local_monthly=flat,
                                                               within_months=cost.lifetime_months(b))))
            body.append(cells)
    p, o = shape()
    first = catalog.build(c["builds"][0])
    return Section(f"Break-even by volume: {price.id}, {p}+{o}-token requests", [
        Table(["build"] + [f"{v:,}/day" for v in volumes]
              + ["runs cheaper than the API from (requests/day)", "pays back within its life from"], body),
        f"*Modeled: builds.toml speed, busy and idle wall watts over {first.hours_per_day:g} "
        f"hours on per day at ${kwh:g}/kWh; guide's flat power: the guides' monthly figure. Life: the builds' "
        f"lifetime ({first.lifetime_years:g} years). Catalog: genai-prices {catalog.genai_prices_version()} "
        f"{price.id}.*"], level=3)


def _routing_table(r) -> Table:
    return Table(["route", "requests/day", "to", "local/day", "overflow to API/day", "basis"],
                 [[x["route"], f"{x['requests_per_day']:,.0f}", x["to"], f"{x['local_per_day']:,.0f}",
                   f"{x['overflow_per_day']:,.0f}", x["basis"]] for x in r.rows])


def _routing_sums(r, claim: str = "") -> str:
    """The running saving (the guide's claim is about API spend) and, beside it, all-in with the hardware's share."""
    amort = cost.amortization_monthly(r.build)
    if amort is None:
        all_in = " All-in: n/a (no hardware price: the running cost only)."
    else:
        be = cost.breakeven_months(r.build.hardware_usd, r.all_api_monthly, r.hybrid_monthly)
        total = r.hybrid_monthly + amort
        all_in = (f" All-in, with ${r.build.hardware_usd:,.0f} of hardware over {r.build.lifetime_years:g} years "
                  f"(${amort:,.2f}/month): **${total:,.2f}/month**, "
                  + (f"saving **{1 - total / r.all_api_monthly:.0%}**" if r.all_api_monthly > 0 else "")
                  + f"; the hardware pays back in {cost.fmt_months(be)}.")
    api_cut = 1 - r.hybrid_api_monthly / r.all_api_monthly if r.all_api_monthly > 0 else 0.0
    return (f"All-API: **${r.all_api_monthly:,.2f}/month**. Hybrid to run: API ${r.hybrid_api_monthly:,.2f} + local "
            f"running ${r.hybrid_local_monthly:,.2f} = **${r.hybrid_monthly:,.2f}/month**, saving **{r.savings:.0%}** "
            f"to run (API spend {api_cut:.0%} lower" + (f"; {claim}" if claim else "") + f"); "
            f"{r.overflow_share:.0%} of requests overflow to the API." + all_in)


def routing_section(df: pd.DataFrame | None = None) -> Section:
    c = choices()["routing"]
    path = scenarios.SCENARIOS / c["scenario"]
    r = scenarios.routing(path)
    sec = Section("Hybrid routing", [
        f"{r.title}, {r.requests_per_day:,.0f} requests/day (`analysis/scenarios/{path.name}`; {r.source}).",
        _routing_table(r), _routing_sums(r, c["guide_claim"]),
        Figure("routing.png", "Hybrid routing",
               f"monthly cost, all-API vs hybrid. Catalog entries: genai-prices {catalog.genai_prices_version()} "
               f"{r.all_api_id}; builds.toml {r.build.id} speed and power "
               "figures; the route shares in the scenario file.",
               [BarChart(["all API", "hybrid"],
                         [Bars([r.all_api_monthly, r.hybrid_api_monthly], RED, label="API"),
                          Bars([0, r.hybrid_local_monthly], BLUE, label="local running cost",
                               bottom=[0, r.hybrid_api_monthly])],
                         "$ per month", f"Hybrid routing saves {r.savings:.0%} to run (hardware not included)",
                         label_size=10)], size=(6, 4))])
    # the same mix on each committed box that has serving rows: its measured capacity within the latency target
    ep = df[df["kind"] == "endpoint"] if df is not None and not df.empty else None
    if ep is not None and not ep.empty:  # each suite's newest version only
        newest = ep.groupby(["machine", "suite"])["suite_version"].transform("max")
        ep = ep[ep["suite_version"] == newest]
    mb = catalog.machine_builds()
    for (m, w), g in (ep.groupby(["machine", "workload"], sort=False) if ep is not None else []):
        if m not in mb:
            continue
        try:
            _, why = rows.serving_unit(g)
        except LookupError:
            continue
        mr = scenarios.routing(path, build=catalog.build(mb[m]),
                               local_unit=lambda o, g=g: rows.serving_unit(g, output_tokens=o)[0])
        est = " Energy ESTIMATED from CPU time." if g["estimated"].any() else ""
        model = g["model"].iloc[0]
        sec.blocks += [f"**The same mix on {m}** ({w} serving {model}, which is not the routes' models: the rows "
                       "show this box's capacity and energy, not an answer of the same quality; measured serving "
                       "within TTFT p95 ≤ "
                       f"{rows.DEFAULT_TTFT_P95_S:g} s and ITL p95 ≤ {rows.DEFAULT_ITL_P95_S:g} s: {why}; "
                       f"rows: {rows.provenance(g)}).{est}", _routing_table(mr), _routing_sums(mr)]
    return sec


# ----------------------------------------------------------------------------------------------------- whole


def comparison_section(df: pd.DataFrame) -> Section | None:
    """When the rows hold more than one machine: each machine against the first, per shared workload and test
    (`shadowbench compare`'s table), with a plot per headline metric: one bar per box with its range."""
    if df.empty or df["machine"].nunique() < 2:
        return None
    from . import compare

    machines = list(dict.fromkeys(df["machine"]))
    sides = [(m, df[df["machine"] == m]) for m in machines]
    comps, refused = compare.compare(sides)
    sec = Section("Comparing the boxes", [
        f"Each box against {machines[0]}, per workload and test they share with the same model file and suite "
        "version: ratio = box ÷ base with a 95% bootstrap interval over the repetitions; *not significant* when the "
        "interval holds 1 or the ratio is within 3% of it (`shadowbench compare`).",
        Table(["workload", "test", "metric", "base", "box", "ratio [95% CI]", "verdict", "differs"],
              [[c.workload, c.test, f"{c.metric} ({c.unit})", f"{c.base_median:.4g}", f"{c.side}: {c.side_median:.4g}",
                f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]", c.verdict, c.differs] for c in comps])])
    if refused:
        sec.blocks.append("\n".join(f"- not comparable: {r.workload}/{r.test} of {r.base} and {r.side}: {r.field} "
                                     f"differs" for r in refused))
    # the differences that matter first: significant ones, throughput before energy; four panels at most
    ranked = sorted(comps, key=lambda c: (c.verdict == "not significant", c.metric == "energy_j"))
    picked = list(dict.fromkeys((c.workload, c.test, c.metric) for c in ranked))[:4]
    panels = []
    for w, t, m in picked:
        vals = [(mach, g[m].dropna()) for mach, g in df[(df["workload"] == w) & (df["test"] == t)].groupby(
            "machine", sort=False)]
        vals = [(mach, v) for mach, v in vals if len(v)]
        meds = [v.median() for _, v in vals]
        panels.append(BarChart([mach for mach, _ in vals],
                               [Bars(meds, BLUE, yerr=([md - v.min() for md, (_, v) in zip(meds, vals)],
                                                       [v.max() - md for md, (_, v) in zip(meds, vals)]))],
                               columns.registry()[m].title(), f"{w} {t}", label_size=7, rotate=20))
    if panels:
        sec.blocks.append(Figure("compare.png", "Comparing the boxes",
                                 f"median per box, bars min–max. Rows: {rows.provenance(df)}.", panels,
                                 size=(4 * len(panels), 4)))
    return sec


# ------------------------------------------------------------------------------------------------ quality

KLD_MEANING = (
    "How to read it: KL divergence (KLD, in nats) measures how far a quantization's next-token probabilities are "
    "from the reference model's over the same text; 0 is identical. llama.cpp's own measurement on Llama-3-8B puts "
    "Q8_0 at 0.0014 (the two models pick the same most likely token 97.7% of the time), Q4_K_M at 0.031 (91.9%) "
    "and Q2_K at 0.45 (71%): at a KLD of 0.03 the model answers like the full one almost everywhere and differs on "
    "about one token in twelve, mostly where the reference itself was unsure (the 99th percentile shows the worst "
    "places). Perplexity is comparable only between rows of the same model, text and context.")


def quality_section(df: pd.DataFrame) -> Section | None:
    p, o = shape()
    n = choices()["requests_per_day"]
    fams = quality.families(df, p, o, n)
    if not fams:
        return None
    kwh = catalog.tariff_usd_per_kwh()
    sec = Section("What a quantization costs in quality", [
        "Each quantization of a model beside the reference it is measured against (the `kld_base`), on the same "
        "box: its size, speed, energy and cost per output token, and what it does to the model's output over a "
        "fixed public-domain text (`ppl` and `kld` tests, llama-perplexity's method: perplexity, and the KL "
        "divergence of its next-token distribution from the base's). Cost per 1M output tokens: in "
        f"{p}+{o}-token requests at {n:,}/day, energy at ${kwh:g}/kWh at the wall, idle hours and, where the box "
        f"has a price, its hardware over its life ({cost.CALENDAR}).", KLD_MEANING])
    ref = quality.claims()["reference"]
    for f in fams:
        base = f.base_quant
        body = []
        for q in f.quants:
            est = " ESTIMATED" if q.estimated else ""
            usd = "" if q.usd_per_m_output is None else (
                f"${q.usd_per_m_output:.3g}" + ("" if q.usd_all_in else " running only") + est)
            size = "" if q.model_bytes is None else f"{q.model_bytes / 1e9:.3g} GB"
            if base is not None and base.model_bytes and q.model_bytes and not q.is_base:
                size += f" ({1 - q.model_bytes / base.model_bytes:.0%} smaller)"
            ppl = _g(q.ppl)
            if base is not None and base.ppl and q.ppl and not q.is_base:
                ppl += f" ({q.ppl / base.ppl - 1:+.1%})"
            note = " (base)" if q.is_base else " (the base was made from this file: its KLD is only the base's " \
                "rounding, not this type's loss)" if q.base_made_from else ""
            body.append([q.workload + note, q.quant, _g(q.bits_per_weight, ".3g"), size,
                         _g(q.pp_tokens_per_s), _g(q.tg_tokens_per_s),
                         _g(q.j_per_output_token) + (est if q.j_per_output_token is not None else ""), usd, ppl,
                         _g(q.kld_mean, ".4f"), _g(q.kld_p99, ".3f"),
                         "" if q.same_top_p is None else f"{q.same_top_p:.1%}"])
        sec.blocks.append(f"**{f.machine}**, against {f.base}; text {f.text}, chunks of {f.ctx} tokens.")
        sec.blocks.append(Table(["workload", "type", "bits/weight", "size", "pp512 tok/s", "tg128 tok/s",
                                 "J/output token", "$ per 1M output tokens", "perplexity (vs base)", "KLD mean",
                                 "KLD p99", "same top token"], body))
        sec.blocks.append("Rows: " + "; ".join(q.rows for q in f.quants) + ".")
        pts = f.plotted()
        if len(pts) > 1:
            floor = min([q.kld_mean for q in pts if q.kld_mean > 0 and not q.is_base] + [1e-3]) / 3  # the base: ~0
            front = f.pareto()
            sec.blocks.append(Figure(
                f"quality_pareto_{f.machine}_{f.base}.png".replace("/", "_"), f"Cost against quality on {f.machine}",
                f"Each quantization's cost per 1M output tokens against its mean KL divergence from {f.base} "
                f"(log scale; the base, ~0, drawn at {floor:.1g}). Dashed: the Pareto front (nothing is both cheaper "
                "and closer to the base). Orange: ESTIMATED energy. Rows: as in the table above.",
                [Scatter([(max(q.kld_mean, floor), q.usd_per_m_output, q.quant or q.workload,
                           ORANGE if q.estimated else BLUE) for q in pts],
                         f"mean KLD from {f.base} (nats, log)", "$ per 1M output tokens"
                         + ("" if all(q.usd_all_in for q in pts) else " (running only)"),
                         f"{f.machine}: cost vs quality", logx=True,
                         front=[(max(q.kld_mean, floor), q.usd_per_m_output) for q in front],
                         front_label="Pareto front")], size=(7, 4.5)))
    # the guide's table, what the rows say for the same types, and llama.cpp's published reference
    guide = quality.claims()["guide"]
    body = []
    for g in guide["rows"]:
        measured = []
        for f in fams:
            base = f.base_quant
            for q in f.quants:
                if q.quant not in g["types"] or base is None:
                    continue
                if q.is_base or q.base_made_from:
                    measured.append(f"{q.quant} on {f.machine}: the reference ({f.base})" if q.is_base else
                                    f"{q.quant} on {f.machine}: the file {f.base} was made from (not measured "
                                    "against an independent reference)")
                    continue
                bits = [f"{q.quant} on {f.machine}:"]
                if base.model_bytes and q.model_bytes:
                    bits.append(f"{1 - q.model_bytes / base.model_bytes:.0%} smaller")
                if base.tg_tokens_per_s and q.tg_tokens_per_s:
                    bits.append(f"tg {q.tg_tokens_per_s / base.tg_tokens_per_s:.2g}× the base")
                if base.ppl and q.ppl:
                    bits.append(f"perplexity {q.ppl / base.ppl - 1:+.1%}")
                if q.same_top_p is not None:
                    bits.append(f"same top token {q.same_top_p:.1%}")
                measured.append(" ".join(bits[:1]) + " " + ", ".join(bits[1:]) + f" (vs {f.base})")
        published = [f"{r['quant']}: perplexity {r['ppl_ratio'] - 1:+.1%}, KLD {r['kld_mean']:.4f}, same top token "
                     f"{r['same_top_p']:.1%}" for r in ref["rows"] if r["quant"] in g["types"]]
        body.append([g["quant"], g["size"], g["quality"], "; ".join(measured) or "not measured here",
                     "; ".join(published)])
    sec.blocks.append("The guide's quantization table beside the measurements. The guide does not say what its "
                      "\"accuracy loss\" measures; perplexity increase and top-token agreement are the field's "
                      f"nearest measures, not the same thing. Guide: {guide['source']}. Published: {ref['source']}.")
    sec.blocks.append(Table(["guide", "guide: size", "guide: quality", "measured here", f"llama.cpp, {ref['model']}"],
                            body))
    return sec


def decision_section(df: pd.DataFrame) -> Section:
    """`shadowbench advise` on the guides' case studies and routing pattern (their builds' catalog figures), and on
    each committed machine with rows."""
    from . import advise

    g = advise.guide_thresholds()
    sec = Section("Decisions for the guides' case studies", [
        "`shadowbench advise MIX` per task: local, API or hybrid and why, from the one cost model and frame (each "
        "task priced as `shadowbench cost` prices it alone; the box's hours shared out, private work first; idle "
        "hours and hardware counted once; the box recommended only where the mix pays it back within its life, "
        "unless private work needs it anyway). Each table names its basis: a build's catalog figures or a machine's "
        f"rows. Constraints: `private = true` makes local mandatory, `needs = \"frontier\"` the "
        f"API. The guides' thresholds, for comparison: {g['text']} ({g['source']}); the measured crossover of each "
        f"task is in its reason. {cost.CALENDAR}."])
    machines = sorted(set(df["machine"])) if not df.empty else []
    for mix in [*sorted(scenarios.SCENARIOS.glob("case-*.toml")), scenarios.SCENARIOS / "routing-homelab.toml"]:
        for machine in [None, *machines]:
            try:
                a = advise.advise(mix, machine=machine, rows_df=df)
            except ConfigError:  # a machine whose rows or build cannot price the mix is left out
                continue
            where = (f"on {machine}'s rows" + (" (ESTIMATED energy)" if df[df["machine"] == machine]["estimated"]
                                               .any() else "") if machine else f"on {a.build.id}'s catalog figures")
            body = [[ln.task.name, f"{ln.task.per_day:,.4g}/day", ln.verdict, ln.reason,
                     f"{ln.basis}; {ln.quality}" if ln.local_share > 0 and ln.quality else ""] for ln in a.lines]
            tot = (f"Per month: all API ${a.all_api.all_in_usd:,.2f}; all local where allowed "
                   f"${a.all_local.all_in_usd:,.2f}; recommended ${a.recommended.all_in_usd:,.2f}"
                   + ("" if a.recommended.local is None or a.build.hardware_usd is None else
                      f"; the box pays back in {cost.fmt_months(a.breakeven_months)}")
                   + (f". The guide's verdict: {a.mix.guide_verdict}." if a.mix.guide_verdict else ".")
                   + "".join(f" Note: {n}." for n in a.notes))
            sec.blocks += [f"**{a.mix.title}**, {where}.",
                           Table(["task", "volume", "verdict", "why", "local figures and quality"], body), tot]
    return sec


def power_sweep_section(df: pd.DataFrame) -> Section | None:
    """Rows of a power-limit sweep: per class the knee, the plateau, the 95% limit and the money, with a plot."""
    from . import powersweep

    cs = powersweep.curves(df)
    if not cs:
        return None
    kwh = catalog.tariff_usd_per_kwh()
    mb = catalog.machine_builds()
    n = choices()["requests_per_day"]
    sec = Section("Power-limit sweep: the efficiency knee of each card", [
        "Each workload run at every limit the sweep set. Knee: the limit with the lowest energy per unit of work; "
        f"the lowest limit that keeps ≥ {powersweep.KEEP:.0%} of stock throughput; plateau: the limit from which a "
        "higher one draws no more power. Money: energy at the wall (the machine's build: PSU and platform) at "
        f"${kwh:g}/kWh, per year at {n:,} units a day ({cost.CALENDAR})."])
    body, panels = [], []
    for c in cs:
        b = catalog.build(mb[c.machine]) if c.machine in mb else None
        stock, knee, keep = c.stock, c.knee, c.keeps_95
        est = " ESTIMATED" if c.estimated else ""
        money = ""
        if b is not None:
            s_usd, k_usd = c.usd_per_task(stock, b, kwh), c.usd_per_task(knee, b, kwh)
            money = (f"${s_usd * n * cost.DAYS_PER_YEAR:,.2f} → ${k_usd * n * cost.DAYS_PER_YEAR:,.2f} a year "
                     f"(${s_usd:.3g} → ${k_usd:.3g} per {c.unit})")
        body.append([f"{c.machine} / {c.workload} / {c.test}", c.cls, f"{stock.limit_w:g} W",
                     f"{knee.limit_w:g} W: {knee.energy_per_unit_j:.4g} J/{c.unit}{est} "
                     f"({knee.energy_per_unit_j / stock.energy_per_unit_j - 1:+.0%}), "
                     f"{knee.throughput / stock.throughput:.0%} of stock speed",
                     f"{keep.limit_w:g} W" if keep else "", f"{c.plateau_from_w:g} W" if c.plateau_from_w else
                     "not reached", money])
        xs = [p.limit_w for p in c.points]
        panels.append(LineChart(
            [Line("throughput, % of stock", xs, [100 * p.throughput / stock.throughput for p in c.points],
                  color=BLUE, marker="o"),
             Line(f"energy per {c.unit}, % of stock", xs,
                  [100 * p.energy_per_unit_j / stock.energy_per_unit_j for p in c.points], color=ORANGE, marker="s")],
            "power limit (W)", "% of stock", f"{c.workload} {c.test} ({c.cls})",
            marks=[(knee.limit_w, 100 * knee.energy_per_unit_j / stock.energy_per_unit_j, "knee")]))
    sec.blocks.append(Table(["workload", "class", "stock", "knee", f"keeps ≥ {powersweep.KEEP:.0%}",
                             "power plateau from", "per year: stock → knee"], body))
    sec.blocks.append(Figure("power_sweep.png", "Power-limit sweep", "Throughput and energy per unit of work against "
                             "the power limit, as % of stock; the knee marked. Rows: "
                             + "; ".join(c.rows for c in cs) + ".", panels[:4], size=(5 * min(4, len(panels)), 4.2)))
    return sec


def sections(df: pd.DataFrame) -> list[Section]:
    out = [measured_section(df), comparison_section(df), serving_section(df), cost_per_request_section(df),
           quality_section(df), power_sweep_section(df), unit_cost_section(df), batching_section(df),
           bigmodels_section(df), scenarios_section(),
           decision_section(df),
           volume_sweep_section(), routing_section(df)]
    return [s for s in out if s is not None]


def head(df: pd.DataFrame, results_dir: Path) -> list[str]:
    prices_dates = sorted({p.as_of for k in catalog.UNIT_KINDS for p in catalog.unit_prices(k).values()})
    out = [
        "# shadowbench report", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `shadowbench report` from "
        f"{df['file'].nunique() if not df.empty else 0} result files ({len(df)} rows) under `{results_dir.name}`.", "",
        f"Prices: LLM tokens from genai-prices {catalog.genai_prices_version()}"
        + ("" if catalog._price_data_file() else " (bundled data snapshot)") + "; "
        f"speech, voice and image prices from `analysis/data/prices.toml`, dated {', '.join(prices_dates)} "
        "(see `shadowbench prices`); the guides' rows as printed. Electricity "
        f"${catalog.tariff_usd_per_kwh():g}/kWh. Builds and their assumptions: `analysis/data/builds.toml`.", ""]
    if not df.empty and df["estimated"].any():
        out += ["> **Estimated energy.** Some rows carry `energy_source=estimated`: no energy counter was readable "
                "on that box, so energy is CPU time × watts per busy thread (see each row's `energy_note`). Such "
                "figures are labeled ESTIMATED wherever they appear and are not measurements.", ""]
    return out


def write_report(results_dir: Path, out: Path | None = None, plots: bool = True,
                 question: str | None = None, page: bool = True) -> tuple[Path, list[str]]:
    """REPORT.md with its PNG figures (``plots``) and report.html beside it (``page``: the same sections with
    interactive charts, and the cost calculator)."""
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "REPORT.md"
    df, problems = rows.load(results_dir)
    secs = sections(df)
    if question:  # the user's own question first: the `cost` answer, verdict and assumptions included
        secs.insert(0, Section("Your question", ["```\n" + "\n".join(x.rstrip() for x in question.splitlines())
                                                  + "\n```"]))
    if problems:
        secs.append(Section("Result files left out", ["\n".join(f"- {p}" for p in problems)]))
    out.write_text(markdown(secs, head(df, results_dir)))
    if page:
        from .page import write_page

        write_page(out.with_name("report.html"), secs, head(df, results_dir), df, choices())
    if plots:
        figdir = out.parent / "figures"
        figdir.mkdir(parents=True, exist_ok=True)
        for f in figures(secs):
            plot(f, figdir)
    return out, problems
