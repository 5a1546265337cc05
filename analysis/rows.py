"""Committed result rows as a pandas DataFrame. A broken file (missing column, unknown schema version, corrupt
line) is reported with its file and line and left out; the other files are still used."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import ConfigError
from bench.results import read_rows

NUMERIC = ["wall_s", "energy_j", "gpu_energy_j", "cpu_energy_j", "idle_power_w", "net_energy_j", "avg_power_w",
           "peak_power_w", "prompt_tokens", "output_tokens", "pp_tokens_per_s", "tg_tokens_per_s", "ttft_s",
           "repetition", "audio_s", "rtf", "chars", "chars_per_s", "images", "s_per_image", "it_per_s", "wer"]


def result_files(results_dir: Path) -> list[Path]:
    return sorted(p for p in Path(results_dir).rglob("*.csv") if not p.name.endswith(".power.csv"))


def load(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    frames, problems = [], []
    for path in result_files(results_dir):
        try:
            rows = read_rows(path)
        except ConfigError as e:
            problems.append(str(e))
            continue
        if not rows:
            continue
        df = pd.DataFrame(rows)
        df["file"] = str(path)
        frames.append(df)
    if not frames:
        return pd.DataFrame(), problems
    df = pd.concat(frames, ignore_index=True)
    for c in NUMERIC:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c].replace("", None), errors="coerce")
    df["estimated"] = df["energy_source"].fillna("").str.split("+").apply(lambda s: "estimated" in s)
    return df, problems


def provenance(sub: pd.DataFrame) -> str:
    """'results/m/x.csv (run R: workload/test, n rows)' for a figure caption."""
    parts = []
    for (f, run, w, t), g in sub.groupby(["file", "run_id", "workload", "test"]):
        parts.append(f"{f} run {run}: {w}/{t}, {len(g)} rows")
    return "; ".join(parts)
