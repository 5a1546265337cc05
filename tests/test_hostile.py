"""Hostile and broken inputs, as an unlucky or hostile user would give them: each ends in one line and the right
exit status, never in a traceback, and nothing impossible is priced. (The page's escaping is checked in Chromium in
test_page.py, the power-limit records in test_powersweep.py, the plugs in test_guards.py, the signals there too.)"""
import csv
import io
import json

import pytest

from .conftest import FIXTURE_MACHINE, cost_json, run_cli


def _edit(results, name, change):
    """Rewrite the fixture's quick run file ``name`` with ``change(row)`` applied to each row."""
    [f] = [p for p in results.rglob(name)]
    rows = list(csv.DictReader(open(f, newline="")))
    for r in rows:
        change(r)
    with open(f, "w", newline="") as out:
        w = csv.DictWriter(out, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return f


@pytest.mark.parametrize("column, value", [("tg_tokens_per_s", "-1.4"), ("energy_j", "inf"), ("wall_s", "1e400"),
                                           ("pp_tokens_per_s", "-inf"), ("avg_power_w", "-5")])
def test_impossible_values_are_named_and_left_out(committed_results, column, value):
    from analysis import rows

    def poison(r):
        if r["test"] == "tg128" and r["repetition"] == "1" and r["kind"] == "llm":
            r[column] = value
    f = _edit(committed_results, "20261125T234133Z-quick.csv", poison)
    df, problems = rows.load(committed_results)
    said = [p for p in problems if f.name in p]
    assert len(said) == 1 and f"{column}: expected a finite number >= 0 or empty" in said[0] or (
        column == "wall_s" and "wall_s: expected" in said[0]), problems
    assert "the row is left out" in said[0]
    left = df[(df["file"].str.endswith(f.name)) & (df["test"] == "tg128") & (df["kind"] == "llm")]
    assert sorted(left["repetition"]) == [2, 3]


def test_a_negative_speed_is_never_priced(committed_results):
    def poison(r):
        if r["kind"] == "llm" and r["test"] == "tg128":
            r["tg_tokens_per_s"] = "-1.4"
    for name in ("20261125T075848Z-quick.csv", "20261125T195327Z-quick.csv", "20261125T215918Z-quick.csv",
                 "20261125T234133Z-quick.csv"):
        _edit(committed_results, name, poison)
    c = cost_json(committed_results, ["--requests-per-day", "100", "--api", "gpt-4o-mini", "--build", "ci-cpu-vm",
                                      "--machine", FIXTURE_MACHINE, "--workload", "smollm2-135m-q4_1",
                                      "--prompt-tokens", "0", "--output-tokens", "128"])
    assert c["busy_hours_per_day"] > 0 and c["monthly"]["energy_usd"] >= 0


@pytest.mark.parametrize("flag, value, expected", [
    ("--requests-per-day", "1e308", "a number from 0 to 1e+12"), ("--requests-per-day", "nan", "a number from 0"),
    ("--prompt-tokens", "99999999999", "a whole number from 0 to 10,000,000"),
    ("--usd-per-kwh", "1e300", "a price from 0 to 100"), ("--hardware-usd", "1e300", "a price from 0 to 1e+09"),
    ("--lifetime-years", "1e6", "a number of years > 0 and <= 100"), ("--idle-w", "-5", "watts from 0 to 1,000,000")])
def test_numbers_no_box_or_bill_has_are_refused(flag, value, expected):
    args = {"--requests-per-day": "100", "--api": "gpt-4o-mini", "--build": "rtx3090"}
    args[flag] = value
    r = run_cli("cost", *[x for kv in args.items() for x in kv])
    assert r.returncode == 2 and r.stdout == ""
    [line] = r.stderr.strip().splitlines()
    assert f"{flag}: expected {expected}" in line


def test_compare_csv_cells_never_start_a_formula(committed_results):
    def name(r):
        r["workload"] = "=cmd|' /C calc'!A0"
    for f in committed_results.rglob("*-quick.csv"):
        _edit(committed_results, f.name, name)
    r = run_cli("compare", "--results-dir", committed_results, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and all(x["workload"] == "'=cmd|' /C calc'!A0" for x in rows if "calc" in x["workload"])
    assert not any(v.startswith(("=", "+", "@")) for x in rows for v in x.values())
    # numbers stay numbers
    assert all(float(x["ratio"]) > 0 for x in rows)


def test_a_refused_plug_url_is_exit_2_with_its_secret_masked(write_suite, tmp_path):
    from .conftest import TINY_LLM_SUITE

    suite = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]'))
    r = run_cli("run", suite, "--results-dir", tmp_path, "--no-progress", "--idle-s", "0",
                "--wall", "shelly://admin:hunter2@10.0.0.5")
    assert r.returncode == 2 and "hunter2" not in r.stderr + r.stdout
    [line] = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert "wall: expected shelly://HOST" in line and "shelly://***@10.0.0.5" in line
    assert not list(tmp_path.rglob("*.csv"))  # nothing ran


def test_calibrate_refuses_a_plug_that_measured_nothing(committed_results):
    def zero(r):
        r["wall_energy_j"], r["wall_idle_power_w"] = "0", "0"
    _edit(committed_results, "20261125T234133Z-quick.csv", zero)
    r = run_cli("calibrate", "--machine", FIXTURE_MACHINE, "--results-dir", committed_results)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "20261125T234133Z-quick.csv" in line and "expected a finite number > 0" in line
    assert not (committed_results / FIXTURE_MACHINE / "calibration.toml").exists()


@pytest.mark.parametrize("text, key", [("[wall]\nratio = inf\n", "ratio = inf"), ("[wall]\nratio = -49.68\n", "ratio"),
                                      ("[wall]\nratio = 1.2\nidle_w = -5\n", "idle_w = -5"),
                                      ('[wall]\nratio = 1.2\n[workloads."x"]\nratio = nan\n', "ratio = nan")])
def test_a_calibration_edited_into_nonsense_is_refused(committed_results, text, key):
    (committed_results / FIXTURE_MACHINE / "calibration.toml").write_text(text)
    r = run_cli("cost", "--requests-per-day", "100", "--api", "gpt-4o-mini", "--build", "ci-cpu-vm",
                "--results-dir", committed_results, "--machine", FIXTURE_MACHINE)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "calibration.toml: wall: expected a calibration written by `shadowbench calibrate`" in r.stderr
    assert key in r.stderr


def test_tracebacks_that_became_one_line_errors(committed_results, tmp_path):
    # report --out into a folder that does not exist: said before any work
    r = run_cli("report", "--results-dir", committed_results, "--out", tmp_path / "nope" / "R.md")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"shadowbench: error: {tmp_path / 'nope' / 'R.md'}: --out: expected a file in an existing folder, "
        f"got <no folder {tmp_path / 'nope'}>"]
    # cost from rows that have tg tests only, for a request with a prompt
    only = tmp_path / "only" / "box"
    only.mkdir(parents=True)
    src = next(committed_results.rglob("20261125T234133Z-quick.csv"))
    rows = [x for x in csv.DictReader(open(src, newline="")) if x["test"] == "tg128" and x["kind"] == "llm"]
    for x in rows:
        x["machine"] = "box"
    with open(only / src.name, "w", newline="") as out:
        w = csv.DictWriter(out, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = run_cli("cost", "--requests-per-day", "100", "--api", "gpt-4o-mini", "--build", "rtx3090",
                "--results-dir", only.parent, "--machine", "box", "--workload", "smollm2-135m-q4_1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--workload: expected LLM rows with a tg test (tg128) and a pp test (pp512)" in r.stderr
    assert "got <rows of tg128 only>" in r.stderr
    # the same rows answer a request without a prompt
    c = json.loads(run_cli("cost", "--json", "--requests-per-day", "100", "--api", "gpt-4o-mini", "--build",
                           "rtx3090", "--results-dir", only.parent, "--machine", "box", "--workload",
                           "smollm2-135m-q4_1", "--prompt-tokens", "0", "--output-tokens", "128").stdout)
    assert c["busy_hours_per_day"] > 0
