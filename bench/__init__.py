"""shadowbench measurement harness: runs suites, reads meters, writes result rows. Knows nothing about dollars."""

__version__ = "0.1.0"

from .columns import SCHEMA_VERSION  # noqa: E402,F401 - the result schema: history and migrations in bench/columns.py
