"""Power-limit sweeps through fake NVML: the limit is honoured (power capped at it, settable within the card's
constraints, NO_PERMISSION without root), the knee is found where the fake card puts it, and the original limit
goes back after a normal run, a failed workload, SIGINT, SIGTERM and (through the record) SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from analysis import powersweep
from analysis.report import write_report
from bench.config import load_suite
from bench.energy import EnergyMeter
from bench.energy.nvml import NVML, NVMLPart
from bench.runner import Runner

from .conftest import REPO
from .fake_nvml import LimitedFakeNVML

LIMITS = [150, 175, 200, 225, 250, 275, 300, 325, 350]
# the card's speed at each limit, as a share of its full speed: power min(limit, 260 W) over this gives energy per
# token 272, 243, 233 (the minimum: the knee at 200 W), 242, 258, 260, 260, 260, 260 (per unit of full speed)
SPEED = {150: 0.55, 175: 0.72, 200: 0.86, 225: 0.93, 250: 0.97, 275: 1.0, 300: 1.0, 325: 1.0, 350: 1.0}
FULL_TOKENS_PER_S = 800.0

SWEEP_SUITE = """
[suite]
name = "sweep"
[defaults]
warmups = 1
repetitions = 3
threads = 1
[energy]
idle_s = 0
[sweep]
power_limit_w = {limits}
settle_s = {settle}
[[workloads]]
name = "decode"
kind = "llm"
model = "bundled:smollm2"
tests = ["tg320"]
"""


class KneeBackend:
    """A decode whose speed is the fake card's at its current limit; the card is busy while it works."""

    name = "fake-gpu-decode"

    def __init__(self, card: LimitedFakeNVML, fail_at_w: float | None = None):
        self.card, self.fail_at_w = card, fail_at_w

    def load(self):
        pass

    def unload(self):
        pass

    def settings(self):
        return {"threads": 1}

    def prepare(self, test):
        pass

    def run(self, test):
        if self.fail_at_w is not None and self.card.limit_w == self.fail_at_w:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        tokens = 320
        speed = FULL_TOKENS_PER_S * SPEED[round(self.card.limit_w)]
        self.card.busy = True
        t0 = time.perf_counter()
        time.sleep(tokens / speed)
        self.card.busy = False
        return {"output_tokens": tokens, "tg_tokens_per_s": tokens / (time.perf_counter() - t0), "prompt_tokens": 1}


def _sweep_run(tmp_path, card, backend, limits=LIMITS):
    suite_path = tmp_path / "sweep.toml"
    suite_path.write_text(SWEEP_SUITE.format(limits=limits, settle=0))
    session = NVML.open(card)
    meter = EnergyMeter([NVMLPart(session)], sample_hz=20)
    try:
        runner = Runner(load_suite(suite_path), meter, tmp_path / "results", "fakegpu", [], show_progress=False,
                        create_backend=lambda w, p: backend, nvml_module=card, launcher="inline")
        return runner.run()
    finally:
        meter.close()


@pytest.mark.slow
def test_the_knee_is_where_the_card_puts_it_and_the_limit_goes_back(tmp_path):
    from analysis import rows

    card = LimitedFakeNVML(busy_w=260, default_w=350)
    out = _sweep_run(tmp_path, card, KneeBackend(card))
    assert out.failures == [] and len(out.rows) == 3 * len(LIMITS)
    assert card.limit_w == 350 and card.limit_history[1:-1] == LIMITS[:] and card.limit_history[-1] == 350
    row = out.rows[0]
    assert (row["power_limit_min_w"], row["power_limit_default_w"], row["power_limit_max_w"]) == (100, 350, 400)
    df, problems = rows.load(tmp_path / "results")
    [c] = powersweep.curves(df)
    assert c.cls == "decode" and c.stock.limit_w == 350
    assert c.knee.limit_w == 200  # the lowest energy per token: 233 per unit of full speed
    assert c.keeps_95.limit_w == 250  # 97% of stock speed
    assert c.plateau_from_w == 275  # the card draws 260 W at any limit from there up
    by = {p.limit_w: p for p in c.points}
    assert by[200].energy_per_unit_j == pytest.approx(200 / (FULL_TOKENS_PER_S * 0.86), rel=0.05)
    assert by[350].avg_power_w == pytest.approx(260, rel=0.05) and by[150].avg_power_w == pytest.approx(150, rel=0.05)
    # the report: the knee table and plot for these rows
    report, _ = write_report(tmp_path / "results", plots=True, page=False)
    text = report.read_text()
    assert "## Power-limit sweep: the efficiency knee of each card" in text
    assert "| fakegpu / decode / tg320 | decode | 350 W | 200 W:" in text and "| 250 W | 275 W |" in text
    assert (tmp_path / "results" / "figures" / "power_sweep.png").stat().st_size > 10_000


