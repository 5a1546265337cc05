"""`shadowbench report`'s one-file page, ``results/report.html``: the report's sections (the same data as REPORT.md,
its figures as interactive plotly charts) and a cost calculator a user can move.

Everything is inside the file: plotly.js from the plotly package, the calculator (``analysis/page.js``), the styles
and the data as JSON. It opens from ``file://`` with no network. The calculator is ``shadowbench cost`` in the
browser: the data it carries are the figures the Python model starts from (each workload's measured rates, the
builds, the API prices with their tiers, the calendar), and page.js applies the formulas of ``analysis/cost.py``
to them; tests/test_page.py pins the two together in a real browser over many questions.
"""
from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from importlib import resources

import pandas as pd

from bench import kinds

from . import catalog, cost, frame, rows
from .render import Figure, Section, markdown, plotly_panels



def local_options(df: pd.DataFrame) -> list[dict]:
    """Every committed machine and workload the calculator can price, per price kind: the figures ``cost`` starts
    from (LLM: per measured request shape the busy seconds and energy, else the pp/tg rates and busy power; other
    kinds: seconds and energy per unit), the measured idle baseline and the labels."""
    from bench.models import synthetic_words

    out = []
    if df.empty:
        return out
    for (machine, workload, kind), g in df[df["kind"] != "endpoint"].groupby(["machine", "workload", "kind"],
                                                                             sort=False):
        if not all(synthetic_words(str(m))[0] for m in set(g["model"].dropna())):
            continue  # a test shape (synthetic:tiny) never prices anything, here as in `cost`
        g = rows.newest(g)
        price_kind = kinds.get(kind).PRICING.price_kind
        opt = {"id": f"{machine}|{workload}|{price_kind}", "machine": machine, "workload": workload,
               "price_kind": price_kind, "estimated": bool(g["estimated"].any()), "synthetic": rows.synthetic(g),
               **{k: v for k, v in rows._extra(g).items()}}
        try:
            if price_kind == "llm":
                r = rows.llm_rates(g)
                if r["tg_tokens_per_s"] is None and not r["exact"]:
                    continue
                opt["llm"] = r
                opt["rows"] = r["rows"]
            else:
                u = rows.priced_unit(g, kind)
                opt["unit"] = {"seconds": u.seconds, "energy_j": u.device_energy_j}
                opt["rows"] = u.rows
        except LookupError:
            continue
        out.append(opt)
    return out


def builds() -> dict:
    out = {}
    for bid, b in catalog.builds().items():
        anchors = {}
        if b.anchor_llm:
            anchors["llm"] = {"tg_tokens_per_s": b.anchor_llm["tg_tokens_per_s"], "model": b.anchor_llm["model"],
                              "source": b.anchor_llm["source"]}
        for kind, a in (("stt", b.anchor_stt), ("tts", b.anchor_tts), ("image", b.anchor_image)):
            if a:
                anchors[kind] = {**{k: v for k, v in a.items() if isinstance(v, (int, float, str))}}
        out[bid] = {"label": b.label, "hardware_usd": b.hardware_usd, "busy_wall_w": b.busy_wall_w,
                    "idle_wall_w": b.idle_wall_w, "device_idle_w": b.device_idle_w,
                    "platform_busy_w": b.platform_busy_w,
                    "psu_efficiency": b.psu_efficiency, "hours_per_day": b.hours_per_day,
                    "lifetime_years": b.lifetime_years, "source": b.source, "anchors": anchors}
    return out


def apis(llm_ids: list[str]) -> dict:
    out: dict = {"llm": {}}
    for mid in dict.fromkeys(llm_ids):
        p = catalog.llm_price(mid)
        if not (p.usd_per_mtok_in or p.usd_per_mtok_out):
            continue
        ret = catalog.retirement(p.id)
        out["llm"][mid] = {**p.token_prices(), "source": p.source, "as_of": p.as_of,
                           "note": ret.label() if ret else ""}
    for kind in catalog.UNIT_KINDS:
        out[kind] = {pid: {"usd_per_unit": u.usd_per_unit, "unit": u.unit, "source": u.source, "as_of": u.as_of,
                           "note": (catalog.retirement(pid).label() if catalog.retirement(pid) else "")}
                     for pid, u in catalog.unit_prices(kind).items()}
    return out


def mixes() -> list[dict]:
    """The shipped mixes' tasks (the guides' case studies, the routing pattern), for the calculator to load one."""
    from . import advise, scenarios

    out = []
    for path in [*sorted(scenarios.SCENARIOS.glob("case-*.toml")), scenarios.SCENARIOS / "routing-homelab.toml"]:
        m = advise.load_mix(path)
        out.append({"title": m.title, "file": path.name, "build": m.build, "tasks": [
            {"name": t.name, "kind": t.kind, "per_day": t.per_day, "prompt_tokens": t.prompt_tokens,
             "output_tokens": t.output_tokens, "api": t.api, "private": t.private, "frontier": t.frontier}
            for t in m.tasks]})
    return out


