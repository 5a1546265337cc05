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
import os
import re
import shutil
import subprocess
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


# ----------------------------------------------------------------------------------------------- the GPU plan
# CUDA toolchain from PyPI: the CUDA 13 packages lay out a toolkit tree (site-packages/nvidia/cu13: bin/nvcc,
# nvvm/bin/cicc, include, include/cccl, lib) with a full nvcc; the CUDA 12 nvcc wheel holds only ptxas. Pinned.
CUDA_PYPI = {"nvidia-cuda-nvcc": "13.5.37", "nvidia-nvvm": "13.5.37", "nvidia-cuda-crt": "13.5.37",
             "nvidia-cuda-runtime": "13.5.37", "nvidia-cublas": "13.10.0.20", "nvidia-cuda-cccl": "13.3.5.0.6"}
CUDA_PYPI_MAJOR = 13  # its binaries need a driver that supports CUDA 13 (R580 or newer)
CUDA_PYPI_DIR = "nvidia/cu13"  # under site-packages
# CTranslate2 (faster-whisper) 4.8.5's Linux wheel: cudart linked in statically, cuBLAS opened at run time as
# libcublas.so.12 (found with `strings` on libctranslate2: no cuDNN referenced); the CUDA 12 cuBLAS package holds it.
CT2_CUDA = {"nvidia-cublas-cu12": "12.9.3.13"}
CT2_CUDA_MAJOR = 12
# torch: the pinned version from PyTorch's own index for the newest CUDA the driver runs (a local version label,
# so PyPI's build of the same version is never picked instead)
TORCH_VERSION = "2.13.0"
TORCH_CUDA = (((13, 0), "cu130"), ((12, 8), "cu128"))
TORCH_INDEX = "https://download.pytorch.org/whl/{tag}"


