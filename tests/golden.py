"""The golden report and the committed report's freshness, outside the test run.

    python -m tests.golden write          # tests/data/REPORT.md from the fixture rows (`make golden`)
    python -m tests.golden check results  # results/REPORT.md is what its rows make today (`make report-check`)

The tests compare against tests/data/REPORT.md only, so a user who commits a run under results/ (and regenerates
results/REPORT.md or not) never fails `make test`; `make report-check` is this repository's own CI step that its
committed report was regenerated after a change.
"""
import shutil
import sys
import tempfile
from pathlib import Path

from analysis.report import write_report

from .conftest import FIXTURE_ROWS, GOLDEN_REPORT


def body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Generated ")]


def generate(rows: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "results"
        shutil.copytree(rows, res, ignore=shutil.ignore_patterns("figures", "REPORT.md", "report.html"))
        out, problems = write_report(res, plots=False, page=False)
        if problems:
            sys.exit("left out: " + "; ".join(problems))
        return out.read_text()


def main(argv: list[str]) -> int:
    if argv[:1] == ["write"]:
        GOLDEN_REPORT.write_text(generate(FIXTURE_ROWS))
        print(f"wrote {GOLDEN_REPORT}")
        return 0
    if argv[:1] == ["check"] and len(argv) == 2:
        folder = Path(argv[1])
        report = folder / "REPORT.md"
        if not report.is_file():
            print(f"{report}: missing: run `make report`", file=sys.stderr)
            return 1
        if body(generate(folder)) != body(report.read_text()):
            print(f"{report} is stale: its rows or the catalogs changed since it was written; run `make report` "
                  "and commit it", file=sys.stderr)
            return 1
        print(f"{report} is what its rows make today")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
