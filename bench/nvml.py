"""NVML adapter: the only place that talks to pynvml (nvidia-ml-py) and the only place that converts its units
(mJ, mW, bytes) to J, W and GB.

The pynvml module is passed in (or imported lazily), so tests drive this adapter with a fake that behaves like the
real library at its boundary. ``CUDA_VISIBLE_DEVICES`` is honored: only the GPUs a CUDA process would see are
listed and metered.
"""
from __future__ import annotations

import os
from typing import Any

from .errors import DeviceUnavailable


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
        return v * scale if isinstance(v, (int, float)) else v

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
                "power_limit_w": self._opt(nv.nvmlDeviceGetEnforcedPowerLimit, h, scale=1e-3),
            })
        return out


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