def _run(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def query_gpus() -> dict:
    """What ``nvidia-smi`` says: driver version, the CUDA version the driver supports, and each card's name,
    memory and compute capability; ``error`` where nvidia-smi is missing or fails (a driver not loaded)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"error": "no NVIDIA driver (nvidia-smi not found)", "cards": []}
    rows = _run([exe, "--query-gpu=name,memory.total,compute_cap,driver_version", "--format=csv,noheader,nounits"])
    head = _run([exe])
    if rows is None or head is None:
        return {"error": "nvidia-smi failed: the NVIDIA driver is installed but not working (reboot after a driver "
                         "update, or check `nvidia-smi`)", "cards": []}
    cards, driver = [], None
    for line in rows.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != 4:
            continue
        name, mem, cc, driver = parts
        cards.append({"name": name, "memory_mib": int(float(mem)) if re.match(r"^[0-9.]+$", mem) else None,
                      "compute_cap": cc})
    m = re.search(r"CUDA Version:\s*([0-9]+)\.([0-9]+)", head)
    return {"error": None if cards else "nvidia-smi lists no card", "driver": driver, "cards": cards,
            "driver_cuda": (int(m[1]), int(m[2])) if m else None}


def find_nvcc() -> tuple[str, tuple[int, int]] | None:
    """A system CUDA toolkit's nvcc (PATH, then $CUDA_HOME where set, else /usr/local/cuda) and its release."""
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    cands = [shutil.which("nvcc"), os.path.join(home, "bin", "nvcc")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            out = _run([c, "--version"]) or ""
            m = re.search(r"release ([0-9]+)\.([0-9]+)", out)
            if m:
                return c, (int(m[1]), int(m[2]))
    return None


def site_packages(venv: str) -> Path:
    return Path(venv).resolve() / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _v(t: tuple[int, int] | None) -> str:
    return "unknown" if t is None else f"{t[0]}.{t[1]}"


def gpu_plan(venv: str = ".venv", gpus: dict | None = None, nvcc=False) -> dict:
    """What the setup does on this box: the CUDA toolkit llama.cpp builds with (a system one where found, else
    PyPI's CUDA 13 packages where the driver runs CUDA 13, else none: a CPU build and why), the architectures
    (the visible cards' compute capabilities), the torch build, and the libraries CTranslate2 needs."""
    gpus = query_gpus() if gpus is None else gpus
    plan = {"gpu": not gpus["error"], "error": gpus["error"], "driver": gpus.get("driver"),
            "driver_cuda": gpus.get("driver_cuda"), "cards": gpus["cards"], "archs": "", "toolkit": None,
            "toolkit_why": "", "torch": f"torch=={TORCH_VERSION}", "torch_why": "the CPU build (no NVIDIA GPU)",
            "ct2": {}, "pypi_cuda": {}}
    if not plan["gpu"]:
        return plan
    caps = sorted({c["compute_cap"].replace(".", "") for c in gpus["cards"] if c["compute_cap"]}, key=int)
    plan["archs"] = ";".join(caps)
    dc = gpus.get("driver_cuda")
    found = find_nvcc() if nvcc is False else nvcc
    if found is not None and (dc is None or found[1] <= dc):
        plan["toolkit"] = {"source": "system", "nvcc": found[0], "cuda": found[1]}
        plan["toolkit_why"] = f"the system CUDA {_v(found[1])} toolkit at {found[0]}"
    elif dc is not None and dc[0] >= CUDA_PYPI_MAJOR:
        root = site_packages(venv) / CUDA_PYPI_DIR
        plan["toolkit"] = {"source": "pypi", "nvcc": str(root / "bin" / "nvcc"), "root": str(root),
                           "cuda": (CUDA_PYPI_MAJOR, int(CUDA_PYPI["nvidia-cuda-nvcc"].split(".")[1]))}
        plan["pypi_cuda"] = dict(CUDA_PYPI)
        plan["toolkit_why"] = (f"no system nvcc{' new enough' if found else ''}; the driver runs CUDA {_v(dc)}: "
                               f"PyPI's CUDA {CUDA_PYPI['nvidia-cuda-nvcc']} packages into {venv}")
    else:
        plan["toolkit_why"] = (
            f"no CUDA toolkit to build with: no system nvcc, and driver {plan['driver']} runs CUDA {_v(dc)} while "
            f"the PyPI CUDA packages that hold a full nvcc are CUDA {CUDA_PYPI_MAJOR} (driver R580 or newer). "
            f"Update the NVIDIA driver to R580+, or install a system CUDA 12 toolkit (it is then used); until "
            "then llama.cpp is built for the CPU only")
    for (need, tag) in TORCH_CUDA:
        if dc is not None and dc >= need:
            plan["torch"] = (f"torch=={TORCH_VERSION}+{tag} --extra-index-url {TORCH_INDEX.format(tag=tag)}")
            plan["torch_why"] = f"PyTorch's CUDA {need[0]}.{need[1]} build ({tag}); the driver runs CUDA {_v(dc)}"
            break
    else:
        plan["torch"] = f"torch=={TORCH_VERSION}"  # what is left: the CPU build from the usual index
        plan["torch_why"] = (f"the CPU build: PyTorch {TORCH_VERSION}'s CUDA builds need CUDA "
                             f"{TORCH_CUDA[-1][0][0]}.{TORCH_CUDA[-1][0][1]} or newer and the driver runs "
                             f"{_v(dc)}: update the driver")
    if dc is not None and dc[0] >= CT2_CUDA_MAJOR:
        plan["ct2"] = dict(CT2_CUDA)
    return plan


def plan_text(plan: dict) -> str:
    if not plan["gpu"]:
        return (f"GPU plan: {plan['error']}: llama.cpp, torch, CTranslate2 and onnxruntime are set up for the CPU "
                f"(torch=={TORCH_VERSION}, the CPU build)")
    out = [f"GPU plan: driver {plan['driver']}, runs CUDA {_v(plan['driver_cuda'])}"]
    out += [f"  card: {c['name']}, {c['memory_mib']} MiB, compute capability {c['compute_cap']}" for c in plan["cards"]]
    if plan["toolkit"]:
        out.append(f"  llama.cpp: CUDA build for architectures {plan['archs']} with {plan['toolkit_why']}")
    else:
        out.append(f"  llama.cpp: CPU build: {plan['toolkit_why']}")
    out.append(f"  torch: {plan['torch']} ({plan['torch_why']})")
    out.append("  CTranslate2 (faster-whisper): " + (
        f"CUDA {CT2_CUDA_MAJOR} cuBLAS from {', '.join(f'{k}=={v}' for k, v in plan['ct2'].items())}, loaded by "
        "shadowbench at run time (no LD_LIBRARY_PATH)" if plan["ct2"] else
        f"CPU: its wheel needs CUDA {CT2_CUDA_MAJOR} and the driver runs {_v(plan['driver_cuda'])}"))
    out.append("  onnxruntime (Piper): the CPU package (Piper's voices are small; on a GPU it is often slower)")
    return "\n".join(out)


def torch_spec(plan: dict | None = None) -> str:
    return (plan or gpu_plan())["torch"]


def pip_packages(plan: dict) -> str:
    """The CUDA packages the setup installs into the environment: the PyPI toolkit and CTranslate2's cuBLAS."""
    pk = {**plan["pypi_cuda"], **plan["ct2"]}
    return " ".join(f"{k}=={v}" for k, v in pk.items())


# the CUDA driver API entry points ggml-cuda (llama-cpp-python 0.3.36) calls, for the build check's link stub (read
# with `nm -D --undefined-only libggml-cuda.so` from a build of it); a GPU box links against the driver's own library
DRIVER_API = ("cuDeviceGet", "cuDeviceGetAttribute", "cuGetErrorString", "cuMemAddressFree", "cuMemAddressReserve",
              "cuMemCreate", "cuMemGetAllocationGranularity", "cuMemMap", "cuMemRelease", "cuMemSetAccess",
              "cuMemUnmap")


def system_libcuda() -> str | None:
    """The driver's libcuda.so.1 as the dynamic linker knows it (``ldconfig -p``), or None."""
    out = _run(["ldconfig", "-p"]) or _run(["/sbin/ldconfig", "-p"]) or ""
    m = re.search(r"^\s*libcuda\.so\.1 \(libc6,x86-64\) => (\S+)$", out, re.M)
    return m[1] if m else None


def link_toolkit(root: Path, stub_driver: bool = False) -> list[str]:
    """Make PyPI's CUDA tree look like a toolkit to CMake: unversioned names for the libraries it links
    (libcudart.so, libcublas.so, libcublasLt.so), and ``lib/stubs/libcuda.so`` (where a toolkit keeps its driver
    stub, which CMake's CUDA::cuda_driver needs): a link to the driver's libcuda.so.1 on a GPU box (the driver
    often installs no unversioned libcuda.so); with ``stub_driver`` (the build check on a machine without a driver)
    a stub that defines the driver API entry points ggml calls, with the driver's soname, as NVIDIA's stubs do."""
    done = []
    lib = root / "lib"
    for name in ("libcudart.so", "libcublas.so", "libcublasLt.so"):
        versioned = sorted(lib.glob(name + ".[0-9]*"))
        if versioned and not (lib / name).exists():
            (lib / name).symlink_to(versioned[0].name)
            done.append(f"{lib / name} -> {versioned[0].name}")
    stub = lib / "stubs" / "libcuda.so"
    if stub.exists() or stub.is_symlink():
        return done
    stub.parent.mkdir(exist_ok=True)
    driver = system_libcuda()
    if driver:
        stub.symlink_to(driver)
        done.append(f"{stub} -> {driver} (the driver's library)")
    elif stub_driver:
        src = stub.with_name("libcuda-stub.c")
        src.write_text("/* link-time stand-in for the driver's libcuda.so.1 (build check only: never loaded) */\n"
                       + "".join(f"int {f}(void) {{ return 999; }}\n" for f in DRIVER_API))
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(stub), str(src), "-Wl,-soname,libcuda.so.1"], check=True)
        done.append(f"{stub}: a stub defining {len(DRIVER_API)} driver API functions, soname libcuda.so.1 (no "
                    "driver here)")
    return done


