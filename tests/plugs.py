"""Smart-plug emulators on 127.0.0.1 for the wall-meter tests: each answers like the real device (the vendors'
documented JSON shapes and units) from one power trace whose integral is known exactly, and can be told to fail.

- Shelly Gen2/Gen3: ``/shelly`` {"gen": 2, ...}; ``/rpc/Switch.GetStatus?id=0`` {"apower": W, "aenergy": {"total":
  Wh to 3 decimals}}.
- Shelly Gen1: ``/shelly`` {"type": "SHPLG-S"}; ``/status`` {"meters": [{"power": W, "total": whole watt-minutes}]}.
- Tasmota: ``/cm?cmnd=Status%208`` {"StatusSNS": {"ENERGY": {"Power": W, "Total": kWh to 3 decimals}}}.
- Home Assistant: ``/api/states/sensor.NAME`` with ``Authorization: Bearer TOKEN`` {"state": "W as text",
  "attributes": {"unit_of_measurement": "W"}}; 401 for any other token; ``ha_unit="kW"`` answers in kW.

As unkind as the devices: a counter that starts where months of use left it (``offset_j``), and ``fail`` set to
"timeout" (no answer for 3 s), "500", "unavailable" (Home Assistant's state when the plug drops off its network:
``"state": "unavailable"``, as does any device's reading as null), "garbage" (a body that is not JSON), "list" (a
JSON array where an object belongs), "nan" / "negative" (a reading that is not a power); ``close()`` leaves a
refused connection.
"""
from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Trace:
    """P(t) = base + amp·sin(2πt/period) W from the emulator's start (time.perf_counter), and its exact integral."""

    def __init__(self, base=120.0, amp=60.0, period=7.0):
        self.base, self.amp, self.period = base, amp, period
        self.t0 = time.perf_counter()

    def power(self, t: float) -> float:
        return self.base + self.amp * math.sin(2 * math.pi * (t - self.t0) / self.period)

    def energy(self, t_from: float, t_to: float) -> float:
        w = 2 * math.pi / self.period
        f = lambda t: self.base * t - self.amp / w * math.cos(w * (t - self.t0))  # noqa: E731
        return f(t_to) - f(t_from)


class Plug:
    def __init__(self, kind: str, token: str = "", trace: Trace | None = None, offset_j: float = 0.0,
                 ha_unit: str = "W"):
        self.kind, self.token, self.offset_j, self.ha_unit = kind, token, offset_j, ha_unit
        self.trace = trace or Trace()
        self.fail: str | None = None  # "timeout", "500", "unavailable", "garbage", "list", "nan", "negative"
        self.reset_at: float | None = None  # perf_counter time from which the counter restarts at 0
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        scheme = {"shelly2": "shelly", "shelly1": "shelly", "tasmota": "tasmota", "ha": "homeassistant"}[self.kind]
        return f"{scheme}://{self.address}" + ("/sensor.server_plug_power" if self.kind == "ha" else "")

    def counter_j(self, t: float) -> float:
        if self.reset_at is not None and t >= self.reset_at:
            return self.trace.energy(self.reset_at, t)
        return self.offset_j + self.trace.energy(self.trace.t0, t)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str, headers) -> tuple[int, dict]:
        t = time.perf_counter()
        p, e = self.trace.power(t), self.counter_j(t)
        if self.fail == "nan":
            p = float("nan")
        elif self.fail == "negative":
            p, e = -abs(p), -abs(e)
        if self.kind in ("shelly2", "shelly1") and path == "/shelly":
            return 200, ({"gen": 2, "id": "shellyplusplugs-emulated", "model": "SNPL-00112EU"} if self.kind == "shelly2"
                         else {"type": "SHPLG-S", "mac": "emulated"})
        if self.kind == "shelly2" and path == "/rpc/Switch.GetStatus?id=0":
            return 200, {"id": 0, "output": True, "apower": round(p, 1), "voltage": 230.1,
                         "aenergy": {"total": round(e / 3600, 3), "by_minute": [0, 0, 0]}}
        if self.kind == "shelly1" and path == "/status":
            return 200, {"meters": [{"power": round(p, 2), "is_valid": True, "total": int(e // 60)}]}
        if self.kind == "tasmota" and path == "/cm?cmnd=Status%208":
            return 200, {"StatusSNS": {"Time": "2026-11-25T21:00:00", "ENERGY": {
                "Total": round(e / 3.6e6, 3), "Power": round(p) if math.isfinite(p) else p, "Voltage": 230}}}
        if self.kind == "ha" and path == "/api/states/sensor.server_plug_power":
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"message": "Invalid authentication"}
            state = "unavailable" if self.fail == "unavailable" else f"{p / (1000 if self.ha_unit == 'kW' else 1):.4f}"
            return 200, {"entity_id": "sensor.server_plug_power", "state": state,
                         "attributes": {"unit_of_measurement": self.ha_unit, "device_class": "power"}}
        return 404, {"error": "not found"}

    def _handler(self):
        plug = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                plug.requests += 1
                if plug.fail == "timeout":
                    time.sleep(3)
                if plug.fail == "500":
                    status, body = 500, {"error": "internal"}
                else:
                    status, body = plug._answer(self.path, self.headers)
                if plug.fail == "unavailable" and plug.kind != "ha":  # the device's own null reading
                    body = json.loads(json.dumps(body).replace('"apower": ', '"apower": null, "x": ')
                                      .replace('"Power": ', '"Power": null, "x": '))
                data = json.dumps(body).encode()  # NaN is written as the bare NaN a sloppy firmware sends
                if plug.fail == "garbage":
                    data = b'{"StatusSNS": {"ENERGY": {"Power": 12'  # cut short
                elif plug.fail == "list":
                    data = json.dumps([body]).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        return Handler


if __name__ == "__main__":  # python -m tests.plugs shelly2: an emulated plug to try `--wall` without one
    import sys

    plug = Plug(sys.argv[1] if len(sys.argv) > 1 else "shelly2", token=sys.argv[2] if len(sys.argv) > 2 else "")
    print(f"emulated {plug.kind} plug (120 W ± 60 W): --wall {plug.url}  (Ctrl-C stops it)", flush=True)
    try:
        plug.thread.join()
    except KeyboardInterrupt:
        plug.close()
