"""The result-column registry: every column of a result file declared once, with its unit, type, the kinds it
applies to, whether the run summary shows it and checks its spread, and what it means (pyperf's metadata registry
is the model).

The columns every row has are declared here; a kind's own columns are declared in its contract module
(``bench/kinds/<kind>.py``) and collected by ``registry()``. The result writer, the runner's summary and spread
checks, analysis's typed reading and the column table of docs/result-columns.md all come from it, so adding a
column is a change in one module. Derived columns carry the formula that fills them from the rest of the row.

The schema version and its written history live here too; ``MIGRATIONS`` turns an older row into the current one
when a file is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

# ------------------------------------------------------------------------------------------------- the schema

SCHEMA_VERSION = 2
SCHEMA_HISTORY = {
    1: "first release: identity, energy, GPU state, LLM/endpoint/speech/image metrics, settings, provenance",
    2: "ram_gb renamed ram_gib (its value was always GiB, 2^30 bytes; every other _gb column is 10^9 bytes); "
       "columns added since are new names only (older files read them as empty)",
}


def _v1_to_v2(row: dict[str, str]) -> dict[str, str]:
    row = dict(row)
    row["ram_gib"] = row.pop("ram_gb", "")
    return row


# version -> function turning a row of that version into a row of the next one
MIGRATIONS: dict[int, Callable[[dict[str, str]], dict[str, str]]] = {1: _v1_to_v2}


def migrate(row: dict[str, str], version: int) -> dict[str, str]:
    """A row of schema ``version`` as a row of the current schema. KeyError for a version with no migration."""
    while version < SCHEMA_VERSION:
        row = MIGRATIONS[version](row)
        version += 1
    row["schema_version"] = str(SCHEMA_VERSION)
    return row


# ------------------------------------------------------------------------------------------------- columns

GROUPS = ("identity", "energy", "gpu", "metric", "settings", "provenance")  # the order columns appear in a file


@dataclass(frozen=True)
class Column:
    name: str
    group: str  # one of GROUPS
    type: type  # str, int, float, bool: how analysis reads it
    unit: str  # "" for text and counts; SI or a rate ("tokens/s"); "GB" is 10^9 bytes, "GiB" 2^30
    meaning: str
    kinds: tuple[str, ...] = ()  # the kinds that produce it; () = every row
    summary: bool = False  # shown in the run's summary table (median, min, max, CV)
    spread: bool = False  # a coefficient of variation above the workload's cv_warn is warned about
    required: bool = False  # a file without it cannot be read
    label: str = ""  # short human label for tables and plots
    headline: bool = False  # the kind's throughput figure in the report's measured table
    derive: Callable[[dict[str, Any]], Any] | None = None  # fills the column from the row's other values
    better: str = ""  # "higher" or "lower": which way a comparison of two boxes calls an improvement
    signed: bool = False  # a measured quantity that may be below 0 (a difference; a temperature)

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    @property
    def physical(self) -> bool:
        """A measured amount with a unit (energy, power, time, a rate, a size, a count): a row holding it negative,
        infinite or NaN-as-text is not a measurement and is left out by analysis."""
        return self.numeric and bool(self.unit) and not self.signed

    def title(self) -> str:
        return self.label or self.name


def ratio(num: str, den: str):
    """A derived column: row[num] / row[den], empty when either is missing or the denominator is 0."""
    def f(row):
        a, b = row.get(num), row.get(den)
        return a / b if a is not None and b else None
    return f


def _net_energy(row):
    e, p, t = row.get("energy_j"), row.get("idle_power_w"), row.get("wall_s")
    return e - p * t if e is not None and p is not None and t is not None else None


C = Column
COMMON = [
    C("schema_version", "identity", int, "", "version of this file's columns (history in bench/columns.py)",
      required=True),
    C("run_id", "identity", str, "", "one run of a suite", required=True),
    C("machine", "identity", str, "", "the box: results/<machine>/", required=True),
    C("suite", "identity", str, "", "suite name", required=True),
    C("suite_version", "identity", int, "", "the suite's [suite] version; rows of different versions are not "
      "compared", required=True),
    C("workload", "identity", str, "", "workload name in the suite", required=True),
    C("test", "identity", str, "", "the test: pp512, tg128, pp500+tg200, c4, r0.5, transcribe, ...",
      required=True),
    C("kind", "identity", str, "", "llm, endpoint, asr, tts or image", required=True),
    C("backend", "identity", str, "", "llama-cpp-python, openai-endpoint, faster-whisper, piper, diffusers",
      required=True),
    C("model", "identity", str, "", "model reference: bundled:NAME, a path, hf:repo@rev/file", required=True),
    C("model_sha256", "identity", str, "", "SHA-256 of the model file (empty for folders and remote servers)",
      required=True),
    C("weights", "identity", str, "", "pretrained, or synthetic: seeded random weights of a published model's shapes "
      "(its speed, energy and memory, never its answers)"),
    C("model_bytes", "identity", int, "B", "size of the model file (bytes of weights a decode step reads, at most)"),
    C("repetition", "identity", int, "", "1..N", required=True),
    C("utc_time", "identity", str, "", "when the repetition started (UTC)", required=True),
    C("wall_s", "energy", float, "s", "the measurement window", summary=True, spread=True, required=True,
      label="wall s", better="lower"),
    C("energy_j", "energy", float, "J", "energy of the window (gross), empty when not measured", summary=True,
      required=True, better="lower"),
    C("energy_source", "energy", str, "", "how energy_j was obtained: nvml_counter, nvml_power_integrated, rapl, "
      "estimated, none; parts joined by +", required=True),
    C("gpu_energy_j", "energy", float, "J", "the GPU part of energy_j"),
    C("gpu_energy_source", "energy", str, "", "how the GPU part was obtained"),
    C("cpu_energy_j", "energy", float, "J", "the CPU part of energy_j"),
    C("cpu_energy_source", "energy", str, "", "how the CPU part was obtained (rapl or estimated)"),
    C("idle_power_w", "energy", float, "W", "idle baseline measured before the suite"),
    C("net_energy_j", "energy", float, "J", "energy_j - idle_power_w x wall_s", derive=_net_energy, signed=True),
    C("avg_power_w", "energy", float, "W", "energy_j / wall_s"),
    C("peak_power_w", "energy", float, "W", "highest sampled power in the window"),
    C("flags", "energy", str, "", "gpu_lost, nvml_counter_vs_power_mismatch, sampler_error, wall_unavailable, "
      "wall_counter_reset (; separated)"),
    C("wall_energy_j", "energy", float, "J", "energy of the window at the wall: the whole box through its smart plug "
      "(beside energy_j, not added to it); empty when no plug is configured or it did not answer", better="lower"),
    C("wall_avg_power_w", "energy", float, "W", "wall_energy_j / wall_s"),
    C("wall_source", "energy", str, "", "how wall_energy_j was obtained: <plug>_counter (its cumulative counter) or "
      "<plug>_power_integrated (its power readings integrated), plug one of shelly, tasmota, homeassistant, kasa"),
    C("wall_idle_power_w", "energy", float, "W", "idle baseline at the wall, measured before the suite"),
    C("energy_note", "energy", str, "", "what an estimate assumed"),
    C("gpu_energy_counter_j", "gpu", float, "J", "NVML energy counter over the window"),
    C("gpu_energy_integrated_j", "gpu", float, "J", "NVML instantaneous power integrated over the window"),
    C("gpu_util_pct", "gpu", float, "%", "mean GPU utilization over the window"),
    C("gpu_mem_peak_gb", "gpu", float, "GB", "highest GPU memory in use"),
    C("sm_clock_mhz", "gpu", float, "MHz", "median SM clock"),
    C("gpu_temp_c_max", "gpu", float, "°C", "highest GPU temperature", signed=True),
    C("clock_events", "gpu", str, "", "clock-event (throttle) reasons seen: sw_power_cap, hw_thermal, ..."),
    C("gpu_power_limit_w", "gpu", float, "W", "enforced power limit"),
    C("gpu_foreign_pids", "gpu", str, "", "other processes on the GPU (their energy is in the counter)"),
    C("power_limit_w", "gpu", float, "W", "the power limit a sweep set for this row (empty outside a sweep)"),
    C("power_limit_min_w", "gpu", float, "W", "the card's lowest allowed power limit (sweep rows)"),
    C("power_limit_default_w", "gpu", float, "W", "the card's default power limit (sweep rows)"),
    C("power_limit_max_w", "gpu", float, "W", "the card's highest allowed power limit (sweep rows)"),
    C("threads", "settings", int, "", "CPU threads the backend used"),
    C("device", "settings", str, "", "cpu or cuda"),
    C("warmups", "settings", int, "", "unrecorded runs before the repetitions"),
    C("backend_build", "settings", str, "", "how the backend was built or reached (llama.cpp system info, server)"),
    C("cpu_model", "provenance", str, "", "CPU model name"),
    C("cpu_count", "provenance", int, "", "logical CPUs"),
    C("ram_gib", "provenance", float, "GiB", "installed memory"),
    C("gpu_name", "provenance", str, "", "visible GPUs (; separated)"),
    C("gpu_memory_gb", "provenance", str, "GB", "memory of each visible GPU (; separated)"),
    C("gpu_driver", "provenance", str, "", "NVIDIA driver version"),
    C("os", "provenance", str, "", "operating system and kernel"),
    C("python", "provenance", str, "", "Python version"),
    C("packages", "provenance", str, "", "versions of the packages that change measurements"),
    C("git_sha", "provenance", str, "", "shadowbench commit"),
    C("git_dirty", "provenance", bool, "", "uncommitted changes in the checkout"),
    C("shadowbench_version", "provenance", str, "", "shadowbench version"),
    C("run_started_utc", "provenance", str, "", "when the run started (UTC)"),
]
del C


@lru_cache(maxsize=1)
def registry() -> dict[str, Column]:
    """Every column, in file order: by group, then common columns, then each kind's own in kind order. A column a
    kind shares from another (``SHARES`` in its contract) gets that kind added to its ``kinds``."""
    from . import kinds

    declared: list[Column] = list(COMMON)
    for contract in kinds.contracts():
        declared += [c if c.kinds else _with_kinds(c, (contract.NAME,)) for c in contract.COLUMNS]
    by_name: dict[str, Column] = {}
    for c in declared:
        if c.name in by_name:
            raise ValueError(f"result column {c.name} is declared twice")
        if c.group not in GROUPS:
            raise ValueError(f"result column {c.name}: group {c.group!r} is not one of {GROUPS}")
        by_name[c.name] = c
    for contract in kinds.contracts():
        for name in contract.SHARES:
            by_name[name] = _with_kinds(by_name[name], by_name[name].kinds + (contract.NAME,))
    order = sorted(by_name.values(), key=lambda c: GROUPS.index(c.group))  # stable: declaration order in a group
    return {c.name: c for c in order}


def _with_kinds(c: Column, kinds: tuple[str, ...]) -> Column:
    from dataclasses import replace

    return replace(c, kinds=kinds)


def names() -> list[str]:
    return list(registry())


def required() -> list[str]:
    return [c.name for c in registry().values() if c.required]


def numeric() -> list[str]:
    return [c.name for c in registry().values() if c.numeric]


def summary() -> list[str]:
    """Summarised columns, the kinds' metrics first, then wall time and energy."""
    cols = [c for c in registry().values() if c.summary]
    return [c.name for c in sorted(cols, key=lambda c: c.group != "metric")]


def spread() -> list[str]:
    return [c.name for c in registry().values() if c.spread]


def for_kind(kind: str, group: str | None = None) -> list[Column]:
    return [c for c in registry().values() if (not c.kinds or kind in c.kinds) and (group is None or c.group == group)]


def headline(kind: str) -> list[Column]:
    return [c for c in for_kind(kind, "metric") if c.headline]


def derive(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its derived columns filled (those that apply to the row's kind and are not already set)."""
    out = dict(row)
    for c in registry().values():
        if c.derive is not None and out.get(c.name) is None and (not c.kinds or out.get("kind") in c.kinds):
            out[c.name] = c.derive(out)
    return out


def markdown_table() -> str:
    """The column table of docs/result-columns.md (`shadowbench columns`)."""
    lines = ["| column | unit | kinds | meaning |", "|---|---|---|---|"]
    for c in registry().values():
        kinds_txt = ", ".join(c.kinds) if c.kinds else "all"
        extra = " (summarised, spread checked)" if c.spread else " (summarised)" if c.summary else ""
        lines.append(f"| `{c.name}` | {c.unit} | {kinds_txt} | {c.meaning}{extra} |")
    return "\n".join(lines)