def cmake_args(flags: set[str] | None = None, cuda: bool | None = None, plan: dict | None = None) -> list[str]:
    """The CMake flags for this box: explicit x86 SIMD flags, and CUDA for the visible cards' architectures with the
    plan's toolkit (``cuda=False``: never; a plan without a toolkit: a CPU build)."""
    flags = cpu_flags() if flags is None else flags
    args = ["-DGGML_NATIVE=OFF"]
    if flags:  # x86 with a readable cpuinfo; elsewhere leave ggml's defaults
        for option, flag in _X86_OPTIONS:
            args.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
        args += [f"-D{option}=OFF" for option in _ALWAYS_OFF]
    if cuda is False or (cuda is None and plan is None and not has_cuda()):
        return args
    plan = gpu_plan() if plan is None else plan
    tk = plan["toolkit"]
    if tk is None:
        return args
    args += ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={plan['archs']}"]
    if tk["source"] == "pypi":
        args += [f"-DCMAKE_CUDA_COMPILER={tk['nvcc']}", f"-DCUDAToolkit_ROOT={tk['root']}"]
    return args


def check_plan(venv: str, arch: str) -> dict:
    """The build check's plan: PyPI's CUDA toolchain for one architecture, as on a box with a CUDA 13 driver."""
    card = {"name": f"(build check: compute capability {arch[0]}.{arch[1:]})", "memory_mib": None,
            "compute_cap": f"{arch[0]}.{arch[1:]}"}
    return gpu_plan(venv, {"error": None, "driver": "(none: build check)", "driver_cuda": (CUDA_PYPI_MAJOR, 0),
                           "cards": [card]}, nvcc=None)


