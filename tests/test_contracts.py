"""Unit tier: kind contracts, the column registry and its README table, schema migration, failure containment with
a fake backend, and the meter on a fake clock. No llama.cpp, torch or model is loaded here."""
import ast
import csv
import re
from pathlib import Path

import pytest
from rich.console import Console

from bench import columns, kinds
from bench.config import load_suite
from bench.energy import EnergyMeter, NullMeter, Part
from bench.errors import ConfigError
from bench.results import COLUMNS, read_rows
from bench.runner import Runner

from .conftest import REPO, run_cli
from .fakes import FakeBackend, SimClock, fake_suite

# ------------------------------------------------------------------------------------------- test grammars

ENDPOINT_SUITE = """
[suite]
name = "ep"
[[workloads]]
name = "server"
kind = "endpoint"
base_url = "http://127.0.0.1:9/v1"
tests = ["c1", "{step}"]
"""


@pytest.mark.parametrize("step", ["r0.0", "r00", "c0", "r0", "c01", "r.5", "r-1", "c", "p0", "p", "q1"])
def test_endpoint_steps_validation_and_backend_agree(write_suite, step):
    """One parser: a step validation accepts is one the backend can run, and the rest exit 2 in one line."""
    assert kinds.get("endpoint").parse_test(step) is None
    path = write_suite(ENDPOINT_SUITE.format(step=step))
    r = run_cli("validate", path)
    assert r.returncode == 2, r.stdout
    [line] = r.stderr.strip().splitlines()
    assert str(path) in line and "workloads[0].tests" in line and "requests in flight" in line


@pytest.mark.parametrize("step, parsed", [("c1", (1, None, False)), ("c16", (16, None, False)),
                                          ("r0.5", (None, 0.5, False)), ("r2", (None, 2.0, False)),
                                          ("r10.25", (None, 10.25, False)), ("p0.5", (None, 0.5, True))])
def test_endpoint_steps_that_run(write_suite, step, parsed):
    assert kinds.get("endpoint").parse_test(step) == parsed
    load_suite(write_suite(ENDPOINT_SUITE.format(step=step)))


def test_backends_use_their_contracts_parser():
    import bench.backends.endpoint as ep
    import bench.backends.llm as llm

    assert ep.parse_test is kinds.get("endpoint").parse_test
    assert llm.parse_test is kinds.get("llm").parse_test


@pytest.mark.parametrize("name, expected", [
    ("pp512", (512, 0, 1)), ("tg128", (0, 128, 1)), ("pp500+tg200", (500, 200, 1)),
    ("pp500+tg200x8", (500, 200, 8)), ("tg64x1", (0, 64, 1)),
    ("pp0", None), ("tg", None), ("pp5+", None), ("+tg5", None), ("fast", None), ("", None), ("tg64x0", None),
    ("tg64x", None), ("x8", None), ("tg64x257", None),
])
def test_llm_tests(name, expected):
    assert kinds.get("llm").parse_test(name) == expected


def test_every_kind_contract_is_whole():
    for c in kinds.contracts():
        assert c.NAME in kinds.names() and c.BACKEND.startswith("bench.backends.")
        assert "tests" in c.KEYS and callable(c.parse_test)
        assert c.PRICING is not None and c.PRICING.price_kind in ("llm", "stt", "tts", "image", "embed")
        for name in c.SHARES:
            assert name in columns.registry(), f"{c.NAME} shares an undeclared column {name}"
        for col in c.COLUMNS:
            assert c.NAME in columns.registry()[col.name].kinds


# ------------------------------------------------------------------------------------------------ registry


def test_registry_is_the_writers_columns_with_units_and_meanings():
    reg = columns.registry()
    assert list(reg) == COLUMNS
    assert len(set(COLUMNS)) == len(COLUMNS)
    for c in reg.values():
        assert c.meaning and c.group in columns.GROUPS
        if c.name.endswith("_per_s"):
            assert c.unit.endswith("/s"), c.name
        elif c.name.endswith("_s"):
            assert c.unit == "s", c.name
        if c.name.endswith("_w"):
            assert c.unit == "W", c.name
        if c.name.endswith("_j"):
            assert c.unit == "J", c.name
        if c.name.endswith("_gb"):
            assert c.unit == "GB", c.name  # 10^9 bytes; GiB columns say _gib
    assert reg["ram_gib"].unit == "GiB" and "ram_gb" not in reg
    assert {"pp_tokens_per_s", "tg_tokens_per_s", "rtf", "chars_per_s", "s_per_image", "embed_tokens_per_s",
            "wall_s"} == set(
        columns.spread())
    assert reg["tg_tokens_per_s"].kinds == ("llm", "endpoint")
    assert set(reg["wer"].kinds) == {"asr", "tts"}


