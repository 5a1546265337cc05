"""The guides' batching strategy against the rows: N emails classified one request each (``eachN``) and in one
numbered request (``collectN``) on the same box and model, per email: requests, input and output tokens, busy time,
energy, labels right; priced at API token prices and locally; beside the guide's "90%" and its own arithmetic."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

import pandas as pd

from bench.kinds.llm import Batch, parse_test

from . import catalog, cost, rows


def claims() -> dict:
    return tomllib.loads((catalog.DATA / "batching.toml").read_text())


@dataclass(frozen=True)
class Mode:
    """One way of sending N emails, per email (medians over the repetitions)."""

    test: str
    items: int
    requests: int
    in_tokens: float  # per email
    out_tokens: float
    seconds: float
    device_j: float | None
    accuracy: float | None
    answered: float | None  # share of the items whose label parsed back
    estimated: bool
    rows: str

    def api_usd(self, price: catalog.LLMPrice, emails: int) -> float:
        """What ``emails`` emails cost at an API sent this way: each request's tokens at the token prices."""
        per_request = price.request_usd(self.in_tokens * self.items / self.requests,
                                        self.out_tokens * self.items / self.requests)
        return per_request * self.requests / self.items * emails

    def unit(self) -> cost.LocalUnit:
        return cost.LocalUnit(seconds=self.seconds, device_energy_j=self.device_j, basis="measured",
                              estimated=self.estimated, rows=self.rows)


@dataclass(frozen=True)
class Pair:
    machine: str
    workload: str
    items: int
    each: Mode
    collect: Mode


def _mode(g: pd.DataFrame) -> Mode:
    b = parse_test(g["test"].iloc[0])
    med = lambda c: float(g[c].median()) if c in g and g[c].notna().any() else None  # noqa: E731
    return Mode(test=g["test"].iloc[0], items=b.items, requests=int(med("requests")),
                in_tokens=med("prompt_tokens") / b.items, out_tokens=med("output_tokens") / b.items,
                seconds=med("wall_s") / b.items,
                device_j=None if med("energy_j") is None else med("energy_j") / b.items,
                accuracy=med("label_accuracy"),
                answered=None if med("items_answered") is None else med("items_answered") / b.items,
                estimated=bool(g["estimated"].any()), rows=rows.provenance(g))


def pairs(df: pd.DataFrame) -> list[Pair]:
    """Every (machine, workload, N) with both an eachN and a collectN test, newest run of each."""
    if df.empty:
        return []
    sub = df[df["kind"] == "llm"].copy()
    sub["_batch"] = sub["test"].map(parse_test)
    sub = sub[sub["_batch"].map(lambda b: isinstance(b, Batch))]
    out = []
    for (m, w), g in sub.groupby(["machine", "workload"]):
        modes = {t: _mode(rows.newest(gt)) for t, gt in g.groupby("test")}
        for n in sorted({b.items for b in g["_batch"]}):
            if f"each{n}" in modes and f"collect{n}" in modes:
                out.append(Pair(m, w, n, modes[f"each{n}"], modes[f"collect{n}"]))
    return out


def saving(each: float | None, collect: float | None) -> float | None:
    """The share collect-style saves against one request each (negative: it costs more)."""
    return None if each is None or collect is None or each <= 0 else 1 - collect / each


def guide_check() -> dict:
    """The guide's example recomputed from its own figures: its dollars are 10× its own tokens × price, and its
    90% holds only because it counts a batched email at 10 tokens where the email alone is 100: the emails are all
    still in the batch's prompt; batching shares only the instructions."""
    g = claims()["guide"]
    naive = g["tokens_per_email_alone"] * g["emails"] * g["usd_per_mtok"] / 1e6
    batched = g["tokens_per_batch"] * (g["emails"] / g["batch_size"]) * g["usd_per_mtok"] / 1e6
    return {"naive_usd": naive, "batched_usd": batched, "saving": 1 - batched / naive,
            "batched_tokens_per_email": g["tokens_per_batch"] / g["batch_size"],
            "naive_usd_printed": g["naive_usd"], "batched_usd_printed": g["batched_usd"],
            "saving_printed": g["saving"], "source": g["source"]}
