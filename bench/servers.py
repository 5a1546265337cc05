"""Servers the harness starts itself: llama-cpp-python's OpenAI-compatible server on a free 127.0.0.1 port. It is
stopped at the end whatever happened (the backend's unload, atexit, and the kernel's parent-death signal)."""
from __future__ import annotations

import atexit
import ctypes
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .errors import BackendError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when the harness dies
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LlamaCppServer:
    """``python -m llama_cpp.server`` with a GGUF model. Use as a context manager or start()/stop()."""

    def __init__(self, model: Path, n_ctx: int, threads: int, n_gpu_layers: int, alias: str = "local",
                 startup_timeout_s: float = 120.0, log: Path | None = None):
        self.model, self.n_ctx, self.threads, self.n_gpu_layers = Path(model), n_ctx, threads, n_gpu_layers
        self.alias, self.timeout = alias, startup_timeout_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None
        self.log = log

    def start(self) -> "LlamaCppServer":
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
               "--n_gpu_layers", str(self.n_gpu_layers), "--verbose", "false",
               # queue concurrent requests instead of cutting the running one off (the server's default)
               "--interrupt_requests", "false", "--flash_attn", "true"]
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"llama_cpp.server exited with status {self.proc.returncode} while starting "
                                   f"({self.model})" + (f"; see {self.log}" if self.log else ""))
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BackendError(f"llama_cpp.server did not answer on {self.base_url} within {self.timeout:g} s")

    def stop(self) -> None:
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