def test_derived_columns_fill_from_the_row():
    row = columns.derive({"kind": "endpoint", "energy_j": 10.0, "output_tokens": 40, "failed": 1, "requests": 8,
                          "idle_power_w": 2.0, "wall_s": 3.0})
    assert row["j_per_output_token"] == 0.25 and row["failure_rate"] == 0.125 and row["net_energy_j"] == 4.0
    row = columns.derive({"kind": "asr", "energy_j": None, "wall_s": 3.0})
    assert row["net_energy_j"] is None and "j_per_output_token" not in row  # not an asr column


def test_documented_column_table_is_the_registry():
    doc = (REPO / "docs" / "result-columns.md").read_text()
    m = re.search(r"<!-- columns:start -->\n(.*?)\n<!-- columns:end -->", doc, re.S)
    assert m, "docs/result-columns.md has no generated column table"
    assert m.group(1).strip() == columns.markdown_table(), "regenerate it with `shadowbench columns`"


def test_readme_first_screen_answers_a_question():
    """The README's first 40 lines hold a real `cost` answer (the command's own verdict line today) and the path from a
    GPU box to an answer; its longest table (the result columns) lives in docs/."""
    first = (REPO / "README.md").read_text().splitlines()[:40]
    verdict = next(x for x in first if x.startswith("verdict: "))
    r = run_cli("cost", "--requests-per-day", 1500, "--prompt-tokens", 600, "--output-tokens", 150, "--api",
                "claude-haiku-4-5", "--build", "rtx3090", "--usd-per-kwh", "0.31", "--hours-per-day", "24")
    assert r.stdout.splitlines()[0] == verdict
    for command in ("make bench", "make report", "shadowbench cost", "git add results"):
        assert any(x.startswith(command) for x in first), command
    assert "<!-- columns:start -->" not in (REPO / "README.md").read_text()


def test_schema_history_and_migration(tmp_path):
    assert set(columns.SCHEMA_HISTORY) == set(range(1, columns.SCHEMA_VERSION + 1))
    assert set(columns.MIGRATIONS) == set(range(1, columns.SCHEMA_VERSION))
    old = [c if c != "ram_gib" else "ram_gb" for c in COLUMNS if c != "failure_rate"]
    p = tmp_path / "v1.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, old)
        w.writeheader()
        w.writerow({c: "" for c in old} | {"schema_version": "1", "ram_gb": "23.4", "run_id": "r"})
    [row] = read_rows(p)
    assert row["schema_version"] == str(columns.SCHEMA_VERSION) and row["ram_gib"] == "23.4" and "ram_gb" not in row


def test_committed_v1_results_still_read():
    from .conftest import FIXTURE_ROWS

    for path in sorted(FIXTURE_ROWS.rglob("*.csv")):
        if not path.name.endswith(".power.csv"):
            rows = read_rows(path)
            assert rows and all(r["ram_gib"] for r in rows)


# ------------------------------------------------------------------------------------------ layer boundaries


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_bench_imports_nothing_from_analysis_and_cost_formulas_are_pure():
    for path in (REPO / "bench").rglob("*.py"):
        assert not any(m.split(".")[0] in ("analysis", "shadowbench") for m in _imports(path)), path
        assert "__import__(" not in path.read_text(), path
    assert not any(m.split(".")[0] in ("pandas", "matplotlib") for m in _imports(REPO / "analysis" / "cost.py"))


