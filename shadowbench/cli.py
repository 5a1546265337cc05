"""``shadowbench``: one parser; ``bench.commands`` and ``analysis.commands`` add their subcommands."""
from __future__ import annotations

import argparse
import sys

import analysis.commands
import bench.commands
from bench import __version__, signals
from bench.errors import ShadowbenchError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shadowbench", description="Measure local inference (speed, latency, energy) "
                                "and price it against APIs.")
    p.add_argument("--version", action="version", version=f"shadowbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    bench.commands.register(sub)
    analysis.commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signals.install()  # SIGINT and SIGTERM end a run in any phase; completed rows are kept
    try:
        return args.func(args)
    except ShadowbenchError as e:
        print(f"shadowbench: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print("shadowbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
