"""`shadowbench doctor`: what this box's GPU setup is and, for each engine, whether it will use the GPU, with the
reason and the fix where it will not. The driver and cards come from ``nvidia-smi`` (``bench/buildflags.py``, the
same reading ``make setup`` plans from); each engine is asked itself: llama.cpp whether it was built with GPU
offload, CTranslate2 how many CUDA devices it sees (after the CUDA libraries from the environment's NVIDIA packages
are loaded), torch whether CUDA is available and which CUDA it was built for, onnxruntime its providers.

Each engine is asked in its own child process (``python -m bench.doctor --probe KEY``), as each workload runs: the
libraries of torch, llama.cpp and CTranslate2 never meet in one process, and an engine whose import crashes (a
SIGSEGV, or an abort from two builds of one CUDA library) is reported as such, with its last lines, while the
doctor goes on. The probe also says which CUDA runtime and cuBLAS the engine loaded (path and version)."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from . import buildflags, cudalibs

PROBE_TIMEOUT_S = 300.0
PROBE_MARK = "shadowbench-probe: "
CUDA_LIBS = ("libcudart", "libcublas", "libcublasLt")


@lru_cache(maxsize=1)
def this_box() -> dict:
    """This box's GPU plan, read once per process (nvidia-smi and nvcc are asked once, not per workload)."""
    return buildflags.gpu_plan()


@dataclass(frozen=True)
class Engine:
    name: str
    used_by: str  # the kinds that run on it
    gpu: bool
    detail: str  # what the engine says about itself
    why: str = ""  # where gpu is False: the reason and the fix
    libs: dict = field(default_factory=dict)  # CUDA library stem -> "path (version)" as loaded by the engine
    crashed: bool = False  # the probe's process died: detail says how


def _llama(plan: dict) -> Engine:
    cudalibs.preload_llama()
    try:
        import llama_cpp
    except ImportError as e:
        return Engine("llama.cpp (llama-cpp-python)", "llm, embed", False, f"not installed ({e})",
                      "run `make setup`")
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    detail = f"llama-cpp-python {llama_cpp.__version__}, " + ("built with GPU offload" if offload else
                                                               "a CPU build (no GPU offload)")
    if offload and plan["gpu"]:
        return Engine("llama.cpp (llama-cpp-python)", "llm, embed", True, detail)
    if not plan["gpu"]:
        why = "no NVIDIA driver: LLM and embedding workloads run on the CPU (n_gpu_layers is ignored)"
    elif plan["toolkit"] is None:
        why = plan["toolkit_why"]
    else:
        why = (f"the installed wheel was built without CUDA; `make setup` builds it with {plan['toolkit_why']} "
               f"for architectures {plan['archs']} (remove {'.venv/.setup-*'} first if it was set up before the "
               "driver was installed)")
    return Engine("llama.cpp (llama-cpp-python)", "llm, embed", False, detail, why)


def _ct2(plan: dict) -> Engine:
    loaded = cudalibs.preload_ct2()
    try:
        import ctranslate2
    except ImportError as e:
        return Engine("CTranslate2 (faster-whisper)", "asr", False, f"not installed ({e})", "run `make setup`")
    n = ctranslate2.get_cuda_device_count()
    detail = f"ctranslate2 {ctranslate2.__version__}, sees {n} CUDA device{'s' if n != 1 else ''}" + (
        f"; cuBLAS from {loaded}" if loaded else "")
    if n > 0:
        return Engine("CTranslate2 (faster-whisper)", "asr", True, detail)
    if not plan["gpu"]:
        why = "no NVIDIA driver: speech-to-text runs on the CPU (int8)"
    elif not loaded:
        why = (f"libcublas.so.{buildflags.CT2_CUDA_MAJOR} is not in the environment: `pip install "
               + " ".join(f"{k}=={v}" for k, v in buildflags.CT2_CUDA.items()) + "` (make setup does) ")
    else:
        why = "the driver does not give CTranslate2 a device: check `nvidia-smi`"
    return Engine("CTranslate2 (faster-whisper)", "asr", False, detail, why)