def test_llm_speech_and_validation_never_import_torch():
    import subprocess
    import sys

    code = """
import sys
from bench.config import load_suite
from bench import commands, runner, energy, models
import bench.backends.llm, bench.backends.asr, bench.backends.tts
load_suite('suites/quick.toml')
assert 'torch' not in sys.modules, 'torch was imported'
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


# ---------------------------------------------------------------------------------- failures stay contained


def _run_fake(tmp_path, fail_first):
    suite = fake_suite(tmp_path)
    clock = SimClock()
    made = {}

    def create(workload, model_path):
        made[workload.name] = FakeBackend(workload, clock, fail_first if workload.name == "first" else None)
        return made[workload.name]

    runner = Runner(suite, NullMeter(clock), tmp_path / "res", "box", [], console=Console(file=open(
        tmp_path / "console.txt", "w"), width=200), show_progress=False, idle_s=0, create_backend=create,
                    launcher="inline")
    outcome = runner.run()
    return outcome, read_rows(outcome.path), made, (tmp_path / "console.txt").read_text()


def test_runtime_error_on_second_repetition_keeps_the_first_row_and_the_suite_runs_on(tmp_path):
    outcome, rows, made, console = _run_fake(tmp_path, ("run", 2))
    assert [(r["workload"], r["test"], r["repetition"]) for r in rows] == [
        ("first", "tg4", "1"),  # the failed test's first repetition is kept
        ("first", "pp8", "1"), ("first", "pp8", "2"), ("first", "pp8", "3"),  # the workload's next test runs
        ("second", "tg4", "1"), ("second", "tg4", "2"), ("second", "tg4", "3")]  # so does the next workload
    assert float(rows[0]["wall_s"]) == pytest.approx(0.5)  # the fake clock's window
    [(what, msg)] = outcome.failures
    assert what == "first/tg4 repetition 2" and msg == "RuntimeError: boom in run"
    assert outcome.exit_status == 1
    assert "first/tg4 repetition 2: RuntimeError: boom in run; skipping the rest of the test" in console
    assert made["first"].unloaded and made["second"].unloaded


@pytest.mark.parametrize("fail, what, kept", [
    (("load",), "first", 3),  # the workload is skipped, the next one runs
    (("prepare",), "first/tg4", 3),  # every prepare of the first workload fails: both its tests are skipped
    (("check", 1), "first/tg4 repetition 1 (check)", 1 + 3 + 3),  # the measured row is kept without its check
])
def test_failures_anywhere_in_a_backend_are_contained(tmp_path, fail, what, kept):
    outcome, rows, made, _ = _run_fake(tmp_path, fail)
    assert len(rows) == kept
    assert outcome.failures[0][0] == what and "RuntimeError: boom in" in outcome.failures[0][1]
    assert outcome.exit_status == 1
    assert rows[-1]["workload"] == "second"


def test_bad_input_from_a_backend_keeps_exit_status_2(tmp_path):
    from bench.errors import ModelNotFound

    outcome, rows, _, _ = _run_fake(tmp_path, ("load", None, ModelNotFound("gone")))
    assert outcome.exit_status == 2 and [r["workload"] for r in rows] == ["second"] * 3


def test_out_of_memory_is_said_in_words(tmp_path):
    class OutOfMemoryError(RuntimeError):  # torch.OutOfMemoryError's name and base
        pass

    from bench.errors import OutOfMemory, is_out_of_memory

    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA failed with error out of memory"))  # CTranslate2
    assert not is_out_of_memory(ValueError("out of memory"))
    msg = str(OutOfMemory("1 image(s) of 1024x1024 on cuda", OutOfMemoryError("CUDA out of memory.\ntrace")))
    assert msg == ("1 image(s) of 1024x1024 on cuda needs more GPU memory than is free "
                   "(OutOfMemoryError: CUDA out of memory.)")


def test_ctrl_c_is_not_contained(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run_fake(tmp_path, ("run", 2, KeyboardInterrupt()))
    [path] = (tmp_path / "res" / "box").glob("*.csv")
    assert len(read_rows(path)) == 1  # the completed row is on disk


# ----------------------------------------------------------------------------------------- meter on a clock


class CounterPart(Part):
    """A CPU-like part whose counter integrates a power the test sets, on the test's clock."""

    source = "rapl"

    def __init__(self, clock):
        super().__init__(clock)
        self.watts, self.energy, self.t_last = 50.0, 0.0, clock()

    def counter_j(self):
        now = self.clock()
        self.energy += self.watts * (now - self.t_last)
        self.t_last = now
        return self.energy


def test_composite_meter_on_a_fake_clock():
    clock = SimClock()
    part = CounterPart(clock)
    meter = EnergyMeter([part], sample_hz=10, clock=clock)  # not started: the test ticks it
    meter.tick()
    meter.begin("w")
    for i in range(20):  # 2 s: 50 W for 1 s, then 150 W
        clock.t += 0.1
        part.watts = 50.0 if i < 10 else 150.0
        meter.tick()
    w = meter.end("w")
    assert w.duration_s == pytest.approx(2.0)
    assert w.energy_j == pytest.approx(50 + 150, rel=1e-9)  # the counter
    assert w.energy_source == "rapl" and w.cpu_energy_source == "rapl"
    assert w.avg_power_w == pytest.approx(w.energy_j / 2.0) and w.peak_power_w == pytest.approx(150.0)


def test_null_meter_leaves_energy_empty():
    clock = SimClock()
    m = NullMeter(clock)
    m.begin("x")
    clock.t += 1.5
    w = m.end("x")
    assert w.duration_s == 1.5 and w.energy_j is None and w.columns()["energy_source"] == "none"


def test_config_error_for_unknown_kind_lists_the_registry(write_suite):
    with pytest.raises(ConfigError, match="one of asr, embed, endpoint, image, llm, tts"):
        load_suite(write_suite(ENDPOINT_SUITE.format(step="c1").replace('"endpoint"', '"video"')))


def test_no_test_reads_the_repositorys_results_folder():
    """results/ holds whatever runs a user chose to commit: a test that read it would change its answer (or fail)
    when they add a machine folder or regenerate the report. Tests take rows from tests/data/results."""
    here = Path(__file__).parent
    pattern = re.compile(r"""REPO\s*/\s*["']results\b|Path\(\s*["']results\b""")
    offenders = [f"{p.name}:{i}" for p in sorted(here.glob("*.py")) if p.name != "golden.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
