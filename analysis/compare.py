"""`shadowbench compare`: which box (or which run of one box) is faster, and is the difference real?

For every (workload, test) the sides share with the same model file and suite version, per metric: each side's
median and spread, the ratio against the first side, a 95% confidence interval of that ratio (scipy's bootstrap
over the repetitions), a verdict (better / worse / not significant, by the metric's direction in the column
registry; a ratio within 3% of 1 is not significant: run-to-run drift), and the settings and provenance that
differ between the sides. Rows of another model file or suite
version are listed as not comparable, naming the field (asv refuses stale comparisons the same way).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import columns
from bench.errors import ConfigError

from . import rows

# what is worth naming when it differs between two sides: usually the point of the comparison
SETTINGS = ["gpu_name", "gpu_driver", "gpu_power_limit_w", "backend_build", "threads", "n_gpu_layers", "n_ctx",
            "n_batch", "flash_attn", "compute_type", "device", "cpu_model", "packages", "git_sha"]
CONFIDENCE = 0.95
# A ratio within 3% of 1 is not called a difference even when its interval excludes 1: the bootstrap sees the
# spread within each run, not the drift between two runs of one box, which is of that order here (asv's factor).
MIN_EFFECT = 0.03


@dataclass
class Comparison:
    workload: str
    test: str
    metric: str
    unit: str
    base: str  # the first side's label
    side: str
    base_median: float
    base_spread: str
    side_median: float
    side_spread: str
    ratio: float  # side / base
    ci_low: float
    ci_high: float
    verdict: str  # better | worse | not significant
    differs: str  # "threads: 1 → 2; ..."


@dataclass
class NotComparable:
    workload: str
    test: str
    base: str
    side: str
    field: str  # model_sha256 | suite_version
    values: str


_said: set[str] = set()


def load_side(arg: str, results_dir: Path) -> tuple[str, pd.DataFrame]:
    """One side: a machine folder, a run file, or machine@run (a run id or the start of one), under results_dir."""
    results_dir = Path(results_dir)
    path = Path(arg)
    run = None
    if "@" in arg and not path.exists():
        machine, run = arg.split("@", 1)
        path = results_dir / machine
    elif not path.exists():
        path = results_dir / arg
    if not path.exists():
        raise ConfigError("<command line>", "compare", "a machine folder, a run file, or machine@run", arg)
    df, problems = rows.load(path.parent)
    for p in problems:  # a file left out is said, not dropped silently
        if p not in _said:
            _said.add(p)
            print(f"left out: {p}", file=sys.stderr)
    if not df.empty:
        df = df[df["machine"] == path.name] if path.is_dir() else df[df["file"].str.endswith(path.name)]
    if run is not None and not df.empty:
        df = df[df["run_id"].astype(str).str.startswith(run)]
    if df.empty:
        raise ConfigError("<command line>", "compare", "a side with result rows", arg)
    return arg, df


def _spread(v: np.ndarray) -> str:
    return f"{v.min():.4g}–{v.max():.4g}" if len(v) > 1 else ""


def _ratio_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% bootstrap confidence interval of median(b) / median(a) over the repetitions."""
    from scipy.stats import bootstrap

    if len(a) < 2 or len(b) < 2:
        r = float(np.median(b) / np.median(a))
        return r, r
    res = bootstrap((a, b), lambda x, y: np.median(y) / np.median(x), n_resamples=2000, method="percentile",
                    confidence_level=CONFIDENCE, vectorized=False, random_state=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _differs(a: pd.DataFrame, b: pd.DataFrame) -> str:
    out = []
    for f in SETTINGS:
        if f in a and f in b:
            va = sorted({str(x) for x in a[f].dropna() if str(x) != ""})
            vb = sorted({str(x) for x in b[f].dropna() if str(x) != ""})
            if va != vb:
                out.append(f"{f}: {'/'.join(va) or '∅'} → {'/'.join(vb) or '∅'}")
    return "; ".join(out)


def _metrics(kind: str) -> list[columns.Column]:
    reg = columns.registry()
    head = columns.headline(kind)
    return head + [reg["energy_j"]]


def compare(sides: list[tuple[str, pd.DataFrame]]) -> tuple[list[Comparison], list[NotComparable]]:
    base_label, base = sides[0]
    out, refused = [], []
    for label, side in sides[1:]:
        for (w, t), a in base.groupby(["workload", "test"], sort=False):
            b = side[(side["workload"] == w) & (side["test"] == t)]
            if b.empty:
                continue
            clash = next((f for f in ("model_sha256", "suite_version")
                          if set(a[f].astype(str)) != set(b[f].astype(str))), None)
            if clash:
                refused.append(NotComparable(w, t, base_label, label, clash,
                                             f"{'/'.join(sorted(set(a[clash].astype(str))))[:16]} vs "
                                             f"{'/'.join(sorted(set(b[clash].astype(str))))[:16]}"))
                continue
            differs = _differs(a, b)
            for col in _metrics(str(a["kind"].iloc[0])):
                va, vb = a[col.name].dropna().to_numpy(float), b[col.name].dropna().to_numpy(float)
                if not len(va) or not len(vb) or np.median(va) == 0:
                    continue
                ratio = float(np.median(vb) / np.median(va))
                lo, hi = _ratio_ci(va, vb)
                if (lo > 1 or hi < 1) and abs(ratio - 1) > MIN_EFFECT:
                    up = ratio > 1
                    verdict = "better" if up == (col.better == "higher") else "worse"
                else:
                    verdict = "not significant"
                out.append(Comparison(w, t, col.name, col.unit, base_label, label, float(np.median(va)),
                                      _spread(va), float(np.median(vb)), _spread(vb), ratio, lo, hi, verdict,
                                      differs))
    return out, refused


def render(comps: list[Comparison], refused: list[NotComparable], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"comparisons": [asdict(c) for c in comps], "not_comparable": [asdict(r) for r in refused]},
                          indent=1)
    from .render import Table, md_table, spreadsheet_cell

    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, list(Comparison.__dataclass_fields__), lineterminator="\n")
        w.writeheader()
        w.writerows({k: spreadsheet_cell(v) for k, v in asdict(c).items()} for c in comps)
        return buf.getvalue()
    header = ["workload", "test", "metric", "base", "side", "ratio [95% CI]", "verdict", "differs"]
    body = [[c.workload, c.test, f"{c.metric} ({c.unit})", f"{c.base_median:.4g} ({c.base_spread})",
             f"{c.side_median:.4g} ({c.side_spread})", f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]",
             c.verdict, c.differs] for c in comps]
    lines = []
    if fmt == "md":
        lines += [md_table(Table(header, body))]
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{comps[0].base if comps else ''} vs the others (ratio = side / base)")
        for h in header:
            t.add_column(h)
        for r in body:
            t.add_row(*[str(x) for x in r])
        con = Console(width=200, record=True, highlight=False)
        with con.capture() as cap:
            con.print(t)
        lines.append(cap.get())
    for r in refused:
        lines.append(f"not comparable: {r.workload}/{r.test} of {r.base} and {r.side}: {r.field} differs "
                     f"({r.values})")
    return "\n".join(lines)
