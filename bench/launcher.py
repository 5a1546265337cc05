"""The launcher: each workload's engine in its own child process, as pyperf runs each benchmark in a worker
(``--worker --pipe``) and optimum-benchmark's process launcher runs each benchmark in a child that sends back its
report or its traceback.

The child (``python -m bench.launcher --worker FD_IN FD_OUT``) creates the backend and answers the backend protocol
(load, settings, energy scope, prepare, run, check, unload) over a pipe; the parent holds the meter, the progress bar
and the result file. A native crash (SIGSEGV, SIGABRT, the kernel's OOM killer) ends the child, not the suite: the
parent names the signal, the phase and the child's last lines of stderr (``ChildDied``), and the runner goes on with
the next workload. The child exits after its workload, so its GPU memory is back before the next one, and the
libraries of torch, llama.cpp and CTranslate2 never meet in one process.

Timing: the child reads ``time.perf_counter`` right around ``backend.run`` and sends those edges with the result;
on Linux that is CLOCK_MONOTONIC, the same clock in both processes, so the parent's meter prices exactly the child's
window (``EnergyMeter.end(key, edges)``). Nothing crosses the pipe inside a timed window.

``inline`` runs the backend in the harness process, as before: for debugging (a debugger sees the crash) and for
unit tests whose fake backends cannot cross a process boundary.
"""
from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType

from . import signals
from .energy.base import Scope
from .errors import BackendError, ShadowbenchError

MODES = ("process", "inline")
DEFAULT_MODE = "process"
STDERR_LINES = 20  # the child's last lines of stderr shown when it dies
POLL_S = 0.05  # how often a waiting parent looks at its stop signals
STOP_GRACE_S = 3.0  # SIGTERM, then SIGKILL after this long
UNLOAD_TIMEOUT_S = 120.0
SAME_CLOCK = sys.platform.startswith("linux")  # perf_counter is CLOCK_MONOTONIC in every process

# what to try, by the signal that ended the child
HINTS = {
    signal.SIGSEGV: ("a native crash inside the engine. `shadowbench doctor` shows which CUDA runtime and cuBLAS each "
                     "engine loads (two builds of one library in a process are the usual cause); "
                     "`shadowbench run --launcher inline` runs it in the harness process, under a debugger if you "
                     "like"),
    signal.SIGABRT: ("the engine aborted (a failed assertion, a CUDA error, or a freed pointer). "
                     "`shadowbench doctor` shows which CUDA libraries each engine loads; the lines above are the "
                     "engine's own last words"),
    signal.SIGKILL: ("killed from outside, usually by the kernel's out-of-memory killer (`dmesg | tail` says): a "
                     "smaller model or n_ctx, fewer GPU layers (n_gpu_layers = \"fit\"), or close what else uses "
                     "the memory"),
    signal.SIGBUS: "a bus error: often a model file that changed or was truncated while it was mapped",
    signal.SIGILL: ("an illegal instruction: the engine was built for another CPU (rebuild with `make setup` on this "
                    "box)"),
    signal.SIGFPE: "an arithmetic fault inside the engine",
}


def signal_words(returncode: int | None) -> str:
    """How a child ended, in words: 'SIGSEGV (Segmentation fault)' or 'exit status 3'."""
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
            return f"{sig.name} ({signal.strsignal(sig) or 'signal'})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class ChildDied(BackendError):
    """The engine's process ended without an answer: its signal or exit status, the phase, its last lines."""

    def __init__(self, what: str, returncode: int | None, phase: str, tail: list[str], log: Path | None):
        self.returncode, self.phase, self.tail, self.log = returncode, phase, tail, log
        self.how = signal_words(returncode)
        hint = HINTS.get(-returncode if returncode is not None and returncode < 0 else 0,
                         "the engine's process ended without a result: its last lines say why")
        lines = [f"{what}: the engine process died with {self.how} while {phase}"]
        if tail:
            lines.append(f"its last {len(tail)} lines of stderr:")
            lines += [f"  | {t}" for t in tail]
        else:
            lines.append("it wrote nothing to stderr")
        lines.append(f"what to try: {hint}")
        if log is not None:
            lines.append(f"its whole log: {log}")
        super().__init__("\n".join(lines))


