"""Ctrl-C (SIGINT) and SIGTERM stop a run in every phase, with every completed row kept (exit status 130).

Python raises KeyboardInterrupt from a signal handler at the next bytecode it runs; when that happens inside a C
library's callback into Python (llama.cpp's log callback while a model loads), the library's ctypes wrapper prints
the exception and drops it, and the run would go on. So the handler also records the signal, and the runner calls
``check()`` after every phase (load, prepare, warm-up, each repetition, each check, the idle baseline): a signal that
was swallowed stops the run there.
"""
from __future__ import annotations

import signal

_received: list[int] = []


def _handler(signum, frame):
    _received.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM both end the run as Ctrl-C does (main thread only)."""
    _received.clear()
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if a stop signal arrived, even if its exception was swallowed on the way."""
    if _received:
        raise KeyboardInterrupt

