"""The wall meter against plug emulators on 127.0.0.1 (tests/plugs.py) and python-kasa faked at its boundary:
energy within 2% of the trace's exact integral at 1 Hz over 10 s; timeouts, HTTP errors, a refused token and a
counter reset each tried; the token never written anywhere."""
import threading
import time
import types

import pytest

from bench.energy.wall import HA_TOKEN_ENV, WallPart, parse
from bench.errors import ConfigError

from .plugs import Plug, Trace

TOKEN = "eyJ-secret-long-lived-token-4242"


@pytest.fixture
def plugs(monkeypatch):
    monkeypatch.setenv(HA_TOKEN_ENV, TOKEN)
    made = []

    def make(kind, **kw):
        p = Plug(kind, token=TOKEN, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def fake_kasa(trace: Trace):
    """python-kasa's surface the wall part uses: Device.connect, update(), modules[Module.Energy]."""
    class Energy:
        @property
        def current_consumption(self):
            return round(trace.power(time.perf_counter()), 1)

        @property
        def consumption_total(self):
            return round(trace.energy(trace.t0, time.perf_counter()) / 3.6e6, 6)

    class Dev:
        modules = {"Energy": Energy()}

        async def update(self):
            return None

    async def connect(config=None, host=None):
        assert config.host == "127.0.0.1:9999"
        return Dev()
    return types.SimpleNamespace(Credentials=lambda u, p: (u, p), DeviceConfig=lambda **kw: types.SimpleNamespace(**kw),
                                 Device=types.SimpleNamespace(connect=connect),
                                 Module=types.SimpleNamespace(Energy="Energy"))


def _window(parts, seconds):
    for p in parts:
        p.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    time.sleep(seconds)
    t1 = time.perf_counter()
    out = {}

    def one(p):
        out[p] = p.window(None, None, [], t1 - t0, t0=t0, t1=t1)
    threads = [threading.Thread(target=one, args=(p,)) for p in parts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return t0, t1, out


@pytest.mark.slow
def test_wall_energy_within_2_percent_of_the_exact_integral_at_1_hz(plugs, monkeypatch):
    trace = Trace()
    http = {k: plugs(k, trace=trace) for k in ("shelly2", "shelly1", "tasmota", "ha")}
    monkeypatch.setitem(__import__("sys").modules, "kasa", fake_kasa(trace))
    parts = {k: WallPart(p.url, rate_hz=1.0) for k, p in http.items()}
    parts["kasa"] = WallPart("kasa://127.0.0.1:9999", rate_hz=1.0)
    try:
        t0, t1, got = _window(list(parts.values()), 10.0)
    finally:
        for p in parts.values():
            p.close()
    exact = trace.energy(t0, t1)
    sources = {}
    for k, part in parts.items():
        w = got[part]
        assert w.flags == [], (k, w.flags, part.errors)
        assert w.energy_j == pytest.approx(exact, rel=0.02), (k, w.energy_j, exact)
        assert w.columns["wall_avg_power_w"] == pytest.approx(exact / (t1 - t0), rel=0.02)
        sources[k] = w.columns["wall_source"]
    # the counter where it resolves a 10 s window (mWh), the power readings where it does not (watt-minutes, Wh)
    assert sources == {"shelly2": "shelly_counter", "shelly1": "shelly_power_integrated",
                       "tasmota": "tasmota_power_integrated", "ha": "homeassistant_power_integrated",
                       "kasa": "kasa_counter"}


@pytest.mark.parametrize("failure", [pytest.param("timeout", marks=pytest.mark.slow), "500"])
def test_a_plug_that_stops_answering_flags_the_window_and_recovers(plugs, failure):
    plug = plugs("shelly2")
    part = WallPart(plug.url, rate_hz=5.0, timeout_s=0.5)
    try:
        _, _, ok = _window([part], 1.0)
        assert ok[part].energy_j is not None
        plug.fail = failure
        _, _, bad = _window([part], 1.0)
        assert bad[part].energy_j is None and bad[part].flags == ["wall_unavailable"]
        assert bad[part].columns["wall_source"] == "none"
        assert any(("no answer within" if failure == "timeout" else "HTTP 500") in e for e in part.errors)
        plug.fail = None
        time.sleep(3.2 if failure == "timeout" else 0.3)  # a hung request ends; the part answers again
        _, _, again = _window([part], 1.0)
        assert again[part].energy_j is not None and again[part].flags == []
    finally:
        part.close()


def test_a_refused_token_flags_the_window_and_is_never_said(plugs, monkeypatch):
    plug = plugs("ha")
    monkeypatch.setenv(HA_TOKEN_ENV, "wrong-" + TOKEN)
    part = WallPart(plug.url, rate_hz=5.0, timeout_s=0.5)
    try:
        _, _, got = _window([part], 1.0)
    finally:
        part.close()
    assert got[part].flags == ["wall_unavailable"]
    assert any("HTTP 401" in e and "refused" in e for e in part.errors)
    said = " ".join(part.errors) + part.describe() + repr(got[part].columns)
    assert TOKEN not in said


def test_a_counter_reset_is_a_reset_not_negative_energy(plugs):
    plug = plugs("shelly2", trace=Trace(base=400, amp=0))  # 400 W: a 2 s window is 800 J, the counter resolves it
    part = WallPart(plug.url, rate_hz=5.0)
    try:
        part.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        time.sleep(1.0)
        plug.reset_at = time.perf_counter()  # the plug reboots: its counter restarts at 0
        time.sleep(1.0)
        t1 = time.perf_counter()
        w = part.window(None, None, [], t1 - t0, t0=t0, t1=t1)
    finally:
        part.close()
    assert part.resets == 1
    assert w.energy_j == pytest.approx(400 * (t1 - t0), rel=0.02) and w.energy_j > 0
    assert w.columns["wall_source"] == "shelly_power_integrated"  # the counter lost what came before the reset
    assert w.flags == ["wall_counter_reset"]


@pytest.mark.parametrize("url", ["http://10.0.0.5", "shelly://", "shelly://user:pw@10.0.0.5", "tasmota://h?token=x",
                                 "zigbee://plug"])
def test_bad_plug_urls_are_config_errors(url):
    with pytest.raises(ConfigError, match="shelly://HOST"):
        parse(url)


def _rows(folder):
    import csv

    [f] = [p for p in folder.rglob("*.csv") if not p.name.endswith(".power.csv")]
    with open(f) as fh:
        return list(csv.DictReader(fh)), f


@pytest.mark.slow
def test_a_run_with_a_shelly_then_calibrate_then_cost_prices_from_the_wall(plugs, write_suite, tmp_path):
    import json

    from .conftest import TINY_LLM_SUITE, run_cli

    plug = plugs("shelly2")
    # the rows' UTC start times on the plug trace's clock (CLOCK_MONOTONIC is the same in the child processes)
    mono_offset = time.time() - time.perf_counter()
    suite = write_suite(TINY_LLM_SUITE.format(reps=3, tests='["tg64"]'))
    res = tmp_path / "res"
    box = "cpu-amd-epyc-2c-24g"  # a machine builds.toml maps to a build (ci-cpu-vm): its wall figures price it
    r = run_cli("run", suite, "--results-dir", res, "--no-progress", "--machine", box, "--idle-s", "3",
                "--wall", plug.url)
    assert r.returncode == 0, r.stderr
    assert "wall: used (wall: shelly://" in r.stderr and "idle power at the wall:" in r.stderr
    rows, f = _rows(res)
    assert len(rows) == 3
    for row in rows:
        assert float(row["wall_energy_j"]) > 0 and row["wall_source"] in ("shelly_counter", "shelly_power_integrated")
        import datetime as dt

        t0 = dt.datetime.fromisoformat(row["utc_time"].replace("Z", "+00:00")).timestamp() - mono_offset
        wall_s = float(row["wall_s"])
        exact = plug.trace.energy(t0, t0 + wall_s) / wall_s  # the trace's mean over the repetition
        # 1 Hz readings of a 7 s sine interpolated over a sub-second window: within 8 W of the exact mean
        assert float(row["wall_avg_power_w"]) == pytest.approx(exact, abs=8), (row["wall_avg_power_w"], exact)
        assert row["energy_source"] == "estimated" and float(row["energy_j"]) > 0  # the devices, beside the wall
        assert float(row["wall_idle_power_w"]) == pytest.approx(120, abs=61) and "wall_unavailable" not in row["flags"]
    power = f.with_suffix(".power.csv").read_text()
    assert ",wall,shelly," in power
    r = run_cli("calibrate", "--machine", box, "--results-dir", res)
    assert r.returncode == 0, r.stderr
    cal = (res / box / "calibration.toml").read_text()
    assert "idle_w = " in cal and "ratio = " in cal and '[workloads."smol"]' in cal
    q = ["cost", "--json", "--results-dir", res, "--machine", box, "--build", "ci-cpu-vm", "--api", "gpt-4o-mini",
         "--requests-per-day", "100", "--prompt-tokens", "0", "--output-tokens", "64"]
    c = json.loads(run_cli(*q).stdout)
    import tomllib

    data = tomllib.loads(cal)
    assert c["wall_basis"] == "measured at the wall"
    assert c["idle_wall_w"] == pytest.approx(data["wall"]["idle_w"])
    assert c["psu_efficiency"] == pytest.approx(1 / data["workloads"]["smol"]["ratio"]) and c["platform_busy_w"] == 0
    text = run_cli(*[a for a in q if a != "--json"]).stdout
    assert "idle at the wall:" in text and "measured at the wall (" in text
    assert "wall power: measured at the wall" in text
    # the user's own figure still wins over the calibration
    c2 = json.loads(run_cli(*q, "--idle-w", "33").stdout)
    assert c2["idle_wall_w"] == 33
    # another build's question: this machine's wall figures are not that box's
    other = json.loads(run_cli(*[a if a != "ci-cpu-vm" else "rtx3090" for a in q]).stdout)
    assert other["wall_basis"] == "assumed (builds.toml)" and other["idle_wall_w"] == 75
    assert any(f"machine {box} is not mapped to build rtx3090" in w for w in other["warnings"])
    # advise prices the machine's rows with the same calibration, and says so
    mix = write_suite('[scenario]\ntitle = "t"\nbuild = "ci-cpu-vm"\n[[tasks]]\nname = "notes"\nkind = "llm"\n'
                      'api = "gpt-4o-mini"\nunits_per_day = 100\nprompt_tokens = 0\noutput_tokens = 64\n',
                      name="mix.toml")
    r = run_cli("advise", mix, "--machine", box, "--results-dir", res)
    assert r.returncode == 0, r.stderr
    assert f"note: wall power measured at the wall ({res / box / 'calibration.toml'})" in r.stdout
    assert f"idle {data['wall']['idle_w']:.1f} W" in r.stdout


@pytest.mark.slow
def test_a_home_assistant_token_is_used_and_never_written_and_a_dead_plug_loses_nothing(plugs, write_suite, tmp_path):
    from .conftest import TINY_LLM_SUITE, run_cli

    plug = plugs("ha")
    suite = write_suite(TINY_LLM_SUITE.format(reps=2, tests='["tg16"]'))
    r = run_cli("run", suite, "--results-dir", tmp_path / "ok", "--no-progress", "--idle-s", "0", "--wall", plug.url,
                env={HA_TOKEN_ENV: TOKEN})
    assert r.returncode == 0, r.stderr
    rows, f = _rows(tmp_path / "ok")
    assert all(row["wall_source"] == "homeassistant_power_integrated" for row in rows)
    for text in (f.read_text(), f.with_suffix(".power.csv").read_text(), r.stdout, r.stderr):
        assert TOKEN not in text
    plug.fail = "500"  # the plug answers nothing useful: the run completes, every row kept and flagged
    r = run_cli("run", suite, "--results-dir", tmp_path / "dead", "--no-progress", "--idle-s", "0", "--wall",
                plug.url, env={HA_TOKEN_ENV: TOKEN})
    assert r.returncode == 0, r.stderr
    rows, _ = _rows(tmp_path / "dead")
    assert len(rows) == 2 and all(row["wall_energy_j"] == "" and "wall_unavailable" in row["flags"] for row in rows)
    assert all(float(row["energy_j"]) > 0 for row in rows)
    # said once on the terminal, with the plug's last error (the rows say it per window)
    [said] = [ln for ln in r.stderr.splitlines() if "reading(s) of homeassistant://" in ln]
    assert "failed; the last: " in said and "HTTP 500" in said and "wall_unavailable" in said


def test_the_plug_is_configured_per_machine(monkeypatch, tmp_path):
    from bench.energy.wall import WALL_ENV, configured_url

    monkeypatch.delenv(WALL_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert configured_url(None) == (None, "")
    cfg = tmp_path / "shadowbench" / "machine.toml"
    cfg.parent.mkdir()
    cfg.write_text('[energy]\nwall = "shelly://192.168.1.50"\n')
    assert configured_url(None) == ("shelly://192.168.1.50", str(cfg))
    monkeypatch.setenv(WALL_ENV, "tasmota://192.168.1.52")
    assert configured_url(None) == ("tasmota://192.168.1.52", WALL_ENV)
    assert configured_url("kasa://192.168.1.53") == ("kasa://192.168.1.53", "--wall")
    monkeypatch.delenv(WALL_ENV)
    cfg.write_text("[energy]\nwall = 5\n")
    with pytest.raises(ConfigError, match="energy.wall"):
        configured_url(None)