class RemoteError(ShadowbenchError):
    """An exception of the child's backend that could not be rebuilt in the parent: its type, text and exit status."""

    def __init__(self, text: str, exit_status: int, remote_traceback: str = ""):
        super().__init__(text)
        self.exit_status = exit_status
        self.remote_traceback = remote_traceback


def _portable(w):
    """A workload that pickles (MappingProxyType does not)."""
    return replace(w, params=dict(w.params))


def _describe(e: BaseException) -> dict:
    try:
        blob = pickle.dumps(e)
    except Exception:  # noqa: BLE001 - an exception that does not pickle is sent as text
        blob = None
    return {"type": type(e).__name__, "text": str(e), "blob": blob,
            "exit_status": getattr(e, "exit_status", 1) if isinstance(e, ShadowbenchError) else 1,
            "shadowbench": isinstance(e, ShadowbenchError), "traceback": traceback.format_exc()}


def _rebuild(d: dict) -> Exception:
    """The child's exception as the same type where it pickles back (the runner's messages and exit statuses
    depend on it), else a RemoteError with its type and text."""
    if d["blob"] is not None:
        try:
            e = pickle.loads(d["blob"])
            if isinstance(e, Exception) and str(e) == d["text"]:
                return e
        except Exception:  # noqa: BLE001 - e.g. an __init__ with other arguments than its args
            pass
    text = d["text"] if d["shadowbench"] else f"{d['type']}: {d['text']}"
    return RemoteError(text, d["exit_status"], d["traceback"])


