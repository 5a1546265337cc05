"""Kind contracts: one import-light module per kind of workload (``bench/kinds/<kind>.py``) holding what the rest
of the project knows about it, in one place:

- ``NAME``, ``BACKEND`` (the backend module, imported only when a workload of the kind runs),
- ``KEYS`` (its suite keys, ``tests`` included), ``parse_test`` (its test grammar: the single parser that both
  validation and the backend use),
- ``COLUMNS`` (its own result columns, settings included) and ``SHARES`` (columns declared by another kind that
  it also writes),
- ``PRICING`` (its unit of work for pricing), and optionally ``finish(w, path, where, check_models)`` for checks
  that involve several keys, ``link(w, path, where, earlier)`` for keys that name earlier workloads of the suite
  (a model made from another's), and ``runs(test, warmups, repetitions)`` for tests that run a different number of
  times (a deterministic quality pass runs once).

Adding a kind is adding its module to ``KIND_MODULES``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

KIND_MODULES = {name: f"bench.kinds.{name}" for name in ("llm", "endpoint", "asr", "tts", "image", "embed")}


@dataclass(frozen=True)
class Pricing:
    """A kind's unit of work as the price catalog counts it: ``units(row)`` of ``unit`` in one repetition.
    ``display_scale`` units make one display unit (1e6 characters: prices are quoted per 1M characters)."""

    price_kind: str  # the price catalog's kind: llm, stt, tts, image
    unit: str
    units: Callable[[dict[str, Any]], float]
    display_unit: str = ""
    display_scale: float = 1.0

    @property
    def display(self) -> str:
        return self.display_unit or self.unit


def names() -> list[str]:
    return list(KIND_MODULES)


@lru_cache(maxsize=None)
def get(kind: str) -> ModuleType:
    return importlib.import_module(KIND_MODULES[kind])


def contracts() -> list[ModuleType]:
    return [get(k) for k in KIND_MODULES]


def by_price_kind(price_kind: str) -> ModuleType:
    """The row kind whose work a price kind counts (stt -> asr); the first kind in order for llm."""
    for c in contracts():
        if c.PRICING is not None and c.PRICING.price_kind == price_kind:
            return c
    raise KeyError(price_kind)


def runs(workload, test: str) -> tuple[int, int]:
    """(warmups, repetitions) of one test of a workload."""
    f = getattr(get(workload.kind), "runs", None)
    return f(test, workload.warmups, workload.repetitions) if f else (workload.warmups, workload.repetitions)


def steps(workload) -> int:
    """Warmups and repetitions of all of a workload's tests (the progress bar's steps)."""
    return sum(sum(runs(workload, t)) for t in workload.tests)


def create_backend(workload, model_path: Path | None):
    """The backend for a workload, its module imported on first use (a CPU box never imports torch for LLMs)."""
    return importlib.import_module(get(workload.kind).BACKEND).create(workload, model_path)
