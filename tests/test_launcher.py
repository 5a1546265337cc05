"""The process launcher: each workload's engine in its own child; a native crash fails that workload only."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from bench.energy import NullMeter
from bench.results import read_rows
from bench.runner import Runner

from .conftest import REPO
from .fakes import crash_factory, fake_suite, with_params


def _run(tmp_path, suite, launcher="process"):
    out = tmp_path / "console.txt"
    runner = Runner(suite, NullMeter(), tmp_path / "res", "box", [], show_progress=False, idle_s=0,
                    console=Console(file=open(out, "w"), width=200), create_backend=crash_factory,
                    launcher=launcher)
    outcome = runner.run()
    return outcome, out.read_text()


@pytest.mark.parametrize("how, words", [("segv", "SIGSEGV (Segmentation fault)"), ("abort", "SIGABRT (Aborted)"),
                                        ("exit", "exit status 3")])
def test_a_crash_while_loading_fails_that_workload_and_the_next_one_runs(tmp_path, how, words):
    suite = with_params(fake_suite(tmp_path, reps=2, tests='["tg4"]'), first={"crash_at": "load", "crash_how": how})
    outcome, text = _run(tmp_path, suite)
    assert outcome.exit_status == 1
    [(what, msg)] = outcome.failures
    assert what == "first"
    assert f"died with {words} while loading the model" in msg
    assert f"crash-fake: about to {how}" in msg  # the child's own last lines of stderr
    assert "what to try:" in msg
    rows = read_rows(outcome.path)
    assert [(r["workload"], r["repetition"]) for r in rows] == [("second", "1"), ("second", "2")]
    assert rows[0]["backend"] == "crash-fake"
    assert "Traceback" not in text.replace("crash-fake", "")  # the harness's own stack never shows
    if how == "segv":  # the child's Python stack at the crash (faulthandler) is in its log
        assert "Fatal Python error: Segmentation fault" in msg or "Segmentation fault" in msg


def test_sigkill_mid_repetition_keeps_the_earlier_rows(tmp_path):
    suite = with_params(fake_suite(tmp_path, reps=4, tests='["tg4", "pp8"]'),
                        first={"crash_at": "run:3", "crash_how": "kill"})
    outcome, text = _run(tmp_path, suite)
    assert outcome.exit_status == 1
    [(what, msg)] = outcome.failures
    assert what == "first/tg4 repetition 3"
    assert "SIGKILL (Killed) while running test tg4 repetition 3" in msg and "out-of-memory killer" in msg
    rows = read_rows(outcome.path)
    # first: repetitions 1 and 2 of tg4 kept, its pp8 never asked of a dead engine; second: whole
    assert [(r["workload"], r["test"], r["repetition"]) for r in rows] == [
        ("first", "tg4", "1"), ("first", "tg4", "2"), ("second", "tg4", "1"), ("second", "tg4", "2"),
        ("second", "tg4", "3"), ("second", "tg4", "4")]
    assert "skipping the rest of the workload" in text


def test_each_workload_runs_in_its_own_process_and_windows_are_the_childs(tmp_path):
    suite = with_params(fake_suite(tmp_path, reps=2, tests='["tg4"]'), first={"marker": str(tmp_path / "a")},
                        second={"marker": str(tmp_path / "b")})
    outcome, _ = _run(tmp_path, suite)
    assert outcome.failures == []
    a, b = int((tmp_path / "a").read_text()), int((tmp_path / "b").read_text())
    assert len({a, b, os.getpid()}) == 3
    for pid in (a, b):  # each child exited after its workload
        assert not Path(f"/proc/{pid}").exists()
    rows = read_rows(outcome.path)
    # the child's own edges around a 10 ms run (the pipe's round trip is outside the window); the upper bound leaves
    # room for a loaded 2-core machine
    assert all(0.009 < float(r["wall_s"]) < 0.5 for r in rows)
    assert len(outcome.skews_s) == 4 and all(s >= 0 for s in outcome.skews_s)


def test_inline_mode_runs_in_this_process(tmp_path):
    suite = with_params(fake_suite(tmp_path, reps=1, tests='["tg4"]'), first={"marker": str(tmp_path / "a")})
    outcome, _ = _run(tmp_path, suite, launcher="inline")
    assert outcome.failures == [] and int((tmp_path / "a").read_text()) == os.getpid()


def test_an_exception_in_the_child_keeps_its_type_and_exit_status(tmp_path):
    from bench.launcher import _describe, _rebuild
    from bench.errors import ConfigError, ModelNotFound

    for e in (ModelNotFound("no such file"), ConfigError("s.toml", "n_ctx", "an integer", "x"), KeyError("k")):
        try:
            raise e
        except Exception as caught:
            back = _rebuild(_describe(caught))
        assert getattr(back, "exit_status", 1) == getattr(e, "exit_status", 1)
        assert str(e) in str(back)


def test_ctrl_c_during_a_childs_model_load_exits_130_and_leaves_no_child(tmp_path):
    marker = tmp_path / "pid"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from rich.console import Console
        from bench import signals
        from bench.energy import NullMeter
        from bench.runner import Runner
        from tests.fakes import crash_factory, fake_suite, with_params
        tmp = Path({str(tmp_path)!r})
        suite = with_params(fake_suite(tmp, reps=1, tests='["tg4"]'),
                            first={{"hang_load_s": 60, "marker": {str(marker)!r}}})
        signals.install()
        try:
            Runner(suite, NullMeter(), tmp / "res", "box", [], show_progress=False, idle_s=0,
                   console=Console(stderr=True), create_backend=crash_factory).run()
        except KeyboardInterrupt:
            sys.exit(130)
        sys.exit(0)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child = int(marker.read_text())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
