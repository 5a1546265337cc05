"""Backends are imported lazily by kind, so a CPU-only box never imports torch to run the LLM suite.

A backend is a small protocol:

    backend = Backend(workload, model_path)
    backend.load()                 # untimed
    backend.prepare(test)          # untimed per-test setup (build inputs); may raise BackendError
    metrics = backend.run(test)    # one measured repetition: returns result columns; device work has finished
    backend.settings()             # columns describing how it ran (threads, layers, build)
    backend.unload()
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from ..config import KINDS, Workload


class Backend(Protocol):
    name: str

    def load(self) -> None: ...

    def prepare(self, test: str) -> None: ...

    def run(self, test: str) -> dict[str, Any]: ...

    def settings(self) -> dict[str, Any]: ...

    def unload(self) -> None: ...


def create(workload: Workload, model_path: Path) -> Backend:
    module = importlib.import_module(KINDS[workload.kind]["module"])
    return module.create(workload, model_path)