def page_data(df: pd.DataFrame, choices: dict) -> dict:
    pricing = {c.PRICING.price_kind: {"unit": c.PRICING.unit, "display": c.PRICING.display,
                                      "display_scale": c.PRICING.display_scale}
               for c in kinds.contracts() if c.PRICING is not None}
    shipped = mixes()
    llm_ids = (list(choices["llm_apis"]) + [choices["cumulative"]["api"]] + catalog.LISTED_LLMS
               + [t["api"] for m in shipped for t in m["tasks"] if t["kind"] == "llm"])
    return {
        "calendar": {"days_per_month": cost.DAYS_PER_MONTH, "days_per_year": cost.DAYS_PER_YEAR,
                     "j_per_kwh": cost.J_PER_KWH, "text": cost.CALENDAR},
        "tariff": {"usd_per_kwh": catalog.tariff_usd_per_kwh(), "source": "builds.toml [tariff]"},
        "pricing": pricing, "builds": builds(), "machines": catalog.machine_builds(), "local": local_options(df),
        "apis": apis(llm_ids),
        "mixes": shipped,
        "limits": {"volume": frame.MAX_VOLUME, "tokens": frame.MAX_TOKENS, "usd_per_kwh": frame.MAX_USD_PER_KWH,
                   "hardware_usd": frame.MAX_HARDWARE_USD, "years": frame.MAX_YEARS},
        "defaults": {"build": choices["cumulative"]["build"], "api": choices["cumulative"]["api"],
                     "requests_per_day": choices["cumulative"]["requests_per_day"],
                     "prompt_tokens": choices["request_shape"]["prompt_tokens"],
                     "output_tokens": choices["request_shape"]["output_tokens"]},
    }


_FIG = re.compile(r"^!\[(?P<alt>[^\]]*)\]\(figures/(?P<file>[^)]+)\)$", re.M)


def report_html(secs: list[Section], head: list[str]) -> tuple[str, dict]:
    """The report's markdown as HTML, each figure's image replaced by a placeholder its plotly charts fill."""
    from markdown_it import MarkdownIt

    figs = {b.file: b for s in secs for b in s.blocks if isinstance(b, Figure)}
    text = markdown(secs, head)
    specs: dict[str, list[dict]] = {}

    divs: dict[str, str] = {}

    def placeholder(m: re.Match) -> str:
        f = figs.get(m["file"])
        if f is None:
            return ""
        key = re.sub(r"[^A-Za-z0-9_-]", "_", m["file"].rsplit(".", 1)[0])
        specs[key] = plotly_panels(f)
        divs[key] = f'<div class="figure" id="fig-{key}" role="img" aria-label="{html.escape(f.alt)}"></div>'
        return f"SBFIGURE{key}SBFIGURE"
    text = _FIG.sub(placeholder, text)
    # raw HTML in the markdown is shown as text, never parsed: whatever a results file names (a workload called
    # "<script>...") stays text; the figures' placeholders are put in after rendering
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = re.sub(r"<p>SBFIGURE([A-Za-z0-9_-]+)SBFIGURE</p>", lambda m: divs[m[1]], md.render(text))
    return body, specs


def write_page(out, secs: list[Section], head: list[str], df: pd.DataFrame, choices: dict) -> None:
    from plotly.offline import get_plotlyjs

    body, specs = report_html(secs, head)
    data = page_data(df, choices)
    estimated = bool(not df.empty and df["estimated"].any())
    js = resources.files("analysis").joinpath("page.js").read_text(encoding="utf-8")
    css = resources.files("analysis").joinpath("page.css").read_text(encoding="utf-8")
    est_note = ("; energy measured on a box without a counter is <strong>ESTIMATED</strong> and labeled so"
                if estimated else "")
    as_json = lambda v: json.dumps(v, allow_nan=False).replace("</", "<\\/")  # noqa: E731 - safe inside <script>
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shadowbench report</title>
<style>{css}</style>
</head><body>
<header><h1>shadowbench: local inference or an API?</h1>
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by <code>shadowbench report</code> from the committed
result rows and the dated catalogs. Every figure names its rows or catalog entry{est_note}.</p></header>
<section id="calculator" aria-labelledby="calc-title"><h2 id="calc-title">Calculator: your volume, your electricity,
your box</h2>
<div class="calc"><form id="inputs" novalidate></form>
<div><div id="outputs" aria-live="polite"></div><div id="cumulative"></div></div></div>
<p class="small" id="calc-sources"></p>
</section>
<main id="report">{body}</main>
<script>{get_plotlyjs()}</script>
<script id="sb-data" type="application/json">{as_json(data)}</script>
<script id="sb-figures" type="application/json">{as_json(specs)}</script>
<script>{js}</script>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
