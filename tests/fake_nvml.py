"""A fake of the pynvml module at the library boundary, behaving like the real one: mJ for the energy counter
(which updates only every 100 ms), mW for power, NVMLError with the real codes (NOT_SUPPORTED for the counter and
the instant-power field on older cards, GPU_IS_LOST once the card falls off the bus), a 1 s average from
nvmlDeviceGetPowerUsage as on Ampere and newer. Power follows a scripted trace shaped like a 300 W-class card:
idle, ramp, plateau with ripple and noise.

As unkind as the hardware: the energy counter counts from when the driver loaded, so it starts high (a day at 1 kW
by default) and never wraps; ``gpus=N`` cards (card i draws ``scales[i]`` times the trace), each with its own handle
and UUID, found by index or by UUID (bytes, as the C library takes it); ``usedGpuMemory`` an int in bytes, or None
where the driver will not say (another container's process); NOT_SUPPORTED for the instant-power field
(``has_instant=False``), so nvmlDeviceGetPowerUsage's mW are the fallback."""
from __future__ import annotations

import math
import threading
import time
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_FI_DEV_POWER_INSTANT = 186
NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSwThermalSlowdown = 0x20

_NAMES = {3: "Not Supported", 15: "GPU is lost", 1: "Uninitialized", 12: "NVML Shared Library Not Found",
          2: "Invalid Argument", 6: "Not Found"}
BOOT_ENERGY_MJ = 86_400_000_000  # the counter's reading when a fake is made: a day at 1 kW since the driver loaded


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return _NAMES.get(self.value, f"NVML error {self.value}")


class PowerTrace:
    """P(t) for t seconds after start: idle, linear ramp, plateau with a 3 Hz ripple and ±3 % noise per 20 ms."""

    def __init__(self, idle_w=25.0, peak_w=300.0, idle_s=0.5, ramp_s=0.5, dt=0.0005, horizon_s=120.0,
                 clock=time.perf_counter):
        self.idle_w, self.peak_w, self.idle_s, self.ramp_s = idle_w, peak_w, idle_s, ramp_s
        self.clock = clock
        self.t_start = clock()
        self.dt = dt
        n = int(horizon_s / dt)
        # exact cumulative energy on a fine grid (the noise is piecewise constant, so this is exact to dt)
        self._cum = [0.0] * (n + 1)
        acc = 0.0
        for i in range(n):
            acc += self.power(i * dt + dt / 2) * dt
            self._cum[i + 1] = acc

    def power(self, t: float) -> float:
        if t < self.idle_s:
            return self.idle_w
        if t < self.idle_s + self.ramp_s:
            return self.idle_w + (self.peak_w - self.idle_w) * (t - self.idle_s) / self.ramp_s
        bucket = int(t / 0.02)
        noise = ((bucket * 2654435761) % 1000) / 1000.0 * 0.06 - 0.03
        return self.peak_w * (1 + 0.02 * math.sin(2 * math.pi * 3 * t) + noise)

    def energy(self, t: float) -> float:
        """Exact energy (J) from trace start to t seconds after it."""
        x = max(0.0, t) / self.dt
        i = min(int(x), len(self._cum) - 2)
        return self._cum[i] + (self._cum[i + 1] - self._cum[i]) * (x - i)

    def now(self) -> float:
        return self.clock() - self.t_start

    def exact_j(self, pc0: float, pc1: float) -> float:
        """Exact energy between two readings of the trace's clock."""
        return self.energy(pc1 - self.t_start) - self.energy(pc0 - self.t_start)


