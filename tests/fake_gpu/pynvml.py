"""A fake pynvml for command-line tests (put this folder first on PYTHONPATH): one NVIDIA GeForce RTX 3090 with
FAKE_GPU_TOTAL_GB total and FAKE_GPU_USED_GB used memory, and FAKE_GPU_PROCS ("pid:GB,...") holding it, in the
library's own units (bytes, mW) and error type. Only what probing a GPU asks for."""
import os
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value


def _gb(name, default):
    return float(os.environ.get(name, default)) * 1e9


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return "560.35.03"


def nvmlDeviceGetCount():
    return 1


def nvmlDeviceGetHandleByIndex(i):
    if i != 0:
        raise NVMLError(2)
    return "gpu-0"


def nvmlDeviceGetName(h):
    return "NVIDIA GeForce RTX 3090"


def nvmlDeviceGetUUID(h):
    return "GPU-fake-3090"


def nvmlDeviceGetMemoryInfo(h):
    total, used = int(_gb("FAKE_GPU_TOTAL_GB", 24)), int(_gb("FAKE_GPU_USED_GB", 0))
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetEnforcedPowerLimit(h):
    return 350_000  # mW


def nvmlDeviceGetComputeRunningProcesses(h):
    out = []
    for item in filter(None, os.environ.get("FAKE_GPU_PROCS", "").split(",")):
        pid, gb = item.split(":")
        out.append(SimpleNamespace(pid=int(pid), usedGpuMemory=int(float(gb) * 1e9)))
    return out


def nvmlDeviceGetGraphicsRunningProcesses(h):
    return []
