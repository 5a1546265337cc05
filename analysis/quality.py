"""Quantizations side by side: per box and kld base, each workload's size, speed, energy, all-in cost per output
token and its quality (perplexity, KL divergence from the base, top-token agreement), from the rows of the llm tests
``ppl`` and ``kld`` and of the same workloads' speed tests; and the guides' quantization claim with llama.cpp's own
published measurement (``analysis/data/quality.toml``) to set beside them.

Data only: ``analysis.report`` renders it."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from . import catalog, cost, rows


@dataclass
class Quant:
    workload: str
    quant: str
    bits_per_weight: float | None
    model_bytes: float | None
    pp_tokens_per_s: float | None
    tg_tokens_per_s: float | None
    j_per_output_token: float | None
    usd_per_m_output: float | None  # all-in where the box has a hardware price, else running
    usd_all_in: bool
    ppl: float | None
    kld_mean: float | None
    kld_p99: float | None
    same_top_p: float | None
    estimated: bool
    is_base: bool
    rows: str
    base_made_from: bool = False  # the base was made (dequantized) from this very file: its KLD is the base's rounding


@dataclass
class Family:
    """The workloads of one box measured against one kld base, over one text and context."""

    machine: str
    base: str
    text: str
    ctx: int
    quants: list[Quant] = field(default_factory=list)

    @property
    def base_quant(self) -> Quant | None:
        return next((q for q in self.quants if q.is_base), None)

    def plotted(self) -> list[Quant]:
        """The quants with a cost and a divergence from an independent base (not the file the base came from)."""
        return [q for q in self.quants if q.usd_per_m_output is not None and q.kld_mean is not None
                and not q.base_made_from]

    def pareto(self) -> list[Quant]:
        """The quants no other beats on both cost per output token and KL divergence (lower is better for both)."""
        pts = self.plotted()
        return [q for q in pts if not any(o is not q and o.usd_per_m_output <= q.usd_per_m_output
                                          and o.kld_mean <= q.kld_mean
                                          and (o.usd_per_m_output, o.kld_mean) != (q.usd_per_m_output, q.kld_mean)
                                          for o in pts)]


def _med(g: pd.DataFrame, col: str) -> float | None:
    if g.empty or col not in g or not g[col].notna().any():
        return None
    return float(g[col].median())


def _speed_rows(g: pd.DataFrame, test: str, col: str) -> pd.DataFrame:
    """The rows of ``test`` where there are some, else any rows with the column (a suite that ran pp256 only)."""
    exact = g[(g["test"] == test) & g[col].notna()]
    return exact if not exact.empty else g[g[col].notna()]


def families(df: pd.DataFrame, prompt_tokens: int, output_tokens: int, requests_per_day: float) -> list[Family]:
    """Every box's quantization families. The cost per 1M output tokens is that of the report's request shape at
    its daily volume (energy at the wall, idle hours and the hardware's share where the box has a price), ÷ output
    tokens: what the token costs in the work the report prices, not in an idealized stream."""
    if df.empty or "kld_mean" not in df:
        return []
    q = df[(df["kind"] == "llm") & df["kld_mean"].notna()]
    out = []
    kwh = catalog.tariff_usd_per_kwh()
    mb = catalog.machine_builds()
    for (machine, base_sha, text, ctx), fam in q.groupby(["machine", "kld_base_sha256", "quality_text",
                                                         "quality_ctx"], sort=False):
        f = Family(machine, str(fam["kld_base"].iloc[0]), str(text), int(ctx))
        b = catalog.build(mb[machine]) if machine in mb else None
        base_model = df.loc[(df["machine"] == machine) & (df["model_sha256"] == base_sha), "model"]
        base_label = str(base_model.iloc[0]) if not base_model.empty else ""
        for w in dict.fromkeys(fam["workload"]):
            g = rows.newest(df[(df["machine"] == machine) & (df["workload"] == w) & (df["kind"] == "llm")])
            kld = g[(g["test"] == "kld") & (g["kld_base_sha256"] == base_sha)]
            ppl = g[(g["test"] == "ppl") & (g["quality_text"] == text) & (g["quality_ctx"] == ctx)]
            usd = None
            try:
                unit = rows.llm_unit(g, prompt_tokens, output_tokens)
            except LookupError:
                unit = None
            if unit is not None and unit.device_energy_j is not None and b is not None:
                per = cost.local_monthly(unit, requests_per_day, b, kwh).per_task()
                v = per.all_in_usd if per.all_in_usd is not None else per.running_usd
                usd = None if v is None else v / output_tokens * 1e6
            tg = _speed_rows(g, "tg128", "tg_tokens_per_s")
            f.quants.append(Quant(
                workload=w, quant=str(g["quant"].dropna().iloc[0]) if g["quant"].notna().any() else "",
                bits_per_weight=_med(g, "bits_per_weight"), model_bytes=_med(g, "model_bytes"),
                pp_tokens_per_s=_med(_speed_rows(g, "pp512", "pp_tokens_per_s"), "pp_tokens_per_s"),
                tg_tokens_per_s=_med(tg, "tg_tokens_per_s"), j_per_output_token=_med(tg, "j_per_output_token"),
                usd_per_m_output=usd, usd_all_in=b is not None and b.hardware_usd is not None,
                ppl=_med(ppl if not ppl.empty else kld, "ppl"), kld_mean=_med(kld, "kld_mean"),
                kld_p99=_med(kld, "kld_p99"), same_top_p=_med(kld, "same_top_p"),
                estimated=bool(g["estimated"].any()), is_base=bool((g["model_sha256"] == base_sha).any()),
                rows=rows.provenance(g),
                base_made_from=any(base_label.startswith(f"{m} -> ") for m in set(g["model"].dropna()))))
        out.append(f)
    return out


@lru_cache(maxsize=1)
def claims() -> dict:
    """The guide's quantization table and llama.cpp's published reference (analysis/data/quality.toml)."""
    return tomllib.loads((catalog.DATA / "quality.toml").read_text())
