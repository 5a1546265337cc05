"""Result files: one CSV per run, one row per measured repetition, written and flushed as soon as it is measured.

A file is created exclusively (never overwritten). Every row is written whole and fsynced, so Ctrl-C or a crash
leaves a valid file holding every completed row.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable

from . import SCHEMA_VERSION
from .errors import ConfigError

# Columns every schema-1 file has, in order (documented in the README). Metrics a kind does not produce are empty.
IDENTITY = ["schema_version", "run_id", "machine", "suite", "suite_version", "workload", "test", "kind", "backend",
            "model", "model_sha256", "repetition", "utc_time"]
MEASURES = ["wall_s", "energy_j", "energy_source", "gpu_energy_j", "gpu_energy_source", "cpu_energy_j",
            "cpu_energy_source", "idle_power_w", "net_energy_j", "avg_power_w", "peak_power_w", "flags",
            "energy_note"]
GPU_STATE = ["gpu_energy_counter_j", "gpu_energy_integrated_j", "gpu_util_pct", "gpu_mem_peak_gb", "sm_clock_mhz",
             "gpu_temp_c_max", "clock_events", "gpu_power_limit_w", "gpu_foreign_pids"]
LLM = ["prompt_tokens", "output_tokens", "pp_tokens_per_s", "tg_tokens_per_s", "ttft_s"]
SPEECH = ["clips", "audio_s", "rtf", "audio_min_per_hour", "wer", "chars", "chars_per_s", "ttfa_s"]
SERVER = ["concurrency", "request_rate", "requests", "completed", "failed", "failures", "agg_tokens_per_s",
          "ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p50_s", "itl_p95_s", "itl_p99_s", "tpot_s", "e2e_p50_s",
          "e2e_p95_s", "token_count_source", "j_per_output_token"]
IMAGE = ["images", "steps", "width", "height", "s_per_image", "it_per_s", "peak_mem_gb", "peak_mem_kind", "weights"]
SETTINGS = ["threads", "n_gpu_layers", "n_ctx", "n_batch", "flash_attn", "device", "compute_type", "beam_size",
            "warmups", "backend_build"]
PROVENANCE = ["cpu_model", "cpu_count", "ram_gb", "gpu_name", "gpu_memory_gb", "gpu_driver",
              "os", "python", "packages", "git_sha", "git_dirty", "shadowbench_version", "run_started_utc"]
COLUMNS = IDENTITY + MEASURES + GPU_STATE + LLM + SERVER + SPEECH + IMAGE + SETTINGS + PROVENANCE
REQUIRED = IDENTITY + ["wall_s", "energy_j", "energy_source"]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else repr(v)
    return str(v)


def new_result_path(results_dir: Path, machine: str, stamp: str, suite: str) -> Path:
    folder = Path(results_dir) / machine
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stamp}-{suite}.csv"


class ResultWriter:
    """Appends rows to a new CSV file. Use as a context manager."""

    def __init__(self, path: Path, columns: list[str] = COLUMNS):
        self.columns = columns
        path = Path(path)
        n = 1
        while True:  # exclusive create: never overwrite, even when two runs start in the same second
            try:
                self._f = open(path, "x", newline="", encoding="utf-8")
                break
            except FileExistsError:
                n += 1
                path = path.with_name(f"{path.stem.rsplit('~', 1)[0]}~{n}{path.suffix}")
        self.path = path
        self.rows = 0
        self._write_line(columns)

    def _write_line(self, values: Iterable[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        self._f.write(buf.getvalue())  # one write per row: a partial row never reaches the file
        self._f.flush()
        os.fsync(self._f.fileno())

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        self._write_line(_fmt(row.get(c)) for c in self.columns)
        self.rows += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of one result file; a ConfigError names the file and line of any problem."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(path, "line 1", "a CSV header", "<an empty file>") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ConfigError(path, "line 1", f"the columns {', '.join(missing)}", "<a header without them>")
        rows = []
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise ConfigError(path, f"line {line}", f"{len(header)} fields", f"<{len(values)} fields>")
            row = dict(zip(header, values))
            if row["schema_version"] != str(SCHEMA_VERSION):
                raise ConfigError(path, f"line {line}: schema_version", f"schema version {SCHEMA_VERSION}",
                                  row["schema_version"])
            rows.append(row)
    return rows
