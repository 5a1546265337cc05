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
    return _limit_mw()  # mW


def nvmlDeviceGetComputeRunningProcesses(h):
    out = []
    for item in filter(None, os.environ.get("FAKE_GPU_PROCS", "").split(",")):
        pid, gb = item.split(":")
        out.append(SimpleNamespace(pid=int(pid), usedGpuMemory=int(float(gb) * 1e9)))
    return out


def nvmlDeviceGetGraphicsRunningProcesses(h):
    return []


# ---- power management, with the limit kept in FAKE_GPU_STATE (a JSON file) so that it outlives a killed process,
# as a real card's does; setting it needs FAKE_GPU_ROOT=1 (NVML_ERROR_NO_PERMISSION otherwise, as without root)
NVML_ERROR_NO_PERMISSION = 4
LIMIT_MIN_MW, LIMIT_MAX_MW, LIMIT_DEFAULT_MW = 100_000, 400_000, 350_000


def _state_path():
    return os.environ.get("FAKE_GPU_STATE", "")


def _limit_mw():
    import json

    p = _state_path()
    if p and os.path.exists(p):
        with open(p) as f:
            return int(json.load(f)["limit_mw"])
    return LIMIT_DEFAULT_MW


def nvmlDeviceGetPowerManagementLimitConstraints(h):
    return (LIMIT_MIN_MW, LIMIT_MAX_MW)


def nvmlDeviceGetPowerManagementDefaultLimit(h):
    return LIMIT_DEFAULT_MW


def nvmlDeviceGetPowerManagementLimit(h):
    return _limit_mw()


def nvmlDeviceSetPowerManagementLimit(h, mw):
    import json

    if os.environ.get("FAKE_GPU_ROOT") != "1":
        raise NVMLError(NVML_ERROR_NO_PERMISSION)
    if not LIMIT_MIN_MW <= mw <= LIMIT_MAX_MW:
        raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT
    p = _state_path()
    if p:
        with open(p + ".tmp", "w") as f:
            json.dump({"limit_mw": int(mw)}, f)
        os.replace(p + ".tmp", p)
