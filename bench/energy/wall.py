"""Wall power: the smart plug the box is plugged into, read over the local network.

A plug answers at its own pace (about once a second), so the wall part polls it in its own thread at ``rate_hz``
and the composite meter's 10 Hz sampler never waits on the network. A window's wall energy is the plug's own
cumulative counter where the counter resolves it (its step at most 1% of the window's energy: a Shelly Gen2's
mWh does, a Tasmota's kWh with 3 decimals rarely does), else the trapezoid integral of the polled power over the
window. Counters going backwards are a reset (the plug rebooted, or was reset), never negative energy. A plug that
stops answering (timeout, HTTP error, bad token) leaves its windows without wall energy and flagged
``wall_unavailable``; the run goes on.

Protocols (one small class each, the URL scheme picks it):

- ``shelly://HOST``: the generation from ``/shelly``; Gen2/Gen3 ``/rpc/Switch.GetStatus?id=0`` (``apower`` W,
  ``aenergy.total`` Wh), Gen1 ``/status`` (``meters[0].power`` W, ``meters[0].total`` watt-minutes);
- ``tasmota://HOST``: ``/cm?cmnd=Status%208`` (``StatusSNS.ENERGY.Power`` W, ``.Total`` kWh);
- ``homeassistant://HOST:8123/sensor.ENTITY``: ``/api/states/sensor.ENTITY`` with a long-lived token read from the
  environment variable ``SHADOWBENCH_HA_TOKEN`` (never from the URL, never written anywhere); the sensor's
  ``unit_of_measurement`` W or kW; power only (integrated);
- ``kasa://HOST``: TP-Link Kasa and Tapo plugs through python-kasa (``Module.Energy``: ``current_consumption`` W,
  ``consumption_total`` kWh); Tapo credentials from ``SHADOWBENCH_KASA_USERNAME`` / ``SHADOWBENCH_KASA_PASSWORD``.

``http`` works over loopback too, which is how the tests talk to plug emulators on 127.0.0.1.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError, DeviceUnavailable
from .base import Clock, Part, PartWindow
from .composite import integrate

SCHEMES = ("shelly", "tasmota", "homeassistant", "kasa")
HA_TOKEN_ENV = "SHADOWBENCH_HA_TOKEN"
KASA_USER_ENV, KASA_PASSWORD_ENV = "SHADOWBENCH_KASA_USERNAME", "SHADOWBENCH_KASA_PASSWORD"
WALL_ENV = "SHADOWBENCH_WALL"
RESOLUTION_SHARE = 0.01  # the counter is used when its step is at most this share of the window's energy


class PlugError(Exception):
    """One failed reading (timeout, HTTP status, refused token, malformed answer), said without secrets."""


@dataclass
class Reading:
    power_w: float | None
    counter_j: float | None  # the plug's cumulative energy, in J


class Protocol:
    name = "plug"
    counter_step_j: float | None = None  # the counter's resolution, J

    def __init__(self, host: str, path: str, timeout_s: float):
        self.host, self.path, self.timeout_s = host, path, timeout_s

    def read(self) -> Reading:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name}://{self.host}{self.path}"

    def _get(self, path: str, headers: dict | None = None) -> dict:
        import httpx

        try:
            r = httpx.get(f"http://{self.host}{path}", headers=headers or {}, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise PlugError(f"{self.describe()}: no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as e:
            raise PlugError(f"{self.describe()}: {type(e).__name__}") from None
        if r.status_code in (401, 403):
            raise PlugError(f"{self.describe()}: HTTP {r.status_code}: the token or credentials were refused")
        if r.status_code != 200:
            raise PlugError(f"{self.describe()}: HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            raise PlugError(f"{self.describe()}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise PlugError(f"{self.describe()}: expected a JSON object, got a JSON {type(body).__name__}")
        return body


def _num(v, what: str, where: str) -> float:
    """A reading as a finite number >= 0 (power in W, a counter); PlugError for anything else: a plug's word for
    "unavailable", null, NaN, infinity or a negative figure never becomes energy."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise PlugError(f"{where}: {what} is not a number ({v!r})") from None
    if not math.isfinite(x) or x < 0:
        raise PlugError(f"{where}: {what} is {v!r}, expected a finite number >= 0")
    return x


