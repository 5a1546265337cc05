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
