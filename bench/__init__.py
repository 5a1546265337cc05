"""shadowbench measurement harness: runs suites, reads meters, writes result rows. Knows nothing about dollars."""

__version__ = "0.1.0"

# Version of the result CSV schema (see README "Result columns"). Bump it when a column changes meaning or is
# removed, and add a migration in bench.results.
SCHEMA_VERSION = 1