def test_the_limit_goes_back_after_a_failed_workload(tmp_path):
    card = LimitedFakeNVML()
    out = _sweep_run(tmp_path, card, KneeBackend(card, fail_at_w=200), limits=[250, 200, 150])
    assert card.limit_w == 350 and 150 in card.limit_history  # the sweep went on, then put the original back
    assert any("illegal memory access" in msg for _, msg in out.failures)
    assert {r["power_limit_w"] for r in out.rows} == {250, 150}


def test_without_root_nothing_is_measured_and_the_command_is_said(tmp_path):
    from bench.errors import ShadowbenchError

    card = LimitedFakeNVML(root=False)
    with pytest.raises(ShadowbenchError, match=r"needs root: .*sudo nvidia-smi -i 0 -pl 250") as e:
        _sweep_run(tmp_path, card, KneeBackend(card), limits=[250])
    assert e.value.exit_status == 2 and card.limit_w == 350
    assert not list((tmp_path / "results").rglob("*.csv"))


def test_limits_outside_the_cards_constraints_are_refused(tmp_path):
    from bench.errors import ShadowbenchError

    card = LimitedFakeNVML(min_w=100, max_w=400)
    with pytest.raises(ShadowbenchError, match="outside what .* accepts: 100–400 W"):
        _sweep_run(tmp_path, card, KneeBackend(card), limits=[450])
    assert card.limit_history == [350]


# ------------------------------------------------------------------------------------------------ real signals

def _cli(tmp_path, settle, root="1"):
    state = tmp_path / "gpu-state.json"
    suite = tmp_path / "sweep.toml"
    suite.write_text(SWEEP_SUITE.format(limits=[250, 200], settle=settle).replace('tests = ["tg320"]',
                                                                                 'tests = ["tg4"]'))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tests' / 'fake_gpu'}{os.pathsep}{REPO}", "FAKE_GPU_STATE": str(state),
           "FAKE_GPU_ROOT": root}
    cmd = [sys.executable, "-m", "shadowbench", "run", str(suite), "--results-dir", str(tmp_path / "res"),
           "--no-progress", "--meter", "estimate"]
    return cmd, env, state


def _limit(state) -> float | None:
    return json.loads(state.read_text())["limit_mw"] / 1000 if state.exists() else None


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_mid_sweep_puts_the_limit_back(tmp_path, sig):
    cmd, env, state = _cli(tmp_path, settle=60)
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _limit(state) != 250 and time.time() < deadline:  # the sweep set its first limit and is settling
        time.sleep(0.2)
    assert _limit(state) == 250
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert _limit(state) == 350 and "restored the power limit" in err
    from bench.powerlimit import record_path

    assert not record_path().exists()


