"""NVML adapter and the GPU part of the energy meter: the only place that talks to pynvml (nvidia-ml-py), the only
place that converts its units (mJ, mW, bytes) to J, W and GB, and the home of everything NVIDIA-specific about a
window: counter edge alignment, the integrated-power fallback, the counter/power cross-check, a lost GPU, and the
GPU state summary.

The pynvml module is passed in (or imported lazily), so tests drive this adapter with a fake that behaves like the
real library at its boundary. ``CUDA_VISIBLE_DEVICES`` is honored: only the GPUs a CUDA process would see are
listed and metered.
"""
from __future__ import annotations

import os
import time
from typing import Any

from ..errors import DeviceUnavailable
from .base import Clock, Part, PartWindow

CROSS_CHECK_MIN_S = 1.0  # counter vs integrated power is compared only on windows at least this long
CROSS_CHECK_TOLERANCE = 0.10
COUNTER_STEP_S = 0.1  # the energy counter moves about every 100 ms
EDGE_WAIT_S = 0.15  # how long an edge waits for the next counter step
EDGE_POLL_S = 0.002


def load_pynvml():
    """The real pynvml module, or None with no NVIDIA library/driver on this box."""
    try:
        import pynvml  # provided by the nvidia-ml-py distribution
    except ImportError:
        return None
    return pynvml


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def visible_indices(count: int, env: str | None = None) -> list[int]:
    """NVML indices of the GPUs that CUDA_VISIBLE_DEVICES (indices or GPU-UUIDs; UUIDs resolved by caller) allows."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES") if env is None else env
    if env is None or env.strip() == "":
        return list(range(count)) if env is None else []
    out = []
    for part in env.split(","):
        part = part.strip()
        if part.isdigit() and int(part) < count:
            out.append(int(part))
        elif not part.isdigit():
            out.append(part)  # a UUID, resolved by the caller
        else:
            break  # CUDA stops at the first invalid index
    return out


class NVML:
    """An initialised NVML session. ``NVML.open()`` raises DeviceUnavailable where there is no usable GPU."""

    def __init__(self, pynvml_module):
        self.nv = pynvml_module
        self.handles: list[Any] = []

    @classmethod
    def open(cls, pynvml_module=None) -> "NVML":
        nv = pynvml_module or load_pynvml()
        if nv is None:
            raise DeviceUnavailable("NVML: the nvidia-ml-py package is not installed")
        try:
            nv.nvmlInit()
        except nv.NVMLError as e:
            raise DeviceUnavailable(f"NVML: no NVIDIA driver or GPU ({e})") from e
        self = cls(nv)
        try:
            count = nv.nvmlDeviceGetCount()
            wanted = visible_indices(count)
            for w in wanted:
                if isinstance(w, int):
                    self.handles.append(nv.nvmlDeviceGetHandleByIndex(w))
                else:
                    try:
                        self.handles.append(nv.nvmlDeviceGetHandleByUUID(w.encode() if isinstance(w, str) else w))
                    except nv.NVMLError:
                        break
        except nv.NVMLError as e:
            self.close()
            raise DeviceUnavailable(f"NVML: could not list GPUs ({e})") from e
        if not self.handles:
            self.close()
            raise DeviceUnavailable("NVML: no visible GPU (CUDA_VISIBLE_DEVICES or none installed)")
        return self

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down must never mask the real error
            pass

    def _opt(self, fn, *args, scale: float = 1.0):
        """A query that may be NOT_SUPPORTED on some cards: None instead of an error."""
        try:
            v = fn(*args)
        except self.nv.NVMLError:
            return None
        return v * scale if scale != 1.0 and isinstance(v, (int, float)) else v

    def device_info(self) -> list[dict]:
        nv = self.nv
        driver = _text(self._opt(nv.nvmlSystemGetDriverVersion) or "")
        out = []
        for h in self.handles:
            mem = self._opt(nv.nvmlDeviceGetMemoryInfo, h)
            out.append({
                "name": _text(nv.nvmlDeviceGetName(h)),
                "uuid": _text(self._opt(nv.nvmlDeviceGetUUID, h) or ""),
                "driver": driver,
                "memory_total_gb": (mem.total / 1e9) if mem is not None else 0.0,
                "memory_free_gb": (mem.free / 1e9) if mem is not None else None,
                "power_limit_w": self._opt(nv.nvmlDeviceGetEnforcedPowerLimit, h, scale=1e-3),
                "processes": self.processes(h),
            })
        return out

    def processes(self, handle) -> list[dict]:
        """Processes holding memory on a GPU: pid, name (from the process table, where visible) and GB."""
        nv, out = self.nv, {}
        for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, fn_name, None)
            for p in (self._opt(fn, handle) if fn else None) or []:
                used = getattr(p, "usedGpuMemory", None)
                out[p.pid] = {"pid": p.pid, "name": _process_name(p.pid),
                              "memory_gb": used / 1e9 if isinstance(used, int) else None}
        return list(out.values())


def _process_name(pid: int) -> str:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # noqa: BLE001 - gone, or in another container
        return f"pid {pid}"


def probe_gpus(pynvml_module=None) -> tuple[list[dict], str]:
    """(GPU descriptions, reason when there are none). Never raises for a missing GPU."""
    try:
        session = NVML.open(pynvml_module)
    except DeviceUnavailable as e:
        return [], str(e)
    try:
        return session.device_info(), ""
    finally:
        session.close()


# ------------------------------------------------------------------------------------------------ energy metering

_REASONS = [  # clock-event (throttle) reason bits -> short names
    ("nvmlClocksEventReasonGpuIdle", "idle"), ("nvmlClocksEventReasonApplicationsClocksSetting", "app_clocks"),
    ("nvmlClocksEventReasonSwPowerCap", "sw_power_cap"), ("nvmlClocksEventReasonHwSlowdown", "hw_slowdown"),
    ("nvmlClocksEventReasonSyncBoost", "sync_boost"), ("nvmlClocksEventReasonSwThermalSlowdown", "sw_thermal"),
    ("nvmlClocksEventReasonHwThermalSlowdown", "hw_thermal"),
    ("nvmlClocksEventReasonHwPowerBrakeSlowdown", "hw_power_brake"),
]


def reason_names(nv, mask: int) -> list[str]:
    return [name for attr, name in _REASONS if getattr(nv, attr, 0) and mask & getattr(nv, attr)]


class NVMLPart(Part):
    """GPU energy for the composite meter: the energy counter (mJ, Volta+) where supported, and a ≥10 Hz sample of
    instantaneous power (NVML_FI_DEV_POWER_INSTANT where supported, else nvmlDeviceGetPowerUsage, a 1 s average on
    Ampere and newer) kept for the power series, average/peak power, the cross-check, and as the fallback when the
    counter is NOT_SUPPORTED. A GPU lost mid-run (GPU_IS_LOST) stops metering it; the run goes on, rows are flagged.
    """

    domain = "gpu"

    def __init__(self, session: NVML, clock: Clock = time.perf_counter, sleep=time.sleep):
        super().__init__(clock)
        self.sleep = sleep
        self.session = session
        self.nv = session.nv
        self.handles = session.handles
        self.has_counter = True
        self.has_instant = True
        self.lost = False
        self.lost_reason = ""
        self.own_pid = os.getpid()

    @property
    def source(self) -> str:
        return "nvml_counter" if self.has_counter else "nvml_power_integrated"

    @property
    def waits_at_edge(self) -> bool:  # type: ignore[override]
        return self.has_counter and self.align

    align = True  # wait for the counter's next step at window edges (see edge)

    def edge(self, which: str) -> tuple[float, float | None]:
        """(time, energy J) at a window edge. The counter updates about every 100 ms, so the edge waits for the
        next update and moves the reading back (begin: the window starts at the update) with the instantaneous
        power, instead of being up to 100 ms stale."""
        t_edge = self.clock()
        c = self.counter_j()
        if c is None or not self.waits_at_edge:
            return t_edge, c
        p_edge = self.power_w() or 0.0
        deadline = t_edge + EDGE_WAIT_S
        while self.clock() < deadline:
            self.sleep(EDGE_POLL_S)
            c2 = self.counter_j()
            if c2 is None:
                return t_edge, None
            if c2 != c:
                t_u = self.clock()
                if which == "begin":
                    return t_u, c2
                return t_edge, c2 - p_edge * (t_u - t_edge)
        return t_edge, c

    def at(self, counter_j: float | None, t_from: float, t_to: float) -> float | None:
        if counter_j is None or not self.has_counter:
            return counter_j
        return counter_j + (self.power_w() or 0.0) * (t_to - t_from)

    def window(self, counter_j, integrated_j, states, duration_s, t0=None, t1=None) -> PartWindow:
        """Counter energy where there is a counter, else the integrated instantaneous power; nothing once the GPU is
        lost; both figures kept, and flagged when they disagree by more than 10% on a window of 1 s or more."""
        flags = []
        energy = counter_j if self.has_counter else integrated_j
        if self.lost:
            energy = None
            flags.append(self.lost_reason or "gpu_lost")
        if (counter_j is not None and integrated_j is not None and duration_s >= CROSS_CHECK_MIN_S
                and counter_j > 0 and abs(integrated_j - counter_j) / counter_j > CROSS_CHECK_TOLERANCE):
            flags.append("nvml_counter_vs_power_mismatch")
        cols = {"gpu_energy_counter_j": counter_j, "gpu_energy_integrated_j": integrated_j,
                **self.summarize(states)}
        return PartWindow(energy, cols, flags)

    def summarize(self, states: list[dict]) -> dict:
        """GPU state over a window from the sampler's readings."""
        states = [s for s in states if s]
        out: dict[str, object] = {"gpu_power_limit_w": self.power_limit_w() if not self.lost else None}
        if states:
            out["gpu_util_pct"] = sum(s["gpu_util_pct"] for s in states) / len(states)
            out["gpu_mem_peak_gb"] = max(s["gpu_mem_used_gb"] for s in states)
            clocks = sorted(s["sm_clock_mhz"] for s in states)
            out["sm_clock_mhz"] = clocks[len(clocks) // 2]
            out["gpu_temp_c_max"] = max(s["gpu_temp_c"] for s in states)
            mask = 0
            for s in states:
                mask |= s["clock_event_mask"]
            out["clock_events"] = ";".join(reason_names(self.nv, mask))
        out["gpu_foreign_pids"] = ";".join(self.foreign_processes())
        return out

    def _lose(self, e) -> None:
        self.lost = True
        self.lost_reason = f"gpu_lost ({e})"

    def open(self) -> None:
        nv = self.nv
        for h in self.handles:
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(h)
            except nv.NVMLError as e:
                if getattr(e, "value", None) == nv.NVML_ERROR_NOT_SUPPORTED:
                    self.has_counter = False
                else:
                    raise DeviceUnavailable(f"NVML energy counter: {e}") from e
            try:
                [fv] = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_POWER_INSTANT])
                if fv.nvmlReturn != nv.NVML_SUCCESS:
                    self.has_instant = False
            except nv.NVMLError:
                self.has_instant = False

    def counter_j(self) -> float | None:
        """Sum over visible GPUs of the energy counter, in J; None without a counter or after the GPU is lost."""
        if not self.has_counter or self.lost:
            return None
        try:
            return sum(self.nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0
        except self.nv.NVMLError as e:
            self._lose(e)
            return None

    def power_w(self) -> float | None:
        """Instantaneous power summed over visible GPUs, in W."""
        if self.lost:
            return None
        nv = self.nv
        total = 0.0
        try:
            for h in self.handles:
                if self.has_instant:
                    [fv] = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_POWER_INSTANT])
                    if fv.nvmlReturn == nv.NVML_SUCCESS:
                        total += fv.value.uiVal / 1000.0
                        continue
                total += nv.nvmlDeviceGetPowerUsage(h) / 1000.0
        except nv.NVMLError as e:
            self._lose(e)
            return None
        return total

    def state(self) -> dict:
        """Utilization, memory, clocks, temperature and clock-event reasons (summed/maxed over GPUs)."""
        if self.lost:
            return {}
        nv, s = self.nv, self.session
        util = mem = clock = temp = 0.0
        reasons = 0
        get_reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        try:
            for h in self.handles:
                u = s._opt(nv.nvmlDeviceGetUtilizationRates, h)
                util = max(util, u.gpu if u is not None else 0)
                m = s._opt(nv.nvmlDeviceGetMemoryInfo, h)
                mem += (m.used / 1e9) if m is not None else 0
                clock = max(clock, s._opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM) or 0)
                temp = max(temp, s._opt(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU) or 0)
                if get_reasons is not None:
                    reasons |= s._opt(get_reasons, h) or 0
        except nv.NVMLError as e:  # _opt maps most errors; a lost GPU can still surface here
            self._lose(e)
            return {}
        return {"gpu_util_pct": util, "gpu_mem_used_gb": mem, "sm_clock_mhz": clock, "gpu_temp_c": temp,
                "clock_event_mask": int(reasons)}

    def foreign_processes(self) -> list[str]:
        """Other processes on the visible GPUs (their energy is in the counter too)."""
        if self.lost:
            return []
        nv, out = self.nv, []
        for h in self.handles:
            for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                fn = getattr(nv, fn_name, None)
                procs = self.session._opt(fn, h) if fn else None
                for p in procs or []:
                    if p.pid != self.own_pid:
                        out.append(str(p.pid))
        return sorted(set(out), key=int)

    def power_limit_w(self) -> float | None:
        limits = [self.session._opt(self.nv.nvmlDeviceGetEnforcedPowerLimit, h, scale=1e-3) for h in self.handles]
        return sum(limits) if all(v is not None for v in limits) else None

    def describe(self) -> str:
        return (f"NVML {'energy counter' if self.has_counter else 'integrated power, no counter'}, "
                f"{'instant power field' if self.has_instant else 'power usage (1 s average)'}")

    def close(self) -> None:
        self.session.close()
