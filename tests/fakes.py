"""Fakes for the unit tier: a simulated clock, and a backend that behaves like one (and fails where told)."""
from __future__ import annotations


class SimClock:
    """A clock the test moves: ``clock()`` reads it, ``clock.sleep(dt)`` moves it (as a wait would)."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


class FakeBackend:
    """The backend protocol with a simulated half-second repetition. ``fail = (where, call, exception)`` makes it
    raise in load, prepare, run or check: ("run", 2) on the second measured run; call None = every call."""

    name = "fake"

    def __init__(self, workload, clock: SimClock, fail=None, seconds: float = 0.5):
        self.workload, self.clock, self.fail, self.seconds = workload, clock, fail, seconds
        self.calls = 0
        self.unloaded = False

    def _maybe(self, where):
        if self.fail and self.fail[0] == where and (len(self.fail) < 2 or self.fail[1] in (None, self.calls)):
            raise self.fail[2] if len(self.fail) > 2 else RuntimeError(f"boom in {where}")

    def load(self):
        self._maybe("load")

    def settings(self):
        return {"threads": 1, "backend_build": "fake"}

    def prepare(self, test):
        self._maybe("prepare")

    def run(self, test):
        self.calls += 1
        self.clock.sleep(self.seconds)
        self._maybe("run")
        return {"prompt_tokens": 8, "output_tokens": 4, "tg_tokens_per_s": 8.0}

    def check(self, test):
        self._maybe("check")
        return {}

    def unload(self):
        self.unloaded = True


FAKE_SUITE = """
[suite]
name = "fake"
[defaults]
warmups = 0
repetitions = {reps}
threads = 1
[[workloads]]
name = "first"
kind = "llm"
model = "{model}"
tests = {tests}
[[workloads]]
name = "second"
kind = "llm"
model = "{model}"
tests = ["tg4"]
"""


def fake_suite(tmp_path, reps=3, tests='["tg4", "pp8"]'):
    from bench.config import load_suite

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF fake model bytes")
    (tmp_path / "s.toml").write_text(FAKE_SUITE.format(model=model, reps=reps, tests=tests))
    return load_suite(tmp_path / "s.toml")


class CrashBackend:
    """A backend that dies natively where its workload's params say, in a child process of the launcher:
    ``crash_at`` "load" or "run:N" (the Nth call of run, warm-ups included), ``crash_how`` "segv" (reads address 0),
    "abort" (as a failed assertion or free() of a bad pointer does), "kill" (SIGKILL, as the OOM killer sends) or
    "exit" (leaves without an answer); ``hang_load_s`` sleeps in load; ``marker`` is a file its pid is written to."""

    name = "crash-fake"

    def __init__(self, workload, model_path):
        p = workload.params
        self.where, self.how = p.get("crash_at", ""), p.get("crash_how", "segv")
        self.hang_s, self.marker = p.get("hang_load_s", 0), p.get("marker")
        self.calls = 0

    def _die(self):
        import ctypes
        import os
        import signal
        import sys

        print(f"crash-fake: about to {self.how}", file=sys.stderr, flush=True)
        if self.how == "segv":
            ctypes.string_at(0)
        elif self.how == "abort":
            os.abort()
        elif self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)

    def load(self):
        import os
        import time
        from pathlib import Path

        if self.marker:
            Path(self.marker).write_text(str(os.getpid()))
        if self.where == "load":
            self._die()
        time.sleep(self.hang_s)

    def settings(self):
        return {"threads": 1, "backend_build": "crash-fake"}

    def prepare(self, test):
        pass

    def run(self, test):
        import time

        self.calls += 1
        if self.where == f"run:{self.calls}":
            self._die()
        time.sleep(0.01)
        return {"prompt_tokens": 8, "output_tokens": 4, "tg_tokens_per_s": 400.0}

    def check(self, test):
        return {}

    def unload(self):
        pass


def crash_factory(workload, model_path):
    """The launcher's factory for CrashBackend (importable by name, as the child needs)."""
    return CrashBackend(workload, model_path)


def with_params(suite, **per_workload):
    """The suite with extra params on named workloads (keys a real kind would refuse in a suite file)."""
    from dataclasses import replace
    from types import MappingProxyType

    ws = tuple(replace(w, params=MappingProxyType({**w.params, **per_workload.get(w.name, {})}))
               for w in suite.workloads)
    return replace(suite, workloads=ws)