class ChildBackend:
    """The backend protocol, answered by a child process that runs ``factory(workload, model_path)``. ``phase`` is
    set by the runner before each step (for the message if the child dies there); ``last_edges`` holds the child's
    (start, end) of the last run on the meter's clock."""

    def __init__(self, factory, workload, model_path: Path | None):
        self.factory, self.workload, self.model_path = factory, workload, model_path
        self.name = "?"
        self.phase = "starting"
        self.last_edges: tuple[float, float] | None = None
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None
        self._settings: dict = {}
        self._scope: Scope | None = None
        self._has_check = False
        self._to: Connection | None = None
        self._from: Connection | None = None
        self.dead: ChildDied | None = None

    # ------------------------------------------------------------------ the child's life
    def _start(self) -> None:
        fd, log = tempfile.mkstemp(prefix=f"shadowbench-{_safe(self.workload.name)}-", suffix=".log")
        self.log = Path(log)
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        root = str(Path(__file__).resolve().parent.parent)  # bench/ importable wherever the harness was started
        env = {**os.environ, "PYTHONFAULTHANDLER": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.launcher", "--worker", str(to_r), str(from_w)],
                pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the harness, which stops the child
                cwd=os.getcwd())
        finally:
            os.close(to_r)
            os.close(from_w)
            os.close(fd)
        self._to = Connection(to_w, readable=False)
        self._from = Connection(from_r, writable=False)
        payload = pickle.dumps((self.factory, _portable(self.workload), self.model_path))
        self._to.send({"sys_path": list(sys.path), "payload": payload})

    def _call(self, op: str, arg=None, timeout_s: float | None = None):
        if self.dead is not None:
            raise self.dead
        if self.proc is None:
            self._start()
        try:
            try:
                self._to.send((op, arg))
            except (BrokenPipeError, OSError):
                raise self._died() from None
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while not self._from.poll(POLL_S):
                signals.check()
                if deadline is not None and time.monotonic() > deadline:
                    self.stop()
                    raise BackendError(f"{self.workload.name}: the engine process did not answer {op} within "
                                       f"{timeout_s:g} s; it was stopped")
            try:
                status, value = self._from.recv()
            except (EOFError, OSError):
                raise self._died() from None
        except BaseException:  # Ctrl-C, SIGTERM, a dead child: no child is left running
            if self.dead is None:
                self.stop()
            raise
        if status == "error":
            raise _rebuild(value)
        return value

    def _died(self) -> ChildDied:
        try:
            rc = self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:  # the pipe closed but the process lingers: end it
            self.stop()
            rc = self.proc.returncode
        self._reap_group()
        self.dead = ChildDied(self.workload.name, rc, self.phase, self._tail(), self.log)
        return self.dead

    def _tail(self) -> list[str]:
        if self.log is None:
            return []
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []
        return list(deque((ln.rstrip() for ln in lines if ln.strip()), maxlen=STDERR_LINES))

    def _reap_group(self) -> None:
        """Whatever the child started in its session (a server it spawned) goes with it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """End the child now: SIGTERM to its session, SIGKILL after a grace period; reaped either way."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._reap_group()
            self.proc.wait()
        self._reap_group()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for c in (self._to, self._from):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # ------------------------------------------------------------------ the backend protocol
    def load(self) -> None:
        self.phase = "loading the model"
        info = self._call("load")
        self.name, self._settings, self._scope, self._has_check = (info["name"], info["settings"], info["scope"],
                                                                   info["has_check"])

    def settings(self) -> dict:
        return dict(self._settings)

    def energy_scope(self) -> Scope:
        """The child's own scope (a local server it started, a remote one), with the child's pid tracked."""
        s = self._scope or Scope()
        if s.kind in ("remote", "system"):
            return s
        return Scope(kind=s.kind, pids=(*s.pids, self.proc.pid), note=s.note)

    def prepare(self, test: str) -> None:
        self._call("prepare", test)

    def run(self, test: str) -> dict:
        self.last_edges = None
        metrics, t0, t1 = self._call("run", test)
        self.last_edges = (t0, t1) if SAME_CLOCK else None
        return metrics

    def check(self, test: str) -> dict:
        return self._call("check", test) if self._has_check else {}

    def unload(self) -> None:
        """The engine unloads and its process exits, so its memory is back before the next workload."""
        if self.proc is None:
            return
        try:
            if self.dead is None and self.proc.returncode is None:
                self.phase = "unloading"
                self._call("unload", timeout_s=UNLOAD_TIMEOUT_S)
                try:
                    self.proc.wait(timeout=UNLOAD_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.stop()
        finally:
            self.stop()
            self._close_pipes()
            if self.dead is None and self.log is not None:  # a clean run leaves no log behind
                self.log.unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "workload"


# ---------------------------------------------------------------------------------------------------- the child
def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan if the harness is killed
    except (OSError, AttributeError):
        pass


def worker(fd_in: int, fd_out: int) -> int:
    """The child's loop: one workload's backend, one request at a time."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when the child stops
    # a crash's Python stack goes to the log even while an engine points fd 2 at /dev/null (llama.cpp's quiet load)
    faulthandler.enable(file=os.fdopen(os.dup(2), "w"), all_threads=True)
    conn_in, conn_out = Connection(fd_in, writable=False), Connection(fd_out, readable=False)
    try:
        init = conn_in.recv()
    except EOFError:
        return 0
    sys.path[:0] = [p for p in init["sys_path"] if p not in sys.path]
    factory, workload, model_path = pickle.loads(init["payload"])
    workload = replace(workload, params=MappingProxyType(workload.params))
    backend = None
    while True:
        try:
            op, arg = conn_in.recv()
        except EOFError:  # the harness is gone
            return 0
        try:
            if op == "load":
                backend = factory(workload, model_path)
                backend.load()
                scope = backend.energy_scope() if hasattr(backend, "energy_scope") else None
                value = {"name": backend.name, "settings": backend.settings(), "scope": scope,
                         "has_check": hasattr(backend, "check")}
            elif op == "prepare":
                value = backend.prepare(arg)
            elif op == "run":
                t0 = time.perf_counter()
                metrics = backend.run(arg)
                t1 = time.perf_counter()
                value = (metrics, t0, t1)
            elif op == "check":
                value = backend.check(arg)
            elif op == "unload":
                if backend is not None:
                    backend.unload()
                conn_out.send(("ok", None))
                return 0
            else:
                raise BackendError(f"unknown request {op!r}")
            conn_out.send(("ok", value))
        except Exception as e:  # noqa: BLE001 - the parent decides what a failure means
            conn_out.send(("error", _describe(e)))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        sys.exit(worker(int(sys.argv[2]), int(sys.argv[3])))
    print("usage: python -m bench.launcher --worker FD_IN FD_OUT (started by the runner)", file=sys.stderr)
    sys.exit(2)
