import sys

from bench import signals

signals.install()  # before anything heavy is imported: a stop signal from here on ends with 130, not a traceback
try:
    from .cli import entry
except KeyboardInterrupt:
    print("shadowbench: interrupted", file=sys.stderr)
    sys.exit(130)
entry()
