"""Committed result rows: reading them (typed from the column registry), selecting comparable groups, turning them
into a unit of local work, and naming them in captions. A broken file (missing column, unknown schema version,
corrupt line) is reported with its file and line and left out; the other files are still used.

Rows are comparable only within one machine, suite, suite version, workload, test, kind, model file and power limit
(``COMPARABLE``): a workload redefined under the same name (a new suite version) or a model file swapped under the
same reference never mixes with the old rows.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pandas as pd

from bench import columns, kinds
from bench.errors import ConfigError
from bench.kinds.llm import one_request_test
from bench.results import is_result_file, iter_rows

from .cost import LocalUnit

# transformer_quant: a Q4 Flux and a bf16 Flux are never one group
COMPARABLE = ["machine", "suite", "suite_version", "workload", "test", "kind", "model_sha256", "power_limit_w",
              "transformer_quant"]


def result_files(results_dir: Path) -> list[Path]:
    """The result files under a results folder (not power series, not folders named x.csv)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError(results_dir, "--results-dir", "an existing folder of result files",
                          "<a file>" if results_dir.exists() else "<no such folder>")
    return sorted(p for p in results_dir.rglob("*.csv") if is_result_file(p))


def load(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every readable row under ``results_dir``, numeric columns as numbers (empty = NaN, never 0), with ``file``
    (the path from the results folder's own name: results/<machine>/<file>.csv) and ``estimated``."""
    results_dir = Path(results_dir)
    frames, problems = [], []
    files = result_files(results_dir)
    big = sum(p.stat().st_size for p in files) > PROGRESS_ABOVE_BYTES
    pool: dict[str, str] = {}
    for n, path in enumerate(files, 1):
        if big:
            print(f"reading {path.name} ({n}/{len(files)}, {path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
        mine = []
        try:  # bad lines are named and left out, whole rows kept; the file is read in chunks of typed columns
            rows_ = iter_rows(path, problems, line_numbers=True)
            while chunk := list(itertools.islice(rows_, CHUNK_ROWS)):
                mine.append(_typed(chunk, pool))
        except ConfigError as e:  # not a result file (or not UTF-8 past its first rows): the whole file is left out
            problems.append(str(e))
            continue
        if mine:
            df = pd.concat(mine, ignore_index=True, copy=False) if len(mine) > 1 else mine[0]
            del mine
            df["file"] = str(Path(results_dir.name) / path.relative_to(results_dir))
            frames.append(df)
    if not frames:
        return pd.DataFrame(), problems
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    df["estimated"] = df["energy_source"].fillna("").str.split("+").apply(lambda s: "estimated" in s)
    _bandwidth(df)
    bad = _impossible(df)
    for i, why in bad.items():
        problems.append(f"{df.at[i, 'file']}: line {df.at[i, '_line']}: {why}; the row is left out")
    return df.drop(index=list(bad)).reset_index(drop=True), problems


CHUNK_ROWS = 5_000  # rows parsed as text at a time before their columns become numbers
PROGRESS_ABOVE_BYTES = 50e6  # results larger than this say which file is being read


def _typed(rows_: list[dict], pool: dict[str, str]) -> pd.DataFrame:
    """A chunk of rows as one frame built at once: numeric columns as numbers (empty = NaN, never 0), each text value
    held once (a results file repeats its machine, model and packages on every row)."""
    names = list(dict.fromkeys(k for r in rows_ for k in r))
    cols = {}
    for c in names:
        values = [r.get(c, "") for r in rows_]
        if c in _NUMERIC:
            cols[c] = pd.to_numeric(pd.Series(values, dtype=object).replace("", None), errors="coerce")
        else:
            cols[c] = pd.Series([pool.setdefault(v, v) for v in values], dtype=object)
    return pd.DataFrame(cols)


_NUMERIC = set(columns.numeric())


BANDWIDTH_LOW = 0.45  # below this share of the card's bandwidth, decode is held back by something else


def _bandwidth(df: pd.DataFrame) -> None:
    """Validity of GPU decode rows: the memory bandwidth a single sequence's decode achieved (the whole model file
    read once per token: tokens/s × file bytes, counting the token-embedding table that decode reads only a row of,
    so a slight overestimate) as a share of the card's spec bandwidth (analysis/data/gpus.toml). Above 1.0 is a
    measurement error; below 0.45 points at offload, PCIe or driver trouble."""
    from .catalog import gpu_bandwidth_gb_s

    fraction, flag = [None] * len(df), [""] * len(df)
    maybe = (df["kind"] == "llm") & df.get("gpu_name", pd.Series(index=df.index, dtype=object)).notna()
    for pos in maybe.to_numpy().nonzero()[0]:  # only GPU decode rows can be checked: a CPU-only file is skipped
        r = df.iloc[pos]
        f, why = None, ""
        single = pd.isna(r.get("parallel")) or r.get("parallel") == 1
        bw = gpu_bandwidth_gb_s(str(r.get("gpu_name") or "").split(";")[0]) if r.get("gpu_name") else None
        if (r["kind"] == "llm" and single and bw and pd.notna(r.get("model_bytes"))
                and pd.notna(r.get("tg_tokens_per_s")) and r.get("n_gpu_layers") != 0):
            f = float(r["model_bytes"]) * float(r["tg_tokens_per_s"]) / (bw[0] * 1e9)
            why = ("above the card's memory bandwidth: a measurement error" if f > 1.0 else
                   "offload, PCIe or driver trouble?" if f < BANDWIDTH_LOW else "")
        fraction[pos], flag[pos] = f, why
    df["bandwidth_fraction"] = fraction
    df["bandwidth_flag"] = flag


def _impossible(df: pd.DataFrame) -> dict[int, str]:
    """Rows whose values cannot be a measurement: no positive window, negative energy, no work done. Named by file
    and line and left out, as corrupt lines are."""
    import numpy as np

    from bench.columns import registry

    out: dict[int, str] = {}
    for i in df.index[~(df["wall_s"] > 0)]:
        out.setdefault(i, f"wall_s: expected a window > 0 s, got {float(df.at[i, 'wall_s'])!r}")
    for i in df.index[df["energy_j"] < 0]:
        out.setdefault(i, f"energy_j: expected >= 0 J or empty, got {float(df.at[i, 'energy_j'])!r}")
    for c, col in registry().items():  # a measured amount: empty, or a finite number >= 0
        if col.physical and c in df.columns:
            v = pd.to_numeric(df[c], errors="coerce")
            for i in df.index[v.notna() & ~(np.isfinite(v) & (v >= 0))]:
                out.setdefault(i, f"{c}: expected a finite number >= 0 or empty, got {float(v[i])!r}")
    left = ~df.index.isin(list(out))
    for kind in df["kind"].dropna().unique():
        if kind not in kinds.names() or kind == "endpoint":
            continue
        pricing = kinds.get(kind).PRICING

        def units(r):
            try:
                return float(pricing.units(r))
            except (KeyError, TypeError, ValueError):
                return float("nan")
        idx = df.index[left & (df["kind"] == kind).to_numpy()]
        for start in range(0, len(idx), CHUNK_ROWS):  # a few thousand rows at a time: never a copy of them all
            sub = df.loc[idx[start:start + CHUNK_ROWS]]
            u = sub.apply(units, axis=1)
            for i in sub.index[~(u > 0)]:
                out[i] = f"expected some work done ({pricing.unit}s > 0), got {float(u[i])!r}"
    return out


def groups(df: pd.DataFrame, by: list[str] | None = None):
    """(key dict, rows) per comparable group, in file order."""
    by = by or COMPARABLE
    missing = [c for c in by if c not in df.columns]
    if missing:  # older files lack newer columns (assign copies the frame: only when it must)
        df = df.assign(**{c: float("nan") for c in missing})
    for key, g in df.groupby(by, sort=False, dropna=False):
        yield dict(zip(by, key)), g


def newest(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of the newest suite version among ``g`` (one workload's rows: an older definition never mixes in)."""
    return g[g["suite_version"] == g["suite_version"].max()]


def provenance(sub: pd.DataFrame) -> str:
    """'results/m/x.csv run R: workload/test, n rows' for a figure caption."""
    parts = []
    for (f, run, w, t), g in sub.groupby(["file", "run_id", "workload", "test"]):
        parts.append(f"{f} run {run}: {w}/{t}, {len(g)} rows")
    return "; ".join(parts)


def synthetic(g: pd.DataFrame) -> bool:
    return "weights" in g and bool((g["weights"] == "synthetic").any())


def select(df: pd.DataFrame, machines: list[str], kind: str, workload: str | None = None) -> tuple[pd.DataFrame, str]:
    """(rows, note): the rows of one workload of ``kind`` on ``machines``: the named workload, else the one with the
    most rows among those with real weights (synthetic-weights workloads only when there is nothing else); of that,
    the newest suite version only. The note says when the weights are synthetic. LookupError when workloads tie:
    the user names one."""
    sub = df[df["machine"].isin(machines) & (df["kind"] == kind)] if not df.empty else df
    if workload:
        sub = sub[sub["workload"] == workload]
    if sub.empty:
        return sub, ""
    from bench.models import synthetic_words

    shapes = {m: synthetic_words(str(m)) for m in set(sub["model"].dropna())}
    never = {m for m, (ok, _) in shapes.items() if not ok}
    if workload and sub["model"].isin(never).all():
        raise LookupError(shapes[next(iter(never))][1])
    sub = sub[~sub["model"].isin(never)]  # tiny test shapes never price anything
    if sub.empty:
        return sub, ""
    if not workload:
        real = sub[~sub["workload"].isin({w for w, g in sub.groupby("workload") if synthetic(g)})]
        sub = real if not real.empty else sub
    counts = sub["workload"].value_counts()
    if not workload and len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        tied = sorted(counts[counts == counts.iloc[0]].index)
        raise LookupError(f"workloads {', '.join(tied)} have as many rows each: name one with --workload")
    name = workload or counts.index[0]
    g = sub[sub["workload"] == name]
    words = [shapes[m][1] for m in sorted(set(g["model"].dropna())) if shapes.get(m, (True, ""))[1]]
    note = (words[0] if words else f"workload {name} has synthetic weights: its speed is the model's shape, not a "
            "real model's") if synthetic(g) else ""
    return newest(g), note


def _source(df: pd.DataFrame) -> tuple[str, bool]:
    return ";".join(sorted(set(df["energy_source"]))), bool(df["estimated"].any())


def _extra(df: pd.DataFrame) -> dict:
    """What every unit from rows carries besides time and energy: the measured idle baseline and the model."""
    idle = df["idle_power_w"].dropna() if "idle_power_w" in df else pd.Series(dtype=float)
    return {"idle_device_w": float(idle.median()) if not idle.empty else None,
            "model": ", ".join(sorted(set(df["model"].dropna()))), "parts": _parts(df), "cpu_share": _cpu_share(df)}


def _cpu_share(df: pd.DataFrame) -> float:
    """The CPU meter's median share of the rows' device energy (0 where the rows carry no CPU part)."""
    if "cpu_energy_j" not in df:
        return 0.0
    g = df[df["cpu_energy_j"].notna() & df["energy_j"].notna() & (df["energy_j"] > 0)]
    return float((g["cpu_energy_j"] / g["energy_j"]).clip(0, 1).median()) if not g.empty else 0.0


def _parts(df: pd.DataFrame) -> tuple:
    """Each part's median share of the device energy, where the rows' energy adds a measured part (the GPU's
    counter) and an estimated one (the CPU's estimate): only the estimated share is labeled so."""
    cols = ("gpu_energy_j", "cpu_energy_j", "gpu_energy_source", "cpu_energy_source", "energy_j")
    if any(c not in df for c in cols):
        return ()
    g = df[df["gpu_energy_j"].notna() & df["cpu_energy_j"].notna() & (df["energy_j"] > 0)]
    if g.empty:
        return ()
    parts = tuple((d, float((g[f"{d}_energy_j"] / g["energy_j"]).median()),
                   bool(g[f"{d}_energy_source"].astype(str).str.contains("estimated").any())) for d in ("gpu", "cpu"))
    return parts if len({est for _, _, est in parts}) == 2 else ()


def llm_rates(df: pd.DataFrame) -> dict:
    """What one machine and workload's LLM rows say about a request of any shape: per measured (prompt, output)
    shape the median busy seconds and device energy, and the median pp and tg rates and busy power (energy ÷ wall
    time) for other shapes. The report's page carries these figures and applies ``llm_unit``'s rule to them."""
    # a quality pass, a batch or several sequences decoded together is not one request
    df = df[(df["kind"] == "llm") & df["test"].map(one_request_test)]
    if df.empty:
        raise LookupError("no LLM rows")
    exact = []
    for (p, o), g in df[df["prompt_tokens"].notna() & df["output_tokens"].notna()].groupby(
            ["prompt_tokens", "output_tokens"]):
        exact.append({"prompt_tokens": int(p), "output_tokens": int(o), "seconds": float(g["wall_s"].median()),
                      "energy_j": float(g["energy_j"].median()) if g["energy_j"].notna().any() else None,
                      "rows": provenance(g)})
    pp, tg = df["pp_tokens_per_s"].dropna(), df["tg_tokens_per_s"].dropna()
    with_energy = df[df["energy_j"].notna()]
    return {"exact": exact, "pp_tokens_per_s": float(pp.median()) if not pp.empty else None,
            "tg_tokens_per_s": float(tg.median()) if not tg.empty else None,
            "power_w": float((with_energy["energy_j"] / with_energy["wall_s"]).median())
            if not with_energy.empty else None, "rows": provenance(df)}


def llm_unit(df: pd.DataFrame, prompt_tokens: int, output_tokens: int) -> LocalUnit:
    """One request of (prompt, output) tokens from the LLM rows of one machine and workload: the medians of an
    exactly matching test where there is one, else prompt ÷ pp rate + output ÷ tg rate at the measured power."""
    r = llm_rates(df)
    df = df[(df["kind"] == "llm") & df["test"].map(one_request_test)]
    src, est = _source(df)
    for e in r["exact"]:
        if (e["prompt_tokens"], e["output_tokens"]) == (prompt_tokens, output_tokens):
            g = df[(df["prompt_tokens"] == prompt_tokens) & (df["output_tokens"] == output_tokens)]
            return LocalUnit(seconds=e["seconds"], device_energy_j=e["energy_j"], basis="measured",
                             energy_source=src, estimated=est, rows=e["rows"], **_extra(g))
    if r["tg_tokens_per_s"] is None or (prompt_tokens and r["pp_tokens_per_s"] is None):
        raise LookupError("rows lack pp or tg throughput")
    seconds = (prompt_tokens / r["pp_tokens_per_s"] if prompt_tokens else 0.0) + output_tokens / r["tg_tokens_per_s"]
    energy = None if r["power_w"] is None else r["power_w"] * seconds
    return LocalUnit(seconds=seconds, device_energy_j=energy, basis="measured", energy_source=src, estimated=est,
                     rows=r["rows"], **_extra(df))


def priced_unit(df: pd.DataFrame, kind: str) -> LocalUnit:
    """Busy seconds and device energy per price unit (audio minute, character, image: the kind contract's
    ``PRICING``) from the rows of one machine and workload of that kind: medians over repetitions."""
    g = df[df["kind"] == kind]
    if g.empty:
        raise LookupError(f"no {kind} rows")
    units = g.apply(kinds.get(kind).PRICING.units, axis=1)
    energy = (g["energy_j"] / units).median() if g["energy_j"].notna().any() else None
    src, est = _source(g)
    return LocalUnit(seconds=float((g["wall_s"] / units).median()),
                     device_energy_j=None if energy is None else float(energy), basis="measured",
                     energy_source=src, estimated=est, rows=provenance(g), **_extra(g))


# latency targets a served request must meet unless the user gives others (`cost --ttft-p95 / --itl-p95`)
DEFAULT_TTFT_P95_S = 2.0
DEFAULT_ITL_P95_S = 0.2


def serving_unit(df: pd.DataFrame, ttft_p95_s: float = DEFAULT_TTFT_P95_S, itl_p95_s: float = DEFAULT_ITL_P95_S,
                 output_tokens: int | None = None, requests_per_day: float | None = None,
                 hours_per_day: float | None = None) -> tuple[LocalUnit, str]:
    """One served request from the endpoint rows of one machine and workload (newest suite version). Among the
    steps whose TTFT and inter-token latency (95th percentiles, medians over repetitions) meet the targets with no
    failed request: with a volume (``requests_per_day`` in ``hours_per_day``), the fewest requests in flight that
    carry it (the concurrency the volume implies, so a quiet box is not priced at a full batch's energy per token);
    without one, or when none carries it, the highest aggregate throughput, the lowest energy per token among
    near-equals (ML.ENERGY's rule). Busy seconds and energy per request come from that step's repetitions (wall ÷
    completed requests), scaled by output tokens when the question's request is longer or shorter. LookupError when
    no step meets the targets."""
    ep = df[df["kind"] == "endpoint"]
    if ep.empty:
        raise LookupError("no endpoint rows")
    ep = newest(ep)
    steps = []
    for test, g in ep.groupby("test", sort=False):
        med = {c: g[c].median() for c in ("agg_tokens_per_s", "ttft_p95_s", "itl_p95_s", "j_per_output_token")}
        ok = (med["ttft_p95_s"] <= ttft_p95_s and med["itl_p95_s"] <= itl_p95_s and not (g["failed"] > 0).any()
              and g["completed"].min() > 0)
        steps.append((test, g, med, ok))
    good = [s for s in steps if s[3]]
    target = f"TTFT p95 ≤ {ttft_p95_s:g} s, ITL p95 ≤ {itl_p95_s:g} s"
    if not good:
        raise LookupError(f"no measured step meets {target}: " + "; ".join(
            f"{t}: TTFT p95 {m['ttft_p95_s']:.3g} s, ITL p95 {m['itl_p95_s']:.3g} s" for t, _, m, _ in steps))
    def per_request_s(g) -> float:
        return float((g["wall_s"] / g["completed"]).median())

    best = max(m["agg_tokens_per_s"] for _, _, m, _ in good)
    near = [s for s in good if s[2]["agg_tokens_per_s"] >= 0.98 * best]
    test, g, med, _ = min(near, key=lambda s: (s[2]["j_per_output_token"]
                                               if pd.notna(s[2]["j_per_output_token"]) else float("inf")))
    rule = "the highest aggregate throughput"
    measured_out = float((g["output_tokens"] / g["completed"]).median())
    scale = (output_tokens / measured_out) if output_tokens else 1.0
    if requests_per_day and hours_per_day:
        by_conc = sorted((s for s in good if pd.notna(s[1]["concurrency"]).any()),
                         key=lambda s: float(s[1]["concurrency"].iloc[0]))
        carry = [s for s in by_conc if hours_per_day * 3600 / (per_request_s(s[1]) * scale) >= requests_per_day]
        if carry:
            test, g, med, _ = carry[0]
            rule = f"the fewest requests in flight that carry {requests_per_day:,.0f} requests/day"
    seconds = per_request_s(g) * scale
    energy = float((g["energy_j"] / g["completed"]).median()) * scale if g["energy_j"].notna().any() else None
    missed = [t for t, _, _, ok in steps if not ok]
    why = (f"served at step {test}: {rule} ({med['agg_tokens_per_s']:.4g} output tokens/s) "
           f"meeting {target} (TTFT p95 {med['ttft_p95_s']:.3g} s, ITL p95 {med['itl_p95_s']:.3g} s)"
           + (f"; steps {', '.join(missed)} miss it" if missed else "")
           + (f"; scaled from the measured {measured_out:.0f}-token answers to {output_tokens}" if scale != 1 else ""))
    src, est = _source(g)
    return LocalUnit(seconds=seconds, device_energy_j=energy, basis="measured serving", energy_source=src,
                     estimated=est, rows=provenance(g), **_extra(g)), why
