"""Backends are imported lazily by kind (``bench.kinds.create_backend``), so a CPU-only box never imports torch to
run the LLM suite.

A backend is a small protocol:

    backend = Backend(workload, model_path)
    backend.load()                 # untimed
    backend.prepare(test)          # untimed per-test setup (build inputs); may raise BackendError
    metrics = backend.run(test)    # one measured repetition: returns result columns; device work has finished
    backend.settings()             # columns describing how it ran (threads, layers, build)
    backend.unload()
"""
from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    name: str

    def load(self) -> None: ...

    def prepare(self, test: str) -> None: ...

    def run(self, test: str) -> dict[str, Any]: ...

    def settings(self) -> dict[str, Any]: ...

    def unload(self) -> None: ...
