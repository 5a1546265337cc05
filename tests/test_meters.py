"""Meters: the real NVML adapter against a fake NVML at the library boundary, RAPL on a fake sysfs tree, and the
labeled estimate."""
import time

import pytest

from bench.energy import EnergyMeter, build_meter
from bench.energy.estimate import EstimatePart, cpu_watts_per_thread
from bench.energy.rapl import RAPLPart
from bench.energy.nvml import NVML, NVMLPart, probe_gpus, visible_indices

from .fake_nvml import FakeNVML, PowerTrace
from .fakes import FakeBackend, SimClock, fake_suite


@pytest.fixture(scope="module")
def trace_factory():
    return PowerTrace  # building the exact cumulative integral takes ~0.1 s


def _gpu_meter(fake, **kw):
    part = NVMLPart(NVML.open(fake))
    part.open()
    m = EnergyMeter([part], **kw)
    m.start()
    return m, part


def _sim(fake_kw=None, tamper=None):
    """The real adapter and meter on a fake card replaying a power trace, all on one simulated clock: the test
    drives the sampler's ticks, and a wait at a window edge moves the clock instead of sleeping."""
    clock = SimClock()
    trace = PowerTrace(clock=clock)
    fake = FakeNVML(trace, **(fake_kw or {}))
    if tamper:
        tamper(fake)
    part = NVMLPart(NVML.open(fake), clock=clock, sleep=clock.sleep)
    part.open()
    return EnergyMeter([part], clock=clock), part, trace, clock


def _run_until(meter, clock, trace, t_s, period_s=0.1):
    """The sampler at 10 Hz (with a phase that does not line up with the counter's 100 ms steps)."""
    while trace.now() < t_s:
        clock.sleep(period_s * 0.973)
        meter.tick()


def _measure(until_s, fake_kw=None, tamper=None):
    """A window from just after idle into the plateau (idle 0.5 s, ramp 0.5 s, plateau with noise)."""
    meter, part, trace, clock = _sim(fake_kw, tamper)
    try:
        _run_until(meter, clock, trace, 0.3)
        meter.begin("w")
        _run_until(meter, clock, trace, until_s)
        return meter.end("w"), part, trace
    finally:
        meter.close()


def test_counter_energy_within_1_percent_of_exact_integral():
    w, part, trace = _measure(3.0)
    exact = trace.exact_j(w.t0_s, w.t1_s)
    assert w.energy_source == "nvml_counter" and w.gpu_energy_source == "nvml_counter"
    assert abs(w.energy_j - exact) / exact < 0.01, (w.energy_j, exact)
    # the integrated instantaneous power is kept beside it and agrees
    assert abs(w.extra["gpu_energy_integrated_j"] - exact) / exact < 0.02
    assert "nvml_counter_vs_power_mismatch" not in w.flags
    # window state from the sampler: plateau values, peak power, other processes on the card
    assert w.peak_power_w > 280 and 200 < w.avg_power_w < 300
    assert w.extra["gpu_mem_peak_gb"] == pytest.approx(9.5)
    assert w.extra["sm_clock_mhz"] == 1695 and w.extra["gpu_temp_c_max"] == 71
    assert "sw_power_cap" in w.extra["clock_events"]
    assert w.extra["gpu_power_limit_w"] == pytest.approx(350.0)
    assert w.extra["gpu_foreign_pids"] == "4242"


def test_counterless_card_falls_back_to_integrated_instant_power():
    w, part, trace = _measure(3.0, {"has_counter": False})
    exact = trace.exact_j(w.t0_s, w.t1_s)
    assert not part.has_counter
    assert w.energy_source == "nvml_power_integrated"
    assert abs(w.energy_j - exact) / exact < 0.01, (w.energy_j, exact)
    assert w.extra["gpu_energy_counter_j"] is None


def test_sampler_runs_at_10_hz(trace_factory):
    trace = trace_factory()
    t0 = time.perf_counter()
    meter, _ = _gpu_meter(FakeNVML(trace), sample_hz=10)
    try:
        time.sleep(1.05)
        n = len(meter._samples)
    finally:
        meter.close()
    elapsed = time.perf_counter() - t0
    # never faster than 10 Hz (the loop waits for each 100 ms step and skips ahead rather than burst after a delay);
    # a loaded 2-core machine may delay the thread, so the floor is half the rate, not the exact count
    assert n <= elapsed * 10 + 1
    assert n >= 0.5 * 1.05 * 10


def test_power_usage_mismatch_is_flagged():
    # a counter whose reading is 20% high against the instantaneous power: the row is flagged, both figures kept
    def tamper(fake):
        real = fake.nvmlDeviceGetTotalEnergyConsumption
        fake.nvmlDeviceGetTotalEnergyConsumption = lambda h: int(real(h) * 1.2)

    w, _, _ = _measure(2.5, tamper=tamper)
    assert "nvml_counter_vs_power_mismatch" in w.flags
    assert w.extra["gpu_energy_counter_j"] > 1.1 * w.extra["gpu_energy_integrated_j"]