def _torch(plan: dict) -> Engine:
    try:
        import torch
    except ImportError as e:
        return Engine("torch (diffusers)", "image", False, f"not installed ({e})", "run `make setup`")
    built = torch.version.cuda
    ok = bool(built) and torch.cuda.is_available()
    detail = f"torch {torch.__version__}, " + (f"built for CUDA {built}" if built else "a CPU build")
    if ok:
        return Engine("torch (diffusers)", "image", True, detail + f", sees {torch.cuda.device_count()} GPU(s)")
    if not plan["gpu"]:
        why = "no NVIDIA driver: image workloads run on the CPU (fp32)"
    elif not built:
        why = f"a CPU build of torch: `pip install {plan['torch']}` ({plan['torch_why']})"
    else:
        why = (f"built for CUDA {built} but CUDA is not available: the driver runs CUDA "
               f"{buildflags._v(plan['driver_cuda'])}; install {plan['torch']}")
    return Engine("torch (diffusers)", "image", False, detail, why)


def _onnx(plan: dict) -> Engine:
    try:
        import onnxruntime
    except ImportError as e:
        return Engine("onnxruntime (Piper)", "tts", False, f"not installed ({e})", "run `make setup`")
    providers = onnxruntime.get_available_providers()
    detail = f"onnxruntime {onnxruntime.__version__}, providers {', '.join(providers)}"
    if "CUDAExecutionProvider" in providers and plan["gpu"]:
        return Engine("onnxruntime (Piper)", "tts", True, detail)
    why = ("no NVIDIA driver: voice synthesis runs on the CPU" if not plan["gpu"] else
           "the CPU package: Piper runs on the CPU (its voices are small; on a GPU it is often slower). For the "
           "GPU: `pip install onnxruntime-gpu` in place of onnxruntime, and `use_cuda = true` in the workload")
    return Engine("onnxruntime (Piper)", "tts", False, detail, why)


PROBES = {"llama": (_llama, "llama.cpp (llama-cpp-python)", "llm, embed"),
          "ct2": (_ct2, "CTranslate2 (faster-whisper)", "asr"),
          "torch": (_torch, "torch (diffusers)", "image"), "onnx": (_onnx, "onnxruntime (Piper)", "tts")}
ENGINES = {"llm": "llama", "embed": "llama", "asr": "ct2", "image": "torch", "tts": "onnx"}


def _lib_version(stem: str, path: str) -> str:
    """A loaded CUDA library's version, asked of the library (cudaRuntimeGetVersion, cublasGetProperty)."""
    try:
        lib = ctypes.CDLL(path)
        if stem == "libcudart":
            v = ctypes.c_int()
            if lib.cudaRuntimeGetVersion(ctypes.byref(v)) == 0:
                return f"{v.value // 1000}.{v.value % 1000 // 10}"
        elif stem == "libcublas":
            parts = []
            for prop in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
                v = ctypes.c_int()
                if lib.cublasGetProperty(prop, ctypes.byref(v)) != 0:
                    return ""
                parts.append(str(v.value))
            return ".".join(parts)
    except (OSError, AttributeError):
        pass
    return ""


def loaded_cuda_libs(maps: str = "/proc/self/maps") -> dict[str, str]:
    """The CUDA runtime and cuBLAS this process has mapped: stem -> 'real path (version)'."""
    found: dict[str, str] = {}
    try:
        lines = Path(maps).read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) < 6:
            continue
        path = fields[5].strip()
        name = os.path.basename(path)
        for stem in CUDA_LIBS:
            if name.startswith(stem + ".so") and stem not in found:
                real = os.path.realpath(path)
                v = _lib_version(stem, path)
                found[stem] = real + (f" ({v})" if v else "")
    return found


def _probe_here(key: str, plan: dict) -> Engine:
    """Ask one engine in this process (the probe child's side)."""
    f, _, _ = PROBES[key]
    e = f(plan)
    if key == "llama" and e.detail.startswith("llama-cpp-python"):
        import llama_cpp

        llama_cpp.llama_backend_init()  # the backends (and their CUDA libraries) are loaded and registered
    elif key == "torch" and e.gpu:
        import torch

        torch.cuda.init()
        torch.ones(1, device="cuda") @ torch.ones(1, 1, device="cuda")  # cuBLAS is loaded on first use
    return Engine(e.name, e.used_by, e.gpu, e.detail, e.why, loaded_cuda_libs())


@lru_cache(maxsize=None)
def _probe_cached(key: str, plan_json: str) -> Engine:
    return probe(key, json.loads(plan_json))