class Shelly(Protocol):
    name = "shelly"

    gen: int | None = None  # found at the first answer: a plug that is down at the start is retried, not dropped

    @property
    def counter_step_j(self) -> float | None:
        return None if self.gen is None else 3.6 if self.gen >= 2 else 60.0  # mWh; Gen1: whole watt-minutes

    def read(self) -> Reading:
        if self.gen is None:
            self.gen = int(self._get("/shelly").get("gen", 1) or 1)
        if self.gen >= 2:
            s = self._get("/rpc/Switch.GetStatus?id=0")
            return Reading(_num(s.get("apower"), "apower", self.describe()),
                           _num((s.get("aenergy") or {}).get("total"), "aenergy.total", self.describe()) * 3600)
        m = (self._get("/status").get("meters") or [{}])[0]
        return Reading(_num(m.get("power"), "meters[0].power", self.describe()),
                       _num(m.get("total"), "meters[0].total", self.describe()) * 60)

    def describe(self) -> str:
        return f"shelly://{self.host}" + (f" (Gen{self.gen})" if self.gen else "")


class Tasmota(Protocol):
    name = "tasmota"
    counter_step_j = 3600.0  # Total in kWh with 3 decimals: 1 Wh

    def read(self) -> Reading:
        e = (self._get("/cm?cmnd=Status%208").get("StatusSNS") or {}).get("ENERGY") or {}
        return Reading(_num(e.get("Power"), "ENERGY.Power", self.describe()),
                       _num(e.get("Total"), "ENERGY.Total", self.describe()) * 3.6e6)


class HomeAssistant(Protocol):
    name = "homeassistant"

    def __init__(self, host, path, timeout_s):
        super().__init__(host, path, timeout_s)
        self.entity = path.strip("/")
        if not self.entity.startswith("sensor."):
            raise ConfigError("<wall meter>", "homeassistant URL", "homeassistant://HOST:PORT/sensor.ENTITY",
                              self.describe())
        if not os.environ.get(HA_TOKEN_ENV):
            raise DeviceUnavailable(f"{self.describe()}: set {HA_TOKEN_ENV} to a Home Assistant long-lived access "
                                    "token")

    def read(self) -> Reading:
        s = self._get(f"/api/states/{self.entity}",
                      headers={"Authorization": f"Bearer {os.environ.get(HA_TOKEN_ENV, '')}"})
        unit = (s.get("attributes") or {}).get("unit_of_measurement", "W")
        scale = {"W": 1.0, "kW": 1000.0}.get(unit)
        if scale is None:
            raise PlugError(f"{self.describe()}: unit {unit!r}, expected W or kW (a power sensor)")
        return Reading(_num(s.get("state"), "state", self.describe()) * scale, None)


class Kasa(Protocol):
    """python-kasa's Device on an event loop of its own (the poller thread's)."""

    name = "kasa"
    counter_step_j = 3.6  # consumption_total in kWh with 6 decimals on current firmware: about 1 mWh

    def __init__(self, host, path, timeout_s):
        super().__init__(host, path, timeout_s)
        import asyncio

        try:
            import kasa
        except ImportError:
            raise DeviceUnavailable("kasa:// needs python-kasa (pip install python-kasa)") from None
        self.kasa = kasa
        self.loop = asyncio.new_event_loop()
        creds = None
        if os.environ.get(KASA_USER_ENV):
            creds = kasa.Credentials(os.environ[KASA_USER_ENV], os.environ.get(KASA_PASSWORD_ENV, ""))
        try:
            config = kasa.DeviceConfig(host=host, credentials=creds, timeout=int(timeout_s) or 1)
            self.dev = self.loop.run_until_complete(asyncio.wait_for(kasa.Device.connect(config=config), timeout_s))
        except Exception as e:  # noqa: BLE001 - the library's own errors, said without credentials
            raise DeviceUnavailable(f"{self.describe()}: {type(e).__name__}") from None

    def read(self) -> Reading:
        import asyncio

        try:
            self.loop.run_until_complete(asyncio.wait_for(self.dev.update(), self.timeout_s))
            energy = self.dev.modules[self.kasa.Module.Energy]
        except asyncio.TimeoutError:
            raise PlugError(f"{self.describe()}: no answer within {self.timeout_s:g} s") from None
        except Exception as e:  # noqa: BLE001
            raise PlugError(f"{self.describe()}: {type(e).__name__}") from None
        total = energy.consumption_total
        return Reading(_num(energy.current_consumption, "current_consumption", self.describe()),
                       None if total is None else _num(total, "consumption_total", self.describe()) * 3.6e6)