def test_lost_gpu_leaves_run_going_with_flagged_rows(tmp_path):
    from rich.console import Console

    from bench.results import read_rows
    from bench.runner import Runner

    clock = SimClock()
    fake = FakeNVML(PowerTrace(clock=clock))

    class LosingMeter(EnergyMeter):
        def end(self, key):
            w = super().end(key)
            fake.lose()  # the card falls off the bus after the first measured window
            return w

    part = NVMLPart(NVML.open(fake), clock=clock, sleep=clock.sleep)
    part.open()
    meter = LosingMeter([part], clock=clock)
    suite = fake_suite(tmp_path, reps=3, tests='["tg8"]')
    runner = Runner(suite, meter, tmp_path / "res", "box", [], show_progress=False, idle_s=0,
                    console=Console(file=open(tmp_path / "out.txt", "w")),
                    create_backend=lambda w, path: FakeBackend(w, clock, seconds=1.5), launcher="inline")
    try:
        outcome = runner.run()
    finally:
        meter.close()
    rows = read_rows(outcome.path)
    assert len(rows) == 6 and outcome.failures == []
    assert rows[0]["energy_source"] == "nvml_counter" and float(rows[0]["energy_j"]) > 0
    for r in rows[1:]:
        assert r["energy_j"] == "" and r["energy_source"] == "none"
        assert "gpu_lost" in r["flags"] and "GPU is lost" in r["flags"]
        assert float(r["tg_tokens_per_s"]) > 0 and float(r["wall_s"]) >= 1.5  # the measurement itself went on
    # the power series was written next to the rows
    power = outcome.path.with_suffix(".power.csv")
    assert power.exists() and power.read_text().splitlines()[0].startswith("t_s,domain,source,power_w")


def test_probe_and_env_without_a_gpu():
    class NoLib:
        class NVMLError(Exception):
            pass

        def nvmlInit(self):
            raise self.NVMLError("NVML Shared Library Not Found")

    gpus, why = probe_gpus(NoLib())
    assert gpus == [] and "no NVIDIA driver" in why


def test_probe_describes_the_card(trace_factory):
    gpus, why = probe_gpus(FakeNVML(trace_factory()))
    assert why == "" and gpus[0]["name"] == "NVIDIA GeForce RTX 3090"
    assert gpus[0]["memory_total_gb"] == pytest.approx(24.0) and gpus[0]["power_limit_w"] == pytest.approx(350.0)


def test_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_indices(2) == [0, 1]
    assert visible_indices(4, "2,0") == [2, 0]
    assert visible_indices(2, "1,5,0") == [1]  # CUDA stops at the first invalid index
    assert visible_indices(2, "") == []
    assert visible_indices(1, "GPU-abc") == ["GPU-abc"]


def test_cuda_visible_devices_hides_the_card(trace_factory, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    gpus, why = probe_gpus(FakeNVML(trace_factory()))
    assert gpus == [] and "no visible GPU" in why


# ------------------------------------------------------------------------------------------------------ RAPL


def _zone(root, name, label, uj, max_uj):
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_package_and_dram_with_wraparound(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 262_143_000_000, 262_143_328_850)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5, 262_143_328_850)  # inside the package: not added again
    dram = _zone(tmp_path, "intel-rapl:0:1", "dram", 1_000_000, 65_712_999_613)
    part, why = RAPLPart.probe(tmp_path)
    assert why == "" and [z[1] for z in part.zones] == ["package-0", "dram"]
    meter = EnergyMeter([part], sample_hz=0)
    meter.begin("w")
    # package wraps: 262_143_000_000 -> 500_000 past the top; dram +2 J
    (pkg / "energy_uj").write_text("171150\n")
    (dram / "energy_uj").write_text("3000000\n")
    w = meter.end("w")
    expected = (262_143_328_850 - 262_143_000_000 + 171_150 + 2_000_000) / 1e6
    assert w.energy_source == "rapl" and w.cpu_energy_source == "rapl"
    assert w.energy_j == pytest.approx(expected) and w.cpu_energy_j == pytest.approx(expected)


def test_rapl_multiple_wraps_seen_by_the_sampler_ticks(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900, 1000)
    part, _ = RAPLPart.probe(tmp_path)
    meter = EnergyMeter([part], sample_hz=0)
    meter.begin("w")
    for v in (100, 950, 50):  # three reads, two wraps: +200, +850, +100
        (pkg / "energy_uj").write_text(f"{v}\n")
        meter.tick()
    w = meter.end("w")
    assert w.energy_j == pytest.approx(1150 / 1e6)


