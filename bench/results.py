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
from .errors import ConfigError, ShadowbenchError

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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ConfigError(results_dir, "--results-dir", "a folder (or a path where one can be made)",
                          f"<{e.filename} is a file>") from e
    except OSError as e:  # permission denied, a read-only filesystem
        raise ConfigError(results_dir, "--results-dir", "a folder shadowbench may write in",
                          f"<{e.strerror}: {e.filename}>") from e
    return folder / f"{stamp}-{suite}.csv"


class DiskFull(ShadowbenchError):
    """A row could not be written whole: the file was cut back to its last whole row."""

    def __init__(self, path: Path, e: OSError | None, rows: int):
        why = f"{e.strerror}" if e is not None and e.strerror else "a short write"
        super().__init__(f"{path}: could not write a row ({why}: is the disk full?); the file keeps its {rows} "
                         "whole rows and the run stops")


class ResultWriter:
    """Appends rows to a new CSV file, each row in one write of its own, checked and fsynced: the file holds whole
    rows only. A failed or short write (disk full) cuts the file back to its last whole row and raises DiskFull.
    Use as a context manager."""

    def __init__(self, path: Path, columns: list[str] = COLUMNS):
        self.columns = columns
        path = Path(path)
        n = 1
        while True:  # exclusive create: never overwrite, even when two runs start in the same second
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                n += 1
                path = path.with_name(f"{path.stem.rsplit('~', 1)[0]}~{n}{path.suffix}")
            except OSError as e:  # permission denied, a read-only filesystem, not a folder
                raise ConfigError(path.parent, "--results-dir", "a folder shadowbench may write in",
                                  f"<{type(e).__name__}: {e.strerror}>") from e
        self.path = path
        self.rows = 0
        self._size = 0  # bytes of whole lines in the file
        self._write_line(columns)

    def _write_line(self, values: Iterable[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        data = buf.getvalue().encode("utf-8")
        try:
            written = os.write(self._fd, data)  # one write per row
            if written == len(data):
                os.fsync(self._fd)
            error = None
        except OSError as e:
            written, error = -1, e
        if written != len(data):  # a short or failed write: back to the last whole row, and stop
            try:
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
                os.fsync(self._fd)
            except OSError:
                pass
            raise DiskFull(self.path, error, self.rows)
        self._size += written

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        self._write_line(_fmt(row.get(c)) for c in self.columns)
        self.rows += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_result_file(path: Path) -> bool:
    """A result file (not a power series, not a folder), told by its header: a suite may be named x.power."""
    if not path.is_file() or path.suffix != ".csv":
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return True  # unreadable: read_rows names it
    return not head.startswith(b"t_s,")


def read_rows(path: Path, problems: list[str] | None = None, line_numbers: bool = False) -> list[dict[str, str]]:
    """Rows of one result file, migrated to the current schema. A file that cannot be read as a result file raises
    a ConfigError naming it. A bad line (a row cut short by a stopped run or a full disk, a wrong field count, an
    unknown schema version) raises too, unless ``problems`` is given: then it is named there (file and line) and
    left out, and every whole row is kept. ``line_numbers`` adds each row's line in the file as ``_line``."""
    return list(iter_rows(path, problems, line_numbers))


def iter_rows(path: Path, problems: list[str] | None = None, line_numbers: bool = False):
    """``read_rows`` one row at a time, reading the file as a stream: memory stays flat however large it is."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(path, "<file>", "a result file", "<a folder>")
    try:
        with open(path, "rb") as fb:  # whether the last row has its line end (a stopped run may leave it cut short)
            fb.seek(0, 2)
            size = fb.tell()
            if size:
                fb.seek(-1, 2)
            ends_whole = not size or fb.read(1) == b"\n"
        f = open(path, encoding="utf-8-sig", newline="")  # a byte-order mark is not part of the first column's name
    except OSError as e:
        raise ConfigError(path, "<file>", "a readable file", f"<{e.strerror}>") from None

    def bad(where: str, expected: str, got: str) -> None:
        err = ConfigError(path, where, expected, got)
        if problems is None:
            raise err
        problems.append(str(err))

    def undecodable(e: UnicodeDecodeError) -> ConfigError:
        return ConfigError(path, "<file>", "a UTF-8 CSV file", f"<undecodable byte {e.object[e.start:e.start + 1]!r}>")

    with f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(path, "line 1", "a CSV header", "<an empty file>") from None
        except csv.Error as e:
            raise ConfigError(path, "line 1", "a CSV header", f"<{e}>") from None
        except UnicodeDecodeError as e:
            raise undecodable(e) from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ConfigError(path, "line 1", f"the columns {', '.join(missing)}", "<a header without them>")
        known = ", ".join(str(v) for v in sorted({*columns.MIGRATIONS, SCHEMA_VERSION}))
        pending = None  # each row waits for the next: only the last may be cut short

        def finish(values, line):
            if len(values) != len(header):
                bad(f"line {line}", f"{len(header)} fields", f"<{len(values)} fields>")
                return None
            row = dict(zip(header, values))
            version = row["schema_version"]
            if not version.isdigit() or int(version) > SCHEMA_VERSION or (
                    int(version) < SCHEMA_VERSION and int(version) not in columns.MIGRATIONS):
                bad(f"line {line}: schema_version", f"a schema version shadowbench reads ({known})", version)
                return None
            row = columns.migrate(row, int(version))
            if line_numbers:
                row["_line"] = str(line)
            return row

        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                bad(f"line {reader.line_num}", "a CSV row", f"<{e}>")
                continue
            except UnicodeDecodeError as e:  # not a file of ours at all: the whole file is refused
                raise undecodable(e) from None
            if not values:
                continue
            if pending is not None and (row := finish(*pending)) is not None:
                yield row
            pending = (values, reader.line_num)
        if pending is not None:
            if not ends_whole:
                bad(f"line {pending[1]}", "a whole row",
                    "<a row cut short: no line end (the run stopped or the disk was full)>")
            elif (row := finish(*pending)) is not None:
                yield row
