"""CUDA libraries from the environment's NVIDIA pip packages, loaded before the engine that needs them, so nobody
exports LD_LIBRARY_PATH: CTranslate2 opens ``libcublas.so.12`` by name at run time (CUDA 12 cuBLAS, package
``nvidia-cublas-cu12``), and a llama.cpp built against PyPI's CUDA 13 toolchain needs ``libcudart.so.13`` and
``libcublas.so.13`` (packages ``nvidia-cuda-runtime``, ``nvidia-cublas``). A library loaded once (RTLD_GLOBAL) is
found by its soname by every later ``dlopen`` and by the dynamic linker. Nothing happens where the packages are not
installed (a CPU box) or the system already provides the library."""
from __future__ import annotations

import ctypes
import importlib.util
import shutil
import site
import sys
from functools import lru_cache
from pathlib import Path


def _roots() -> list[Path]:
    paths = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    return [p / "nvidia" for p in paths if (p / "nvidia").is_dir()]


def _load(names: tuple[str, ...]) -> str:
    """Load each soname from the first nvidia/*/lib folder that has it; the folder(s) used, or ''."""
    used = []
    for name in names:
        for root in _roots():
            hits = sorted(root.glob(f"*/lib/{name}"))
            if hits:
                try:
                    ctypes.CDLL(str(hits[0]), mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    continue
                used.append(str(hits[0].parent))
                break
    return ", ".join(sorted(set(used)))


@lru_cache(maxsize=None)
def preload_ct2() -> str:
    """CTranslate2's cuBLAS (CUDA 12), where a driver is there to use it and the package is installed; before
    ``import ctranslate2``."""
    if not sys.platform.startswith("linux") or shutil.which("nvidia-smi") is None:
        return ""
    return _load(("libcublasLt.so.12", "libcublas.so.12"))


def _llama_cuda_build() -> bool:
    spec = importlib.util.find_spec("llama_cpp")
    return bool(spec and spec.submodule_search_locations and any(
        any((Path(p) / "lib").glob("libggml-cuda.so*")) for p in spec.submodule_search_locations))


@lru_cache(maxsize=None)
def preload_llama() -> str:
    """The CUDA 13 runtime and cuBLAS a llama.cpp built with PyPI's toolchain links, where the installed
    llama-cpp-python is a CUDA build; before ``import llama_cpp``."""
    if not sys.platform.startswith("linux") or not _llama_cuda_build():
        return ""
    return _load(("libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13"))