def test_rapl_unavailable_with_reason(tmp_path, monkeypatch):
    part, why = RAPLPart.probe(tmp_path / "absent")
    assert part is None and "does not exist" in why
    _zone(tmp_path, "intel-rapl:0", "package-0", 1, 10)
    import pathlib

    real = pathlib.Path.read_text

    def deny(self, *a, **k):
        if self.name == "max_energy_range_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "read_text", deny)
    part, why = RAPLPart.probe(tmp_path)
    assert part is None and "not readable" in why and "max_energy_range_uj" in why


# -------------------------------------------------------------------------------------------------- estimate


def test_estimate_is_cpu_time_times_watts_and_labeled():
    part = EstimatePart(12.0, "test")
    meter = EnergyMeter([part], sample_hz=0)
    c0 = part.cpu_seconds()
    meter.begin("w")
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    w = meter.end("w")
    used = part.cpu_seconds() - c0
    assert w.energy_source == "estimated" and w.cpu_energy_source == "estimated"
    assert w.energy_j == pytest.approx(used * 12.0, rel=0.05)
    assert w.energy_j > 0
    assert "CPU time x" in w.extra["energy_note"]


def test_cpu_power_table_and_override():
    w, basis = cpu_watts_per_thread("AMD Ryzen 9 5950X 16-Core Processor")
    assert w == pytest.approx(105 / 32) and "TDP 105 W" in basis
    w, basis = cpu_watts_per_thread("AMD EPYC")
    assert w == 10.0 and "not in the TDP table" in basis
    w, basis = cpu_watts_per_thread("AMD EPYC", override=7.5)
    assert w == 7.5 and "user setting" in basis


def test_build_meter_on_this_box_lists_every_meter(tmp_path):
    class NoLib:
        class NVMLError(Exception):
            pass

        def nvmlInit(self):
            raise self.NVMLError("NVML Shared Library Not Found")

    meter, report = build_meter("auto", nvml_module=NoLib(), rapl_root=tmp_path / "none")
    meter.close()
    assert [line.split(":")[0] for line in report] == ["nvml", "rapl", "estimate"]
    assert "unavailable" in report[0] and "unavailable" in report[1] and "used" in report[2]
    assert meter.name == "estimated"


def test_build_meter_gpu_box_uses_nvml_and_rapl(trace_factory, tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", 1, 10**12)
    meter, report = build_meter("auto", nvml_module=FakeNVML(trace_factory()), rapl_root=tmp_path)
    try:
        assert meter.name == "nvml_counter+rapl"
        meter.begin("w")
        time.sleep(0.3)
        w = meter.end("w")
    finally:
        meter.close()
    assert w.energy_source == "nvml_counter+rapl"
    assert w.energy_j == pytest.approx(w.gpu_energy_j + w.cpu_energy_j)


def test_estimate_counts_a_tracked_child_process_once():
    """A local server that is also a child of this process (a script that starts it, then the harness) is one
    process to the estimate, not two."""
    import subprocess
    import sys

    from bench.energy.base import Scope

    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time()-t<0.6: pass\ntime.sleep(30)"])
    try:
        part = EstimatePart(10.0, "test")
        part.track(Scope("pids", (child.pid,)))
        time.sleep(1.0)  # the child burns its 0.6 s of CPU
        part._children_at_s = -1e9
        total = part.cpu_seconds()
        own = sum(part.proc.cpu_times()[:4])  # user, system and finished children
        import psutil

        child_s = sum(psutil.Process(child.pid).cpu_times()[:2])
        assert total == pytest.approx(own + child_s, abs=0.05)
    finally:
        child.kill()
        child.wait()


def test_a_childs_window_edges_are_priced_inside_the_parents_span():
    """The launcher's child reports its run's exact edges; the parent's begin/end span holds them (the pipe's round
    trip on each side). The window is the child's: its duration, and counter energy within 1% of the exact integral
    over the child's edges, not over the parent's longer span."""
    meter, part, trace, clock = _sim()
    try:
        _run_until(meter, clock, trace, 1.2)
        meter.begin("w")
        e0 = clock() + 0.15  # the child starts 150 ms after the parent's edge
        _run_until(meter, clock, trace, 4.0)
        e1 = clock() - 0.2
        _run_until(meter, clock, trace, 4.3)  # and the parent hears of its end 300 ms later
        w = meter.end("w", (e0, e1))
    finally:
        meter.close()
    assert w.t0_s == e0 and w.t1_s == e1 and w.duration_s == pytest.approx(e1 - e0)
    exact = trace.exact_j(e0, e1)
    assert abs(w.energy_j - exact) / exact < 0.01, (w.energy_j, exact)
    assert w.skew_s == pytest.approx(0.15 + 0.5, abs=0.15)
    with pytest.raises(ValueError, match="not one clock"):
        meter.begin("x")
        meter.end("x", (clock() - 100.0, clock() - 99.0))
