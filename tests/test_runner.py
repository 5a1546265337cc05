"""End to end through the CLI: real SmolLM2 inference, rows on disk, interruption, never overwriting."""
import csv
import signal
import subprocess
import sys
import time

import pytest

from bench.errors import ConfigError
from bench.results import COLUMNS, REQUIRED, ResultWriter, read_rows

from .conftest import REPO, TINY_LLM_SUITE, run_cli


def _csvs(folder):
    """Result files (not the power series beside them)."""
    return sorted(p for p in folder.rglob("*.csv") if not p.name.endswith(".power.csv"))


@pytest.mark.slow
def test_run_writes_one_row_per_repetition(write_suite, tmp_path):
    suite = write_suite(TINY_LLM_SUITE.format(reps=3, tests='["pp64", "tg16", "pp48+tg12"]'))
    res = tmp_path / "results"
    r = run_cli("run", suite, "--results-dir", res, "--machine", "box-a", "--no-progress", "--idle-s", "1")
    assert r.returncode == 0, r.stderr
    assert "idle power" in r.stderr
    [path] = _csvs(res)
    power = path.with_suffix(".power.csv")
    assert power.exists() and len(power.read_text().splitlines()) > 5  # 10 Hz samples of the whole run
    assert path.parent.name == "box-a" and path.name.endswith("-tiny.csv")
    rows = read_rows(path)
    assert len(rows) == 9
    assert [(x["test"], x["repetition"]) for x in rows] == [
        (t, str(i)) for t in ("pp64", "tg16", "pp48+tg12") for i in (1, 2, 3)]
    for row in rows:
        # no GPU and no RAPL here: the labeled estimate, with the idle baseline beside it
        assert row["energy_source"] == "estimated" and row["cpu_energy_source"] == "estimated"
        assert float(row["energy_j"]) > 0 and "CPU time x" in row["energy_note"]
        assert row["idle_power_w"] != "" and float(row["idle_power_w"]) >= 0
        assert float(row["net_energy_j"]) == pytest.approx(
            float(row["energy_j"]) - float(row["idle_power_w"]) * float(row["wall_s"]), rel=1e-4, abs=1e-4)
        assert float(row["wall_s"]) > 0
        assert row["model_sha256"] and len(row["model_sha256"]) == 64
        assert row["machine"] == "box-a" and row["threads"] == "2" and row["kind"] == "llm"
        assert row["cpu_model"] and row["packages"].startswith("shadowbench=")
    by_test = {t: [x for x in rows if x["test"] == t] for t in ("pp64", "tg16", "pp48+tg12")}
    assert all(float(x["pp_tokens_per_s"]) > 0 and x["tg_tokens_per_s"] == "" for x in by_test["pp64"])
    assert all(float(x["tg_tokens_per_s"]) > 0 and x["output_tokens"] == "16" for x in by_test["tg16"])
    assert all(x["prompt_tokens"] == "48" and x["output_tokens"] == "12" for x in by_test["pp48+tg12"])
    # the summary table names every test
    for t in by_test:
        assert t in r.stdout
    assert "9 rows written" in r.stdout


@pytest.mark.slow
def test_meter_none_leaves_energy_empty(write_suite, tmp_path):
    suite = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]'))
    r = run_cli("run", suite, "--results-dir", tmp_path, "--no-progress", "--meter", "none")
    assert r.returncode == 0, r.stderr
    [row] = read_rows(_csvs(tmp_path)[0])
    assert row["energy_source"] == "none" and row["energy_j"] == ""  # never a 0 that looks measured
    assert row["idle_power_w"] == "" and row["net_energy_j"] == ""


@pytest.mark.slow
def test_failing_workload_does_not_stop_the_others(write_suite, tmp_path):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"not a gguf file at all")
    suite = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]') + f"""
[[workloads]]
name = "broken"
kind = "llm"
model = "{gguf}"
tests = ["tg4"]

[[workloads]]
name = "after"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 256
tests = ["tg4"]
""")
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress", "--idle-s", "0")
    assert r.returncode == 1
    assert "broken" in r.stderr
    rows = read_rows(_csvs(tmp_path / "res")[0])
    assert [x["workload"] for x in rows] == ["smol", "after"]


@pytest.mark.slow
def test_sigint_keeps_every_completed_row(write_suite, tmp_path):
    suite = write_suite(TINY_LLM_SUITE.format(reps=200, tests='["pp64"]'))
    res = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "shadowbench", "run", str(suite), "--results-dir", str(res),
                             "--no-progress", "--idle-s", "0"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            files = _csvs(res)
            if files and len(files[0].read_text().splitlines()) >= 4:  # header + 3 rows
                break
            time.sleep(0.05)
        else:
            pytest.fail("no rows appeared")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    rows = read_rows(files[0])  # readable: every line whole
    assert 3 <= len(rows) < 200
    assert [int(x["repetition"]) for x in rows] == list(range(1, len(rows) + 1))
    assert all(float(x["pp_tokens_per_s"]) > 0 for x in rows)


def test_result_file_is_never_overwritten(tmp_path):
    p = tmp_path / "x.csv"
    with ResultWriter(p) as a, ResultWriter(p) as b:
        a.write({"schema_version": 1, "run_id": "a"})
        b.write({"schema_version": 1, "run_id": "b"})
    assert a.path != b.path
    assert [r["run_id"] for r in read_rows(a.path)] == ["a"]
    assert [r["run_id"] for r in read_rows(b.path)] == ["b"]


def test_unknown_column_is_refused(tmp_path):
    with ResultWriter(tmp_path / "x.csv") as w, pytest.raises(ValueError, match="tokens_per_sec"):
        w.write({"tokens_per_sec": 1})


def _write(path, header, lines):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(header)
        wr.writerows(lines)


def test_read_rows_names_file_and_line(tmp_path):
    good = ["1"] + [""] * (len(COLUMNS) - 1)
    p = tmp_path / "missing.csv"
    _write(p, [c for c in COLUMNS if c != "energy_source"], [])
    with pytest.raises(ConfigError, match=r"missing.csv: line 1: expected the columns energy_source"):
        read_rows(p)
    p = tmp_path / "version.csv"
    _write(p, COLUMNS, [good, ["99"] + good[1:]])
    with pytest.raises(ConfigError, match=r"version.csv: line 3: schema_version: expected a schema version "
                                          r"shadowbench reads \(1, 2\), got '99'"):
        read_rows(p)
    p = tmp_path / "corrupt.csv"
    _write(p, COLUMNS, [good, good[:5]])
    with pytest.raises(ConfigError, match=r"corrupt.csv: line 3: expected \d+ fields"):
        read_rows(p)
    assert set(REQUIRED) <= set(COLUMNS)
