"""``shadowbench``: one parser; ``bench.commands`` and ``analysis.commands`` add their subcommands.

Stop signals are honoured from main's first instruction: the handlers go in before the command modules (and pandas,
numpy, torch behind them) are imported, so Ctrl-C or SIGTERM at any moment ends with exit status 130 and one line,
never a traceback. Every other way out is one line too: 2 for bad input, 1 for a failure, 1 quietly when whatever
reads stdout has gone (``shadowbench cost | head``).
"""
from __future__ import annotations

import os
import sys

from bench import signals  # the version and the schema number only: light

DEBUG_ENV = "SHADOWBENCH_DEBUG"  # set to 1 for the traceback of an unexpected error


def build_parser():
    import argparse

    import analysis.commands
    import bench.commands
    from bench import __version__

    p = argparse.ArgumentParser(prog="shadowbench", description="Measure local inference (speed, latency, energy) "
                                "and price it against APIs.")
    p.add_argument("--version", action="version", version=f"shadowbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    bench.commands.register(sub)
    analysis.commands.register(sub)
    return p


def _stdout_gone() -> int:
    # the reader closed the pipe: point stdout at /dev/null so the interpreter's final flush cannot fail again
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 1


def main(argv: list[str] | None = None) -> int:
    signals.install()  # SIGINT and SIGTERM end a run in any phase; completed rows are kept
    try:
        from bench.errors import ShadowbenchError
    except KeyboardInterrupt:  # a stop signal in the very first import
        print("shadowbench: interrupted", file=sys.stderr)
        return 130
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ShadowbenchError as e:
        print(f"shadowbench: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("shadowbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    except Exception as e:  # noqa: BLE001 - a bug or an unforeseen state: one line, the traceback on request
        if signals._received:  # a stop signal that a library turned into another error (an import cut short)
            print("shadowbench: interrupted", file=sys.stderr)
            return 130
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"shadowbench: error: {type(e).__name__}: {e} (an unexpected error: {DEBUG_ENV}=1 shows where; "
              "please report it)", file=sys.stderr)
        return 1


def entry() -> None:
    """The `shadowbench` program (the console script and ``python -m shadowbench``): main, and an interrupted run
    leaves at once with 130; rows are flushed and files closed by the run's own finally blocks, and the interpreter's
    shutdown is skipped so no library's exit hook can turn the status into anything else."""
    try:
        status = main()
    except KeyboardInterrupt:  # a stop signal between main's own handlers (its first or last instruction)
        print("shadowbench: interrupted", file=sys.stderr)
        status = 130
    if status == 130:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    entry()
