"""Result files: one CSV per run, one row per measured repetition, written and flushed as soon as it is measured.

A file is created exclusively (never overwritten). Every row is written whole and fsynced, so Ctrl-C or a crash
leaves a valid file holding every completed row.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable

from . import columns
from .columns import SCHEMA_VERSION
from .errors import ConfigError

# every column in file order, and those a file must have (declared in bench/columns.py and the kind contracts)
COLUMNS = columns.names()
REQUIRED = columns.required()


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else repr(v)
    return str(v)


def new_result_path(results_dir: Path, machine: str, stamp: str, suite: str) -> Path:
    folder = Path(results_dir) / machine
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stamp}-{suite}.csv"


class ResultWriter:
    """Appends rows to a new CSV file. Use as a context manager."""

    def __init__(self, path: Path, columns: list[str] = COLUMNS):
        self.columns = columns
        path = Path(path)
        n = 1
        while True:  # exclusive create: never overwrite, even when two runs start in the same second
            try:
                self._f = open(path, "x", newline="", encoding="utf-8")
                break
            except FileExistsError:
                n += 1
                path = path.with_name(f"{path.stem.rsplit('~', 1)[0]}~{n}{path.suffix}")
        self.path = path
        self.rows = 0
        self._write_line(columns)

    def _write_line(self, values: Iterable[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        self._f.write(buf.getvalue())  # one write per row: a partial row never reaches the file
        self._f.flush()
        os.fsync(self._f.fileno())

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        self._write_line(_fmt(row.get(c)) for c in self.columns)
        self.rows += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of one result file, migrated to the current schema; a ConfigError names the file and line of any
    problem."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(path, "line 1", "a CSV header", "<an empty file>") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ConfigError(path, "line 1", f"the columns {', '.join(missing)}", "<a header without them>")
        rows = []
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                raise ConfigError(path, f"line {line}", f"{len(header)} fields", f"<{len(values)} fields>")
            row = dict(zip(header, values))
            version = row["schema_version"]
            if not version.isdigit() or int(version) > SCHEMA_VERSION or (
                    int(version) < SCHEMA_VERSION and int(version) not in columns.MIGRATIONS):
                known = ", ".join(str(v) for v in sorted({*columns.MIGRATIONS, SCHEMA_VERSION}))
                raise ConfigError(path, f"line {line}: schema_version", f"a schema version shadowbench reads ({known})",
                                  version)
            rows.append(columns.migrate(row, int(version)))
    return rows