def build_key(args: list[str] | None = None) -> str:
    """A key that changes whenever the version or any flag changes: the wheel cache folder's name."""
    args = cmake_args() if args is None else args
    text = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} " + " ".join(args)
    return f"{LLAMA_CPP_PYTHON_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


USAGE = ("usage: buildflags.py [args|key|version|plan|torch|cuda-packages|link-toolkit|record] [--venv DIR] "
         "[--check-arch 86]")


def main(argv: list[str]) -> int:
    args = argv[1:]
    venv, check = ".venv", None
    for opt in ("--venv", "--check-arch"):
        if opt in args:
            i = args.index(opt)
            if i + 1 >= len(args):
                print(USAGE, file=sys.stderr)
                return 2
            if opt == "--venv":
                venv = args[i + 1]
            else:
                check = args[i + 1]
            del args[i:i + 2]
    what = args[0] if args else "args"
    if check is not None and not re.match(r"^[1-9][0-9]$", check):
        print(f"--check-arch: a compute capability like 86 (8.6), not {check!r}", file=sys.stderr)
        return 2
    plan = (check_plan(venv, check) if check else gpu_plan(venv)) if what != "version" and (
        check or has_cuda()) else None
    if what == "args":
        print(" ".join(cmake_args(plan=plan, cuda=None if plan else False)))
    elif what == "key":
        print(build_key(cmake_args(plan=plan, cuda=None if plan else False)))
    elif what == "version":
        print(LLAMA_CPP_PYTHON_VERSION)
    elif what == "plan":
        print(plan_text(plan or gpu_plan(venv)))
    elif what == "torch":
        print(torch_spec(plan or gpu_plan(venv)))
    elif what == "cuda-packages":
        print(pip_packages(plan) if plan else "")
    elif what == "link-toolkit":
        if not plan or not plan["toolkit"] or plan["toolkit"]["source"] != "pypi":
            return 0
        for line in link_toolkit(Path(plan["toolkit"]["root"]), stub_driver=bool(check)):
            print(line)
    elif what == "record":
        print(record_build(venv, plan, cmake_args(plan=plan, cuda=None if plan else False)))
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


def record_build(venv: str, plan: dict | None, args: list[str]) -> str:
    """What `make setup` built llama-cpp-python with, kept in the environment (``cudalibs.BUILD_RECORD``): the CMake
    flags and the CUDA toolkit's library folder, so only that toolkit's libraries are ever preloaded for it."""
    import json

    tk = (plan or {}).get("toolkit") or None
    lib = ""
    if tk and tk["source"] == "pypi":
        lib = str(Path(tk["root"]) / "lib")
    elif tk:  # a system toolkit: bin/nvcc's sibling lib64 (or lib)
        root = Path(tk["nvcc"]).resolve().parent.parent
        lib = str(next((root / d for d in ("lib64", "lib") if (root / d).is_dir()), root / "lib64"))
    out = Path(venv) / "shadowbench-llama-build.json"
    out.write_text(json.dumps({"cmake_args": args, "toolkit": tk["source"] if tk else "", "toolkit_lib": lib},
                              indent=1) + "\n")
    return f"recorded the llama.cpp build in {out}: toolkit {tk['source'] if tk else 'none (a CPU build)'} {lib}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