@pytest.mark.slow
def test_after_a_sigkill_the_next_run_finds_the_record_and_restores(tmp_path):
    from bench.powerlimit import record_path

    cmd, env, state = _cli(tmp_path, settle=60)
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while _limit(state) != 250 and time.time() < deadline:
        time.sleep(0.2)
    p.kill()
    p.wait(timeout=30)
    assert _limit(state) == 250 and record_path().exists()
    rec = json.loads(record_path().read_text())
    assert list(rec["cards"].values())[0]["limit_w"] == 350
    r = subprocess.run([sys.executable, "-m", "shadowbench", "restore-power-limit"], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "restored the power limit of NVIDIA GeForce RTX 3090 (GPU 0) to 350 W" in r.stdout
    assert _limit(state) == 350 and not record_path().exists()
    # the same from the start of a run: kill again, and a normal run begins by restoring
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while _limit(state) != 250 and time.time() < deadline + 60:
        time.sleep(0.2)
    p.kill()
    p.wait(timeout=30)
    cmd2, env2, _ = _cli(tmp_path, settle=0)
    r = subprocess.run(cmd2, env=env2, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "power limit: restored the power limit" in r.stderr and _limit(state) == 350


@pytest.mark.parametrize("sweep, key, expected", [
    ("settle_s = 5", "sweep.power_limit_w", "power_limit_w or power_limit_pct"),
    ("power_limit_w = [300, 300]", "sweep.power_limit_w", "distinct"),
    ("power_limit_pct = [5]", "sweep.power_limit_pct", "10-150"),
    ("power_limit_w = [300]\nsettle_s = -1", "sweep.settle_s", "0-600"),
    ("power_limit_w = [300]\nwatts = 3", "sweep.watts", "known keys"),
])
def test_bad_sweep_tables_name_the_key(tmp_path, sweep, key, expected):
    from bench.errors import ConfigError

    p = tmp_path / "s.toml"
    p.write_text(SWEEP_SUITE.format(limits=[1], settle=0).replace("power_limit_w = [1]\nsettle_s = 0", sweep))
    with pytest.raises(ConfigError) as e:
        load_suite(p)
    assert e.value.key == key and expected in str(e.value)


# ------------------------------------------------------------------- whose record: a live sweep is never undone


@pytest.fixture
def other_sweep():
    """Another process holding a power-limit record: a live one (a sleeping child), and its card at 250 W."""
    import psutil

    from bench.powerlimit import record_path

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    card = LimitedFakeNVML(default_w=350)
    card.limit_w = 250.0  # the other sweep set it
    card.nvmlInit()
    uuid = card.nvmlDeviceGetUUID("handle-0")

    def write(pid, started, limit_w=350):
        record_path().parent.mkdir(parents=True, exist_ok=True)
        record_path().write_text(json.dumps({"pid": pid, "started": started, "utc": "2026-12-05T00:00:00+00:00",
                                             "cards": {uuid: {"index": 0, "name": card.name, "limit_w": limit_w}}}))
    write(child.pid, psutil.Process(child.pid).create_time())
    yield card, child, write
    child.kill()
    child.wait()
    record_path().unlink(missing_ok=True)


def test_a_plain_run_leaves_a_live_sweeps_limit_alone(other_sweep):
    from bench.powerlimit import record_path, restore_pending

    card, child, _ = other_sweep
    said = restore_pending(card)
    assert said == [f"a power-limit sweep is running: pid {child.pid} (started " + said[0].split("(started ")[1]]
    assert "holds the GPU limits" in said[0] and "left alone" in said[0]
    assert card.limit_w == 250 and record_path().is_file()


def test_a_second_sweep_is_refused_while_the_first_lives_and_nothing_changes(other_sweep, tmp_path):
    from bench.errors import ShadowbenchError

    card, child, _ = other_sweep
    holder = rf"another power-limit sweep holds the GPU limits: pid {child.pid} "
    with pytest.raises(ShadowbenchError, match=holder) as e:
        _sweep_run(tmp_path, card, KneeBackend(card), limits=[200])
    assert e.value.exit_status == 2
    assert card.limit_w == 250 and card.limit_history == [350]  # never set by this run
    assert not list((tmp_path / "results").rglob("*.csv"))


def test_a_dead_owners_record_is_restored_and_a_reused_pid_is_not_its_owner(other_sweep):
    from bench.powerlimit import record_path, restore_pending

    card, child, write = other_sweep
    write(child.pid, started=12345.0)  # the pid is alive, but another process than the one that wrote the record
    assert restore_pending(card) == ["restored the power limit of NVIDIA GeForce RTX 3090 (GPU 0) to 350 W"]
    assert card.limit_w == 350 and not record_path().exists()
    child.kill()
    child.wait()
    card.limit_w = 250.0
    write(child.pid, started=None)  # its owner is gone
    assert restore_pending(card) == ["restored the power limit of NVIDIA GeForce RTX 3090 (GPU 0) to 350 W"]
    assert card.limit_w == 350


def test_a_sweep_takes_over_a_dead_owners_record_keeping_the_cards_own_limit(other_sweep, tmp_path):
    card, child, _ = other_sweep
    child.kill()
    child.wait()
    out = _sweep_run(tmp_path, card, KneeBackend(card), limits=[200])
    assert out.failures == [] and card.limit_w == 350  # the original of the record, not the 250 W it found


@pytest.mark.parametrize("text", ["{not json", json.dumps({"pid": 1, "cards": {"GPU-x": {"limit_w": "NaN"}}}),
                                  json.dumps({"pid": 1, "cards": {"GPU-x": {"limit_w": -5}}}),
                                  json.dumps({"cards": {"GPU-x": {"limit_w": 300}}}), json.dumps([1, 2])])
def test_an_unreadable_record_is_one_line_and_exit_2(text):
    from bench.powerlimit import record_path

    from .conftest import run_cli

    record_path().parent.mkdir(parents=True, exist_ok=True)
    record_path().write_text(text)
    try:
        r = run_cli("restore-power-limit", env={"XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]})
    finally:
        record_path().unlink()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "power-limit record" in line and "is unreadable" in line and "nvidia-smi" in line