PROTOCOLS = {"shelly": Shelly, "tasmota": Tasmota, "homeassistant": HomeAssistant, "kasa": Kasa}


def masked(url: str) -> str:
    """A URL as it may be printed: a user:password@ and any query (where tokens hide) replaced by ***."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<a URL that does not parse>"
    netloc = ("***@" + u.netloc.rsplit("@", 1)[1]) if "@" in u.netloc else u.netloc
    return u._replace(netloc=netloc, query="***" if u.query else "", fragment="").geturl()


def parse(url: str) -> tuple[str, str, str]:
    """``scheme://host[:port][/path]`` -> (scheme, host[:port], path); ConfigError for anything else (the URL said
    with its secrets masked)."""
    try:
        u = urlsplit(url)
        bad = u.scheme not in SCHEMES or not u.netloc or "@" in u.netloc or bool(u.query)
    except ValueError:
        bad = True
    if bad:
        raise ConfigError("<wall meter>", "wall", "shelly://HOST, tasmota://HOST, homeassistant://HOST:8123/"
                          "sensor.ENTITY or kasa://HOST (secrets go in environment variables, not the URL)",
                          masked(url))
    return u.scheme, u.netloc, u.path


class WallPart(Part):
    domain = "wall"

    def __init__(self, url: str, rate_hz: float = 1.0, timeout_s: float = 2.0, clock: Clock = time.perf_counter,
                 protocol: Protocol | None = None):
        super().__init__(clock)
        scheme, host, path = parse(url)
        self.protocol = protocol or PROTOCOLS[scheme](host, path, timeout_s)
        self.source = f"{self.protocol.name}"
        self.interval_s = 1.0 / rate_hz
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float | None, float | None]] = []  # (t, W, accumulated counter J)
        self._resets: list[float] = []  # times a counter was found reset
        self._failures: list[float] = []  # times of failed readings
        self.errors: list[str] = []
        self.failed_readings = 0  # over the whole run (the windows' failure times are pruned as they go)
        self._acc_j = 0.0
        self._last_raw: float | None = None
        self.resets = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- polling
    def poll(self) -> None:
        """One reading: power, and the counter accumulated across resets (a counter going backwards restarted). The
        plug read its meter somewhere between the request and its answer: the reading is timed at the midpoint, so a
        slow network (or a busy box) does not shift every reading late."""
        t = self.clock()
        try:
            r = self.protocol.read()
            t = (t + self.clock()) / 2
        except Exception as e:  # noqa: BLE001 - whatever a plug answers, the polling goes on and the window is flagged
            why = str(e) if isinstance(e, PlugError) else \
                f"{self.protocol.describe()}: unexpected answer ({type(e).__name__})"
            with self._lock:
                self._failures.append(t)
                self.failed_readings += 1
                self.errors.append(why)
                del self.errors[:-20]
            return
        acc = None
        if r.counter_j is not None:
            if self._last_raw is not None:
                delta = r.counter_j - self._last_raw
                if delta < 0:  # the plug's counter was reset: what it shows now is all since the reset
                    self.resets += 1
                    delta = r.counter_j
                    with self._lock:
                        self._resets.append(t)
                self._acc_j += delta
            self._last_raw = r.counter_j
            acc = self._acc_j
        with self._lock:
            self._samples.append((t, r.power_w, acc))

    def start(self) -> None:
        if self._thread is None:
            self.poll()  # a reading before the first window opens
            self._thread = threading.Thread(target=self._loop, name="shadowbench-wall", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            self.poll()
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - time.perf_counter()))

    # -- the part contract
    def power_w(self) -> float | None:
        with self._lock:
            return self._samples[-1][1] if self._samples else None

    def window(self, counter_j, integrated_j, states, duration_s, t0=None, t1=None) -> PartWindow:
        if t1 is None:
            t1 = self.clock()
        t0 = t1 - duration_s if t0 is None else t0
        self._wait_past(t1)
        with self._lock:
            pts = [s for s in self._samples if t0 - 2 * self.interval_s <= s[0] <= t1 + 2 * self.interval_s]
            failed = any(t0 - self.interval_s <= f <= t1 + self.interval_s for f in self._failures)
            # energy between the last reading and a reset is not in the counter: the power readings cover it
            reset = any(t0 - 2 * self.interval_s <= r <= t1 + 2 * self.interval_s for r in self._resets)
            self._samples = [s for s in self._samples if s[0] >= t1 - 5 * self.interval_s]
            self._failures = [f for f in self._failures if f >= t1 - 5 * self.interval_s]
            self._resets = [r for r in self._resets if r >= t1 - 5 * self.interval_s]
        energy, source = None, self.source
        power = [(t, p) for t, p, _ in pts if p is not None]
        integ = integrate(power, t0, t1) if not failed else None
        counts = [(t, c) for t, _, c in pts if c is not None]
        step = self.protocol.counter_step_j
        if not failed and not reset and step and len(counts) >= 2 and counts[0][0] <= t0 and counts[-1][0] >= t1:
            c0, c1 = _interp(counts, t0), _interp(counts, t1)
            if c1 - c0 > 0 and step <= RESOLUTION_SHARE * (c1 - c0):
                energy, source = c1 - c0, f"{self.source}_counter"
        if energy is None and integ is not None:
            energy, source = integ, f"{self.source}_power_integrated"
        cols = {"wall_energy_j": energy, "wall_avg_power_w": energy / duration_s if energy is not None and
                duration_s > 0 else None, "wall_source": source if energy is not None else "none"}
        flags = ([] if energy is not None else ["wall_unavailable"]) + (["wall_counter_reset"] if reset else [])
        return PartWindow(energy, cols, flags)

    def _wait_past(self, t1: float) -> None:
        """Until the plug has answered (or failed) once after t1, so the window's end is covered (at most one poll
        interval and its timeout)."""
        deadline = time.perf_counter() + self.interval_s + self.protocol.timeout_s + 0.5
        while time.perf_counter() < deadline and self._thread is not None:
            with self._lock:
                last = max([s[0] for s in self._samples[-1:]] + self._failures[-1:], default=float("-inf"))
            if last >= t1:
                return
            time.sleep(0.02)

    def describe(self) -> str:
        return f"wall: {self.protocol.describe()} polled at {1 / self.interval_s:g} Hz"

    def trouble(self) -> str | None:
        """One line for the terminal when readings failed during the run (the rows say it per window)."""
        if not self.failed_readings:
            return None
        return (f"wall: {self.failed_readings} reading(s) of {self.protocol.describe()} failed; the last: "
                f"{self.errors[-1]}; the windows they fell in have no wall energy (flag wall_unavailable)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _interp(points: list[tuple[float, float]], t: float) -> float:
    for (ta, ca), (tb, cb) in zip(points, points[1:]):
        if ta <= t <= tb:
            return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else ca
    return points[0][1] if t < points[0][0] else points[-1][1]


def configured_url(cli_value: str | None = None) -> tuple[str | None, str]:
    """The wall meter's URL and where it came from: --wall, SHADOWBENCH_WALL, or the machine file
    (``$XDG_CONFIG_HOME/shadowbench/machine.toml``, ``[energy] wall = "..."``)."""
    if cli_value:
        return cli_value, "--wall"
    if os.environ.get(WALL_ENV):
        return os.environ[WALL_ENV], WALL_ENV
    import tomllib
    from pathlib import Path

    cfg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "shadowbench" / "machine.toml"
    if cfg.is_file():
        try:
            wall = tomllib.loads(cfg.read_text()).get("energy", {}).get("wall")
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(cfg, "<syntax>", "valid TOML", f"<{e}>") from None
        if wall is not None:
            if not isinstance(wall, str):
                raise ConfigError(cfg, "energy.wall", "a plug URL like shelly://192.168.1.50", wall)
            return wall, str(cfg)
    return None, ""
