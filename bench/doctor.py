"""`shadowbench doctor`: what this box's GPU setup is and, for each engine, whether it will use the GPU, with the
reason and the fix where it will not. The driver and cards come from ``nvidia-smi`` (``bench/buildflags.py``, the
same reading ``make setup`` plans from); each engine is asked itself: llama.cpp whether it was built with GPU
offload, CTranslate2 how many CUDA devices it sees (after the CUDA libraries from the environment's NVIDIA packages
are loaded), torch whether CUDA is available and which CUDA it was built for, onnxruntime its providers."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import buildflags, cudalibs


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


ENGINES = {"llm": _llama, "embed": _llama, "asr": _ct2, "image": _torch, "tts": _onnx}


def engines(plan: dict | None = None) -> list[Engine]:
    plan = this_box() if plan is None else plan
    return [f(plan) for f in (_llama, _ct2, _torch, _onnx)]


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
    e = f(this_box() if plan is None else plan)
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
        lines.append(f"{'GPU' if e.gpu else 'CPU'}  {e.name} [{e.used_by}]: {e.detail}")
        if e.why:
            lines.append(f"     {e.why}")
    lines.append(buildflags.plan_text(plan))
    return "\n".join(lines), all(e.gpu for e in es)
