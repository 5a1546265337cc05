"""Servers the harness starts itself on a free 127.0.0.1 port: llama.cpp's own ``llama-server`` (built from the
sources vendored in llama-cpp-python, continuous batching over ``slots``), or llama-cpp-python's Python server. Each
is stopped at the end whatever happened (the backend's unload, atexit, and the kernel's parent-death signal)."""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .errors import BackendError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(base_url: str, timeout_s: float, alive=lambda: True) -> bool:
    """Wait until an OpenAI-compatible server answers GET /models (True), gives up at the deadline or when
    ``alive()`` turns false (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when the harness dies
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class SpawnedServer:
    """An OpenAI-compatible server process with a GGUF model. Use as a context manager or start()/stop()."""

    name = "server"

    def __init__(self, model: Path, n_ctx: int, threads: int, n_gpu_layers: int, alias: str = "local",
                 startup_timeout_s: float = 120.0, log: Path | None = None, slots: int = 1,
                 embeddings: bool = False):
        self.model, self.n_ctx, self.threads, self.n_gpu_layers = Path(model), n_ctx, threads, n_gpu_layers
        self.alias, self.timeout, self.slots = alias, startup_timeout_s, slots
        self.embeddings = embeddings  # serve /v1/embeddings (mean pooling) instead of completions
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None
        self.log = log

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None  # the harness's own environment

    def start(self) -> "SpawnedServer":
        cmd = self.command()
        if self.log is None:  # the server's own output, for the last line of an error; removed at a clean stop
            fd, name = tempfile.mkstemp(prefix=f"shadowbench-{self.name}-", suffix=".log")
            os.close(fd)
            self.log, self._own_log = Path(name), True
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env(), preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        out.close()  # the child has its own copy
        atexit.register(self.stop)
        if answers(self.base_url, self.timeout, alive=lambda: self.proc.poll() is None):
            return self
        self._own_log = False  # kept: the error names it
        if self.proc.poll() is not None:
            raise BackendError(f"{self.name} exited with status {self.proc.returncode} while starting "
                               f"({self.model}): {self._last_line()}; see {self.log}")
        self.stop()
        raise BackendError(f"{self.name} did not answer on {self.base_url} within {self.timeout:g} s: "
                           f"{self._last_line()}; see {self.log}")

    def _last_line(self) -> str:
        try:
            lines = [x for x in Path(self.log).read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return "no output"
        return lines[-1][:300] if lines else "no output"

    _own_log = False

    def stop(self) -> None:
        if self._own_log and self.log is not None:
            self.log.unlink(missing_ok=True)
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class LlamaCppServer(SpawnedServer):
    """``python -m llama_cpp.server`` (llama-cpp-python's server: one request at a time)."""

    name = "llama_cpp.server"

    def command(self) -> list[str]:
        if self.embeddings:
            raise BackendError("embeddings are served by llama-server here, not llama-cpp-python's server")
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                "--n_gpu_layers", str(self.n_gpu_layers), "--verbose", "false",
                # queue concurrent requests instead of cutting the running one off (the server's default)
                "--interrupt_requests", "false", "--flash_attn", "true"]


class LlamaServer(SpawnedServer):
    """llama.cpp's ``llama-server`` with ``slots`` parallel slots and continuous batching; each slot gets n_ctx
    tokens of context. With ``embeddings``: ``--embeddings --pooling mean``, and a physical batch of n_ctx tokens
    (an embedding model reads each input whole in one batch)."""

    name = "llama-server"

    def command(self) -> list[str]:
        from . import llamacpp

        exe = llamacpp.tool("llama-server", log=lambda m: print(m, file=sys.stderr))
        return [str(exe), "-m", str(self.model), "--alias", self.alias, "--host", "127.0.0.1",
                "--port", str(self.port), "-c", str(self.n_ctx * self.slots), "-np", str(self.slots),
                "-t", str(self.threads), "-tb", str(self.threads), "-ngl", str(self.n_gpu_layers), "-fa", "on",
                "--cont-batching", "--no-webui",
                *(["--embeddings", "--pooling", "mean", "-b", str(self.n_ctx), "-ub", str(self.n_ctx)]
                  if self.embeddings else [])]

    def env(self) -> dict[str, str]:
        from . import llamacpp

        return llamacpp.env()


SERVERS = {"llama-server": LlamaServer, "llama-cpp-python": LlamaCppServer}
