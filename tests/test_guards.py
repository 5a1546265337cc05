"""Unit tests that kill the mutants a mutation run found alive (docs/mutants.md): each asserts the exact behaviour a
small edit to the code would change: an exit status, a boundary, a unit, a guard. Hardware stays faked at its
boundary, as unkind as the real thing (tests/fake_nvml.py, tests/plugs.py)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from analysis import catalog, cost
from bench import signals
from bench.energy.composite import integrate
from bench.energy.nvml import NVML, NVMLPart
from bench.energy.wall import PlugError, Tasmota, WallPart
from bench.kinds import llm as llm_kind
from bench.results import ResultWriter, read_rows

from .fake_nvml import BOOT_ENERGY_MJ, FakeNVML, PowerTrace
from .plugs import Plug, Trace

# ------------------------------------------------------------------------------------- Ctrl-C and SIGTERM


@pytest.fixture
def handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    signals._received.clear()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_raises_and_is_remembered(handlers, sig):
    signals.install()
    signals.check()  # nothing received: no exception
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), sig)
        time.sleep(1)  # the handler runs at the next bytecode
    # a C library's callback swallowed the exception: check() still stops the run
    with pytest.raises(KeyboardInterrupt):
        signals.check()
    signals.install()  # a new run starts clean
    signals.check()


def test_an_interrupted_run_exits_130_and_says_what_was_kept(monkeypatch, write_suite, tmp_path, capsys):
    from bench import runner
    from shadowbench.cli import main

    from .conftest import TINY_LLM_SUITE

    class Interrupted:
        path = None

        def __init__(self, *a, **kw):
            pass

        def run(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "Runner", Interrupted)
    suite = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]'))
    status = main(["run", str(suite), "--results-dir", str(tmp_path), "--meter", "none", "--no-progress",
                   "--idle-s", "0", "--machine", "box"])
    assert status == 130
    assert "interrupted before any row was written: no file was left" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ result rows


def test_a_row_with_commas_quotes_and_newlines_reads_back_as_written(tmp_path):
    awkward = 'say "hi", then\nleave; a,b'
    with ResultWriter(tmp_path / "x.csv") as w:
        w.write({"schema_version": 2, "run_id": "r", "workload": awkward, "energy_note": "one, two\r\nthree"})
    [row] = read_rows(w.path)
    assert row["workload"] == awkward and row["energy_note"] == "one, two\r\nthree"


# ------------------------------------------------------------------------------------------------ pricing


def test_break_even_is_never_when_the_box_saves_nothing_and_exact_when_it_saves_a_cent():
    assert cost.breakeven_months(1000.0, 50.0, 50.0) is None  # saves $0: never
    assert cost.breakeven_months(1000.0, 50.0, 50.01) is None
    assert cost.breakeven_months(1000.0, 50.01, 50.0) == pytest.approx(1000 / 0.01)
    assert cost.breakeven_months(None, 50.0, 10.0) is None  # no hardware price: no break-even
    assert cost.breakeven_months(1000.0, 60.0, 10.0) == 20.0
    assert cost.fmt_months(None) == "never"
    assert cost.fmt_months(23.99) == "24.0 months" and cost.fmt_months(24.0) == "24.0 months (2.0 years)"


def test_over_capacity_gives_no_break_even_on_either_local_figure():
    b = catalog.build("rtx4060ti")
    unit = cost.LocalUnit(seconds=3.6, device_energy_j=100.0, basis="measured")  # 8 h/day: 8,000 tasks
    assert cost.capacity_per_day(unit.seconds, b.hours_per_day) == pytest.approx(b.hours_per_day * 1000)
    cap = b.hours_per_day * 1000
    # just under capacity, an API at $1 a task pays the box back; one task over, no break-even is claimed
    api, local, be, over = cost.breakeven_at(cap - 1, 1.0, unit, b, 0.12)
    assert not over and be == pytest.approx(b.hardware_usd / (api - local))
    api, local, be, over = cost.breakeven_at(cap + 1, 1.0, unit, b, 0.12)
    assert over and be is None and api == pytest.approx((cap + 1) * cost.DAYS_PER_MONTH)
    _, _, be, over = cost.breakeven_at(cap + 1, 1.0, unit, b, 0.12, flat_local_monthly=9.0)
    assert over and be is None
    _, _, be, over = cost.breakeven_at(cap, 1.0, unit, b, 0.12, flat_local_monthly=9.0)
    assert not over and be == pytest.approx(b.hardware_usd / (cap * cost.DAYS_PER_MONTH - 9.0))


# ------------------------------------------------------------------------------------------ test grammar


def test_the_parallel_sequence_limit_is_inclusive():
    top = llm_kind.MAX_PARALLEL
    assert llm_kind.parse_test(f"pp8+tg8x{top}") == llm_kind.LLMTest(8, 8, top)
    assert llm_kind.parse_test(f"pp8+tg8x{top + 1}") is None
    assert llm_kind.parse_test("pp1") == llm_kind.LLMTest(1, 0, 1)
    assert llm_kind.parse_test("tg1") == llm_kind.LLMTest(0, 1, 1)
    assert llm_kind.parse_test("pp0") is None and llm_kind.parse_test("tg0") is None
    assert llm_kind.parse_test(f"each{llm_kind.MAX_BATCH_ITEMS}") == llm_kind.Batch(False, llm_kind.MAX_BATCH_ITEMS)
    assert llm_kind.parse_test(f"collect{llm_kind.MAX_BATCH_ITEMS + 1}") is None


# ---------------------------------------------------------------------------------------------- integrate


def test_integrate_needs_samples_that_cover_the_window():
    flat = [(t / 10, 100.0) for t in range(0, 31)]  # 100 W from 0 to 3 s
    assert integrate(flat, 1.0, 2.0) == pytest.approx(100.0)
    assert integrate(flat, 0.0, 3.0) == pytest.approx(300.0)
    # a quarter second of slack at each edge (a sample just outside is interpolated); more is a gap
    assert integrate(flat, -0.2, 3.2) == pytest.approx(340.0)
    assert integrate(flat, -0.3, 2.0) is None
    assert integrate(flat, 1.0, 3.3) is None
    assert integrate(flat[:1], 0.0, 0.0) is None
    ramp = [(0.0, 0.0), (1.0, 100.0), (2.0, 100.0)]
    assert integrate(ramp, 0.5, 1.5) == pytest.approx(87.5)  # 0.5 s from 50 to 100 W (37.5 J) + 0.5 s at 100 W


# ---------------------------------------------------------------------------------------------------- NVML


def _part(fake):
    part = NVMLPart(NVML.open(fake))
    part.open()
    return part


def test_without_the_instant_field_power_is_read_in_milliwatts_from_the_one_second_average():
    trace = PowerTrace(idle_s=0.0, ramp_s=0.0, horizon_s=5.0)
    fake = FakeNVML(trace, has_instant=False)
    part = _part(fake)
    assert not part.has_instant
    time.sleep(1.05)  # past the first second, so the 1 s average is of the plateau alone
    w = part.power_w()
    assert 0.9 * trace.peak_w < w < 1.1 * trace.peak_w  # W, not mW (x1000) and not kW (/1000)
    [fv] = fake.nvmlDeviceGetFieldValues("handle-0", [fake.NVML_FI_DEV_POWER_INSTANT])
    assert fv.nvmlReturn == fake.NVML_ERROR_NOT_SUPPORTED


def test_two_gpus_are_summed_and_a_counter_that_starts_high_counts_from_the_window():
    trace = PowerTrace(idle_s=0.0, ramp_s=0.0, horizon_s=5.0)
    fake = FakeNVML(trace, gpus=2, scales=(1.0, 0.5), counter_period_s=0.001)
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    part = _part(fake)
    assert len(part.handles) == 2
    c0, t0 = part.counter_j(), trace.now()
    assert c0 > 2 * BOOT_ENERGY_MJ / 1000  # both cards' counters, in J since the driver loaded
    p = part.power_w()
    assert p == pytest.approx(1.5 * trace.power(trace.now()), rel=0.05)
    time.sleep(0.3)
    c1, t1 = part.counter_j(), trace.now()
    exact = 1.5 * (trace.energy(t1) - trace.energy(t0))
    assert c1 - c0 == pytest.approx(exact, rel=0.05)


def test_cuda_visible_devices_by_uuid_picks_that_card(monkeypatch):
    trace = PowerTrace(idle_s=0.0, ramp_s=0.0, horizon_s=5.0)
    fake = FakeNVML(trace, gpus=2, scales=(1.0, 0.5))
    fake.nvmlInit()
    uuid = fake.nvmlDeviceGetUUID("handle-1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", uuid)
    nv = NVML.open(fake)
    assert nv.handles == ["handle-1"]
    [info] = nv.device_info()
    assert info["uuid"] == uuid
    # the process table: bytes as an int for ours, None where the driver will not say (another container's)
    procs = {p["pid"]: p["memory_gb"] for p in info["processes"]}
    assert procs[os.getpid()] == pytest.approx(8.0) and procs[4242] is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffffffff-no-such-card")
    from bench.errors import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="no visible GPU"):
        NVML.open(fake)


# ------------------------------------------------------------------------------------------------ plugs


@pytest.fixture
def plug():
    made = []

    def make(kind, **kw):
        p = Plug(kind, token="t0ken", **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def test_tasmota_total_is_kilowatt_hours():
    p = Plug("tasmota", trace=Trace(base=100, amp=0), offset_j=123.456 * 3.6e6)  # a plug months into its life
    try:
        r = Tasmota(p.address, "", 2.0).read()
    finally:
        p.close()
    assert r.power_w == 100
    assert r.counter_j == pytest.approx(123.456 * 3.6e6, abs=3600)  # 1 Wh: its 3 decimals of kWh


def test_tasmota_counter_prices_a_window_it_resolves():
    """A 3.6 MW trace moves a Tasmota's 1 Wh counter 1,000 times a second: the counter path is taken, in joules.
    Each counter reading is timed at its request's midpoint; on a loaded 2-core CI box an answer can come back 50 ms
    lopsided, so the bound is 10% of a 2 s window: a kWh read as Wh (or J) is off 1,000-fold and still fails."""
    p = Plug("tasmota", trace=Trace(base=3.6e6, amp=0), offset_j=5.0 * 3.6e6)
    part = WallPart(p.url, rate_hz=10.0)
    try:
        part.start()
        time.sleep(0.3)
        t0 = time.perf_counter()
        time.sleep(2.0)
        t1 = time.perf_counter()
        w = part.window(None, None, [], t1 - t0, t0=t0, t1=t1)
    finally:
        part.close()
        p.close()
    assert w.columns["wall_source"] == "tasmota_counter" and w.flags == []
    assert w.energy_j == pytest.approx(3.6e6 * (t1 - t0), rel=0.10)


@pytest.mark.parametrize("failure, said", [
    ("unavailable", "state is not a number ('unavailable')"), ("garbage", "the answer is not JSON"),
    ("list", "expected a JSON object, got a JSON list"), ("nan", "expected a finite number >= 0"),
    ("negative", "expected a finite number >= 0")])
@pytest.mark.parametrize("kind", ["ha", "tasmota", "shelly2"])
def test_a_plug_answer_that_is_not_a_power_flags_the_window_and_polling_goes_on(plug, monkeypatch, kind, failure,
                                                                                  said):
    from bench.energy.wall import HA_TOKEN_ENV

    monkeypatch.setenv(HA_TOKEN_ENV, "t0ken")
    p = plug(kind)
    part = WallPart(p.url, rate_hz=10.0, timeout_s=0.5)
    try:
        part.start()  # the first reading is good (and a Shelly's generation is known)
        p.fail = failure
        t0 = time.perf_counter()
        time.sleep(0.4)
        t1 = time.perf_counter()
        bad = part.window(None, None, [], t1 - t0, t0=t0, t1=t1)
        p.fail = None
        time.sleep(0.3)
        t2 = time.perf_counter()
        time.sleep(0.5)
        t3 = time.perf_counter()
        good = part.window(None, None, [], t3 - t2, t0=t2, t1=t3)
    finally:
        part.close()
    assert bad.energy_j is None and bad.flags == ["wall_unavailable"]
    if failure == "unavailable" and kind != "ha":
        said = "is not a number (None)"
    assert any(said in e for e in part.errors), part.errors
    assert good.energy_j is not None and good.energy_j > 0 and good.flags == []  # the poller survived


def test_home_assistant_in_kilowatts_is_scaled_to_watts(plug, monkeypatch):
    from bench.energy.wall import HA_TOKEN_ENV, HomeAssistant

    monkeypatch.setenv(HA_TOKEN_ENV, "t0ken")
    p = plug("ha", trace=Trace(base=250, amp=0), ha_unit="kW")
    r = HomeAssistant(p.address, "/sensor.server_plug_power", 2.0).read()
    assert r.power_w == pytest.approx(250.0, abs=0.1) and r.counter_j is None


def test_a_refused_connection_is_a_plug_error_not_a_crash(plug):
    p = plug("tasmota")
    address = p.address
    p.close()
    with pytest.raises(PlugError, match="ConnectError"):
        Tasmota(address, "", 1.0).read()


def test_the_plug_emulator_is_no_kinder_than_a_plug():
    # the counter starts where months of use left it; a reset starts it from zero
    p = Plug("shelly2", trace=Trace(base=100, amp=0), offset_j=1e9)
    try:
        t = time.perf_counter()
        assert p.counter_j(t) == pytest.approx(1e9 + 100 * (t - p.trace.t0))
        p.reset_at = t
        assert p.counter_j(t + 1) == pytest.approx(100.0)
    finally:
        p.close()


# ----------------------------------------------------------------------- the command line's ways out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_the_command_starts_is_130_without_a_traceback(sig):
    """From main's first instruction (the handlers go in before pandas and the rest are imported) a stop signal is
    exit 130 and one line. The interpreter's own start (site, the editable install's import hook) is not ours to
    catch, and on a loaded box it can take longer than any fixed delay: the child's ``-X importtime`` lines say when
    ``shadowbench.cli`` (imported after the handlers are in) has loaded, and the signals are sent from then on."""
    import subprocess
    import sys

    from .conftest import REPO

    for delay in (0.0, 0.25, 0.5):
        p = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "shadowbench", "cost", "--requests-per-day",
                              "10", "--api", "gpt-4o-mini", "--build", "rtx3090"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, cwd=REPO)
        seen = []
        for line in p.stderr:  # the import-time lines, as each import finishes
            seen.append(line)
            if line.rstrip().endswith("| shadowbench.cli"):
                break
        assert seen and seen[-1].rstrip().endswith("| shadowbench.cli"), "".join(seen[-5:])
        time.sleep(delay)
        done_before = p.poll() is not None
        p.send_signal(sig)
        rest = p.communicate(timeout=60)[1]
        err = "".join(x for x in [*seen, *rest.splitlines(keepends=True)] if not x.startswith("import time:"))
        assert "Traceback" not in err, err
        assert p.returncode == 130 or (done_before and p.returncode == 0), (delay, p.returncode, err)
        if p.returncode == 130:
            assert err.strip().splitlines()[-1] == "shadowbench: interrupted"


def test_a_reader_that_goes_away_is_not_a_traceback():
    import subprocess
    import sys

    from .conftest import REPO

    p = subprocess.Popen([sys.executable, "-m", "shadowbench", "prices"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO)
    p.stdout.close()  # `shadowbench prices | head -0`
    err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 1 and "Traceback" not in err and "BrokenPipe" not in err, err