class FakeNVML:
    """Use as the pynvml module: ``NVML.open(FakeNVML(...))``."""

    NVMLError = NVMLError

    def __init__(self, trace: PowerTrace, has_counter=True, has_instant=True, counter_period_s=0.1,
                 name="NVIDIA GeForce RTX 3090", memory_gb=24.0, power_limit_w=350.0, foreign_pids=(4242,),
                 gpus=1, scales=(1.0, 0.5, 0.25, 0.125), boot_energy_mj=BOOT_ENERGY_MJ):
        self.trace = trace
        self.gpus, self.scales, self.boot_energy_mj = gpus, scales, boot_energy_mj
        self.has_counter, self.has_instant = has_counter, has_instant
        self.period = counter_period_s
        self.name, self.memory_gb, self.power_limit_w = name, memory_gb, power_limit_w
        self.foreign_pids = foreign_pids
        self.lost = False
        self.initialised = False
        self.calls = 0
        self._lock = threading.Lock()
        for k, v in globals().items():
            if k.startswith(("NVML_", "nvmlClocksEventReason")):
                setattr(self, k, v)

    def lose(self):
        self.lost = True

    def _check(self, handle=None):
        with self._lock:
            self.calls += 1
        if not self.initialised:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if self.lost and handle is not None:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)

    def nvmlInit(self):
        self.initialised = True

    def nvmlShutdown(self):
        self._check()
        self.initialised = False

    def nvmlSystemGetDriverVersion(self):
        self._check()
        return "560.35.03"

    def nvmlDeviceGetCount(self):
        self._check()
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i):
        self._check()
        if not 0 <= i < self.gpus:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return f"handle-{i}"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._check()
        if not isinstance(uuid, bytes):  # the C library takes a char*: older bindings pass it through as given
            raise TypeError("bytes or integer address expected instead of str instance")
        for i in range(self.gpus):
            if uuid.decode() == self._uuid(i):
                return f"handle-{i}"
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    @staticmethod
    def _uuid(i: int) -> str:
        return f"GPU-{i:08x}-fake-4c1e-9a0b-{i:012x}"

    def _scale(self, h) -> float:
        return self.scales[int(h.rsplit("-", 1)[1])]

    def nvmlDeviceGetName(self, h):
        self._check(h)
        return self.name

    def nvmlDeviceGetUUID(self, h):
        self._check(h)
        return self._uuid(int(h.rsplit("-", 1)[1]))

    def nvmlDeviceGetMemoryInfo(self, h):
        self._check(h)
        used = 1.2e9 if self.trace.now() < self.trace.idle_s else 9.5e9
        return SimpleNamespace(total=int(self.memory_gb * 1e9), used=int(used), free=int(self.memory_gb * 1e9 - used))

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        self._check(h)
        return int(self.power_limit_w * 1000)  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._check(h)
        if not self.has_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        t = self.trace.now()
        t_updated = math.floor(t / self.period) * self.period  # the counter moves only every ~100 ms
        return self.boot_energy_mj + int(self.trace.energy(t_updated) * self._scale(h) * 1000)  # mJ since driver load

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        self._check(h)
        out = []
        for fid in field_ids:
            if fid == NVML_FI_DEV_POWER_INSTANT and self.has_instant:
                mw = int(self.trace.power(self.trace.now()) * self._scale(h) * 1000)
                out.append(SimpleNamespace(fieldId=fid, nvmlReturn=NVML_SUCCESS, value=SimpleNamespace(uiVal=mw)))
            else:
                out.append(SimpleNamespace(fieldId=fid, nvmlReturn=NVML_ERROR_NOT_SUPPORTED,
                                           value=SimpleNamespace(uiVal=0)))
        return out

    def nvmlDeviceGetPowerUsage(self, h):
        self._check(h)
        t = self.trace.now()
        return int((self.trace.energy(t) - self.trace.energy(t - 1.0)) * self._scale(h) * 1000)  # mW, 1 s average

    def nvmlDeviceGetUtilizationRates(self, h):
        self._check(h)
        return SimpleNamespace(gpu=3 if self.trace.now() < self.trace.idle_s else 97, memory=40)

    def nvmlDeviceGetClockInfo(self, h, clock):
        self._check(h)
        return 210 if self.trace.now() < self.trace.idle_s else 1695

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._check(h)
        return 38 if self.trace.now() < self.trace.idle_s else 71

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self._check(h)
        return nvmlClocksEventReasonGpuIdle if self.trace.now() < self.trace.idle_s else nvmlClocksEventReasonSwPowerCap

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        self._check(h)
        import os

        # bytes as an int; None where the driver does not say (a process of another container, or no permission)
        return [SimpleNamespace(pid=os.getpid(), usedGpuMemory=8_000_000_000)] + [
            SimpleNamespace(pid=p, usedGpuMemory=None) for p in self.foreign_pids]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        self._check(h)
        return []


NVML_ERROR_NO_PERMISSION = 4


class LimitedFakeNVML(FakeNVML):
    """A card whose power obeys its limit: ``min(limit, demand)`` W, demand ``busy_w`` while ``busy`` (a fake backend
    sets it around its work) and ``idle_w`` otherwise; a settable limit within [min_w, max_w]
    (NVML_ERROR_NO_PERMISSION unless ``root``), in NVML's units (mW, mJ). Energy accumulates exactly over the
    piecewise-constant power, and the counter moves every ``counter_period_s`` as the real one does."""

    def __init__(self, busy_w=260.0, idle_w=30.0, min_w=100.0, max_w=400.0, default_w=350.0, root=True,
                 counter_period_s=0.01, **kw):
        super().__init__(PowerTrace(horizon_s=1.0), counter_period_s=counter_period_s, power_limit_w=default_w, **kw)
        self.busy_w, self.idle_w, self.min_w, self.max_w, self.default_w = busy_w, idle_w, min_w, max_w, default_w
        self.root = root
        self.limit_w = default_w
        self._busy = False
        self._e = 0.0
        self._t = time.perf_counter()
        self.limit_history = [default_w]

    def _power(self) -> float:
        return min(self.limit_w, self.busy_w if self._busy else self.idle_w)

    def _advance(self) -> float:
        now = time.perf_counter()
        with self._lock:
            self._e += self._power() * (now - self._t)
            self._t = now
            return self._e

    @property
    def busy(self) -> bool:
        return self._busy

    @busy.setter
    def busy(self, v: bool) -> None:
        self._advance()
        self._busy = v

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h):
        self._check(h)
        return (int(self.min_w * 1000), int(self.max_w * 1000))

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h):
        self._check(h)
        return int(self.default_w * 1000)

    def nvmlDeviceGetPowerManagementLimit(self, h):
        self._check(h)
        return int(self.limit_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self.nvmlDeviceGetPowerManagementLimit(h)

    def nvmlDeviceSetPowerManagementLimit(self, h, mw):
        self._check(h)
        if not self.root:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        if not self.min_w * 1000 <= mw <= self.max_w * 1000:
            raise NVMLError(2)
        self._advance()
        self.limit_w = mw / 1000
        self.limit_history.append(self.limit_w)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._check(h)
        e = self._advance()
        return self.boot_energy_mj + int(e * 1000)  # mJ since the driver loaded

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        self._check(h)
        return [SimpleNamespace(fieldId=fid, nvmlReturn=NVML_SUCCESS if fid == NVML_FI_DEV_POWER_INSTANT else
                                NVML_ERROR_NOT_SUPPORTED, value=SimpleNamespace(uiVal=int(self._power() * 1000)))
                for fid in field_ids]

    def nvmlDeviceGetPowerUsage(self, h):
        self._check(h)
        return int(self._power() * 1000)
