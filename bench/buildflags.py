"""CMake flags for building llama-cpp-python (and llama-bench) for this box.

Standalone on purpose: the Makefile runs it with the system Python before the virtual environment
exists, so it imports nothing outside the standard library.

Why explicit flags: a default ``GGML_NATIVE=ON`` build on some CPUs of the AVX-512 generation compiles AMX
kernels that segfault (``ggml_backend_amx_mul_mat``) on any prompt longer than one token. We switch native
detection off, name the instruction sets the CPU really has (from /proc/cpuinfo), keep AMX off, and turn on
CUDA where ``nvidia-smi`` exists.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# ggml CMake option -> /proc/cpuinfo flag that must be present for it
_X86_OPTIONS = [
    ("GGML_SSE42", "sse4_2"),
    ("GGML_AVX", "avx"),
    ("GGML_AVX2", "avx2"),
    ("GGML_BMI2", "bmi2"),
    ("GGML_FMA", "fma"),
    ("GGML_F16C", "f16c"),
    ("GGML_AVX_VNNI", "avx_vnni"),
    ("GGML_AVX512", "avx512f"),
    ("GGML_AVX512_VBMI", "avx512vbmi"),
    ("GGML_AVX512_VNNI", "avx512_vnni"),
    ("GGML_AVX512_BF16", "avx512_bf16"),
]
_ALWAYS_OFF = ["GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"]


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None


def cmake_args(flags: set[str] | None = None, cuda: bool | None = None) -> list[str]:
    flags = cpu_flags() if flags is None else flags
    cuda = has_cuda() if cuda is None else cuda
    args = ["-DGGML_NATIVE=OFF"]
    if flags:  # x86 with a readable cpuinfo; elsewhere leave ggml's defaults
        for option, flag in _X86_OPTIONS:
            args.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
        args += [f"-D{option}=OFF" for option in _ALWAYS_OFF]
    if cuda:
        args.append("-DGGML_CUDA=on")
    return args


def build_key(args: list[str] | None = None) -> str:
    """A key that changes whenever the version or any flag changes: the wheel cache folder's name."""
    args = cmake_args() if args is None else args
    text = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} " + " ".join(args)
    return f"{LLAMA_CPP_PYTHON_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "args"
    if what == "args":
        print(" ".join(cmake_args()))
    elif what == "key":
        print(build_key())
    elif what == "version":
        print(LLAMA_CPP_PYTHON_VERSION)
    else:
        print("usage: buildflags.py [args|key|version]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
