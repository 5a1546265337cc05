"""Suite files (TOML) loaded into frozen, validated configuration.

Every problem becomes a one-line ``ConfigError`` naming the file, the key (``workloads[1].repetitions``) and what
was expected. Nothing here imports a backend: the schema of each kind is data, so validating a suite on a CPU-only
box never imports torch.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from . import models
from .errors import ConfigError
from .kinds import get as kind_contract, names as kind_names
from .kinds.endpoint import redact_url
from .kinds.schema import Key, int_key as _int, number_key, str_key as _str


MAX_THREADS = 4096


def _threads_ok(v):
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_THREADS)


THREADS = Key((int, str), f'an integer from 1 to {MAX_THREADS} or "auto"', "auto", check=_threads_ok)
MAX_IDLE_S = 3600.0

SUITE_KEYS = {
    "name": _str("a suite name (letters, digits, - _ .)", required=True,
                 check=lambda v: re.fullmatch(r"[A-Za-z0-9_.-]+", v) is not None),
    "version": _int("an integer >= 1", 1, check=lambda v: v >= 1),
    "description": _str(default=""),
}

# keys that [defaults] sets for every workload and a workload may override
RUN_KEYS = {
    "warmups": _int("an integer >= 0", 1, check=lambda v: v >= 0),
    "repetitions": _int("an integer >= 1", 3, check=lambda v: v >= 1),
    "threads": THREADS,
    "cv_warn": number_key("a number between 0 and 1", 0.10, check=lambda v: 0 < v <= 1),
    # a GPU suite's promise: a workload that would run on the CPU here fails with the reason (the rest runs)
    "require_gpu": Key((bool,), "true (the workload must run on the NVIDIA GPU, or fail with the reason) or false",
                       False),
}

METERS = ("auto", "nvml", "rapl", "estimate", "none")
ENERGY_KEYS = {
    "meter": _str(f"one of {', '.join(METERS)}", "auto", check=lambda v: v in METERS),
    "idle_s": number_key(f"0 (no idle baseline) or a number of seconds from 1 to {MAX_IDLE_S:g}", 10.0,
                         check=lambda v: v == 0 or 1 <= v <= MAX_IDLE_S),
    "sample_hz": number_key("a number of samples per second between 1 and 100", 10.0, check=lambda v: 1 <= v <= 100),
    "cpu_w_per_core": number_key("watts per busy CPU thread (> 0) for the labeled estimate", None,
                                 check=lambda v: v > 0),
}


def _limits_ok(v, lo, hi):
    return (len(v) > 0 and all(isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi for x in v)
            and len(set(v)) == len(v))


SWEEP_KEYS = {
    "power_limit_w": Key((list,), "a list of distinct power limits in W (each within the card's constraints)", None,
                         check=lambda v: _limits_ok(v, 1, 5000)),
    "power_limit_pct": Key((list,), "a list of distinct power limits in % of the card's default limit (10-150)",
                           None, check=lambda v: _limits_ok(v, 10, 150)),
    "settle_s": number_key("seconds (0-600) to run idle at each new limit before measuring", 10.0,
                           check=lambda v: 0 <= v <= 600),
}


# ------------------------------------------------------------------------------------------------- frozen config


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str
    model: models.ModelRef
    tests: tuple[str, ...]
    warmups: int
    repetitions: int
    threads: int
    cv_warn: float
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    require_gpu: bool = False


@dataclass(frozen=True)
class Energy:
    meter: str = "auto"
    idle_s: float = 10.0
    sample_hz: float = 10.0
    cpu_w_per_core: float | None = None


@dataclass(frozen=True)
class Sweep:
    """A power-limit sweep: every workload runs at each limit (bench/powerlimit.py puts the original back)."""

    power_limit_w: tuple[float, ...] = ()
    power_limit_pct: tuple[float, ...] = ()
    settle_s: float = 10.0


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    version: int
    description: str
    workloads: tuple[Workload, ...]
    energy: Energy = Energy()
    sweep: Sweep | None = None


def default_threads() -> int:
    import os

    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:  # pragma: no cover - psutil is a dependency
        return os.cpu_count() or 1


def _typename(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_table(path: Path, where: str, table: dict, schema: dict[str, Key]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = f"{where}." if where else ""
    for k in table:
        if k not in schema:
            raise ConfigError(path, f"{prefix}{k}", f"one of the known keys ({', '.join(sorted(schema))})",
                              "<an unknown key>")
    for k, spec in schema.items():
        if k not in table:
            if spec.required:
                raise ConfigError(path, f"{prefix}{k}", spec.expected, "<nothing: the key is missing>")
            out[k] = spec.default
            continue
        v = table[k]
        # bool is an int in Python; a boolean is only accepted where bool is named
        ok_type = isinstance(v, spec.types) and not (isinstance(v, bool) and bool not in spec.types)
        if not ok_type or (spec.check is not None and not spec.check(v)):
            raise ConfigError(path, f"{prefix}{k}", spec.expected, v if ok_type else f"<{_typename(v)}: {v!r}>")
        out[k] = v
    return out


def load_suite(path: str | Path, check_models: bool = True) -> Suite:
    """Read and validate a suite file. ``check_models`` also resolves local and bundled models (not hub ones)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(path, "<file>", "an existing suite file", "<no such file>") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "<syntax>", "valid TOML", f"<{e}>") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, "<file>", "a readable UTF-8 text file", f"<{e}>") from e

    top = {"suite": Key((dict,), "a [suite] table", required=True),
           "defaults": Key((dict,), "a [defaults] table", {}),
           "energy": Key((dict,), "an [energy] table", {}),
           "sweep": Key((dict,), "a [sweep] table", None),
           "workloads": Key((list,), "at least one [[workloads]] table", required=True,
                            check=lambda v: len(v) > 0 and all(isinstance(w, dict) for w in v))}
    data = _check_table(path, "", data, top)
    suite = _check_table(path, "suite", data["suite"], SUITE_KEYS)
    defaults = _check_table(path, "defaults", data["defaults"], RUN_KEYS)
    energy = _check_table(path, "energy", data["energy"], ENERGY_KEYS)
    sweep = None
    if data["sweep"] is not None:
        sw = _check_table(path, "sweep", data["sweep"], SWEEP_KEYS)
        if not sw["power_limit_w"] and not sw["power_limit_pct"]:
            raise ConfigError(path, "sweep.power_limit_w", "power_limit_w or power_limit_pct: the limits to sweep",
                              "<neither>")
        sweep = Sweep(tuple(float(x) for x in sw["power_limit_w"] or ()),
                      tuple(float(x) for x in sw["power_limit_pct"] or ()), float(sw["settle_s"]))

    workloads = []
    names = set()
    earlier: dict[str, tuple[str, models.ModelRef]] = {}  # name -> (kind, model) of the workloads read so far
    for i, raw in enumerate(data["workloads"]):
        where = f"workloads[{i}]"
        kind = raw.get("kind")
        if not isinstance(kind, str) or kind not in kind_names():
            raise ConfigError(path, f"{where}.kind", f"one of {', '.join(sorted(kind_names()))}",
                              kind if kind is not None else "<nothing: the key is missing>")
        contract = kind_contract(kind)
        schema = {"name": _str("a workload name", required=True), "kind": _str(required=True),
                  **{k: Key(s.types, s.expected, None, False, s.check) for k, s in RUN_KEYS.items()},
                  **contract.KEYS}
        w = _check_table(path, where, raw, schema)
        if w["name"] in names:
            raise ConfigError(path, f"{where}.name", "a name no other workload of the suite has", w["name"])
        names.add(w["name"])
        run = {k: (w[k] if w[k] is not None else defaults[k]) for k in RUN_KEYS}
        threads = default_threads() if run["threads"] == "auto" else run["threads"]
        if hasattr(contract, "finish"):  # checks that involve several keys of the kind
            contract.finish(w, path, where, check_models)
        model = models.check_ref(w["model"], path, f"{where}.model", check_models) if w["model"] is not None else None
        linked: dict = {}
        if hasattr(contract, "link"):  # a model made from this or another workload's, references to others
            model, linked = contract.link(w, model, path, where, earlier)
        if model is None:  # the model behind a remote server
            model = models.ModelRef("remote", f"{w.get('model_name', '')}@{redact_url(w.get('base_url', ''))}")
        earlier[w["name"]] = (kind, model)
        params = {k: v for k, v in w.items() if k in contract.KEYS and k not in ("model", "tests")} | linked
        workloads.append(Workload(
            name=w["name"], kind=kind, model=model, tests=tuple(w["tests"]),
            warmups=run["warmups"], repetitions=run["repetitions"], threads=threads, cv_warn=float(run["cv_warn"]),
            params=MappingProxyType(params), require_gpu=run["require_gpu"]))
    return Suite(path=path, name=suite["name"], version=suite["version"], description=suite["description"],
                 workloads=tuple(workloads),
                 energy=Energy(meter=energy["meter"], idle_s=float(energy["idle_s"]),
                               sample_hz=float(energy["sample_hz"]),
                               cpu_w_per_core=None if energy["cpu_w_per_core"] is None
                               else float(energy["cpu_w_per_core"])), sweep=sweep)