def probe(key: str, plan: dict) -> Engine:
    """One engine's verdict, asked in its own child process; a probe that dies is an engine that cannot be used,
    named with its signal, its last lines and the fix."""
    from .launcher import STDERR_LINES, signal_words

    _, name, used_by = PROBES[key]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONFAULTHANDLER": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), root) if p)}
    try:
        r = subprocess.run([sys.executable, "-m", "bench.doctor", "--probe", key], input=json.dumps(plan),
                           capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return Engine(name, used_by, False, f"the probe did not answer within {PROBE_TIMEOUT_S:g} s",
                      "the engine hangs on import or on CUDA start-up: `nvidia-smi` shows whether the card answers",
                      crashed=True)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith(PROBE_MARK):
            return Engine(**json.loads(line[len(PROBE_MARK):]))
    tail = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()][-STDERR_LINES:]
    return Engine(name, used_by, False, f"the probe CRASHED with {signal_words(r.returncode)} while importing and "
                  "starting the engine; its last lines:\n" + "\n".join(f"       | {t}" for t in tail),
                  "this engine cannot run here as installed. Two builds of one CUDA library in a process are the "
                  "usual cause (see the libraries each engine loads); `make setup` again, or reinstall the engine's "
                  "package", crashed=True)


def engines(plan: dict | None = None) -> list[Engine]:
    plan = this_box() if plan is None else plan
    return [_probe_cached(k, json.dumps(plan, sort_keys=True, default=str)) for k in PROBES]


def library_clashes(es: list[Engine]) -> list[str]:
    """Where engines load different builds of one CUDA library: fine in their own processes (the default launcher),
    a crash in one (``--launcher inline``)."""
    out = []
    for stem in CUDA_LIBS:
        seen = {e.libs[stem].split(" (")[0]: e for e in es if stem in e.libs}
        if len(seen) > 1:
            out.append(f"warning: {stem} differs between engines: " + "; ".join(
                f"{e.name.split(' ')[0]} loads {e.libs[stem]}" for e in seen.values())
                + ". Each workload runs in its own process (the default launcher), so they never meet; "
                "`--launcher inline` with workloads of both would load both into one process, which crashes")
    return out


def gpu_refusal(kind: str, params: dict, plan: dict | None = None) -> str:
    """Why a workload of this kind and keys would run on the CPU here ('' when it will use the GPU): its own keys
    first (n_gpu_layers = 0, device = "cpu", use_cuda = false), then its engine's verdict. An endpoint's server is
    its own business: never refused here."""
    f = ENGINES.get(kind)
    if f is None:
        return ""
    if kind in ("llm", "embed") and params.get("n_gpu_layers") == 0:
        return "n_gpu_layers = 0 keeps every layer on the CPU"
    if params.get("device") == "cpu":
        return 'device = "cpu"'
    if kind == "tts" and not params.get("use_cuda"):
        return "use_cuda = false (Piper on the CPU; set require_gpu = false on this workload to run it there)"
    plan = this_box() if plan is None else plan
    e = _probe_cached(f, json.dumps(plan, sort_keys=True, default=str))
    return "" if e.gpu else f"{e.name}: {e.why}"


def report(plan: dict | None = None) -> tuple[str, bool]:
    """The doctor's text and whether every engine will use the GPU."""
    plan = this_box() if plan is None else plan
    lines = []
    if plan["gpu"]:
        lines.append(f"NVIDIA driver {plan['driver']}, supports CUDA {buildflags._v(plan['driver_cuda'])}")
        for c in plan["cards"]:
            mem = f"{c['memory_mib'] / 1024:.0f} GiB" if c["memory_mib"] else "memory unknown"
            lines.append(f"  {c['name']}: {mem}, compute capability {c['compute_cap']}")
    else:
        lines.append(f"{plan['error']}: every engine runs on the CPU. Energy is read from RAPL where the CPU "
                     "exposes it, else estimated (labeled). GPU suites validate here but their workloads are "
                     "refused (require_gpu).")
    es = engines(plan)
    for e in es:
        lines.append(f"{'FAIL' if e.crashed else 'GPU' if e.gpu else 'CPU'}  {e.name} [{e.used_by}]: {e.detail}")
        if e.why:
            lines.append(f"     {e.why}")
        for stem, where in e.libs.items():
            lines.append(f"     loads {stem}: {where}")
    lines += library_clashes(es)
    lines.append(buildflags.plan_text(plan))
    return "\n".join(lines), all(e.gpu for e in es) and not any(e.crashed for e in es)


def _probe_main(key: str) -> int:
    plan = json.loads(sys.stdin.read())
    e = _probe_here(key, plan)
    sys.stdout.flush()
    print(PROBE_MARK + json.dumps(asdict(e)), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe" and sys.argv[2] in PROBES:
        sys.exit(_probe_main(sys.argv[2]))
    print(f"usage: python -m bench.doctor --probe {{{','.join(PROBES)}}} (run by `shadowbench doctor`)",
          file=sys.stderr)
    sys.exit(2)
