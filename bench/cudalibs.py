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


def _llama_cuda_lib() -> Path | None:
    """The installed llama-cpp-python's CUDA backend library, where it is a CUDA build (in its package's lib folder,
    or where ``LLAMA_CPP_LIB_PATH`` points it at a llama.cpp build)."""
    import os

    spec = importlib.util.find_spec("llama_cpp")
    folders = [Path(p) / "lib" for p in ((spec.submodule_search_locations or []) if spec else [])]
    if os.environ.get("LLAMA_CPP_LIB_PATH"):
        folders.insert(0, Path(os.environ["LLAMA_CPP_LIB_PATH"]))
    for folder in folders:
        hits = sorted(folder.glob("libggml-cuda.so*"))
        if hits:
            return hits[0]
    return None


def _llama_cuda_build() -> bool:
    return _llama_cuda_lib() is not None


# ------------------------------------------------------------------------------------ what a library was linked to
DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 1, 5, 15, 29


def elf_links(path: Path) -> tuple[list[str], list[str]]:
    """(NEEDED sonames, RUNPATH or RPATH folders) of a 64-bit little-endian ELF shared library, read from its
    dynamic section (what `readelf -d` shows)."""
    import struct

    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dyn = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD: to map addresses to file offsets
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return [], []
    entries = []
    for off in range(dyn[0], dyn[0] + dyn[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        entries.append((tag, val))
    strtab_addr = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab_addr is None:
        return [], []
    strtab = next((o + strtab_addr - va for va, o, sz in loads if va <= strtab_addr < va + sz), strtab_addr)

    def string(i: int) -> str:
        end = data.index(b"\0", strtab + i)
        return data[strtab + i:end].decode()

    needed = [string(v) for t, v in entries if t == DT_NEEDED]
    run = [string(v) for t, v in entries if t == DT_RUNPATH] or [string(v) for t, v in entries if t == DT_RPATH]
    folders = [d for r in run for d in r.split(":") if d]
    return needed, folders


@lru_cache(maxsize=1)
def _ld_cache() -> dict[str, str]:
    """soname -> path from the dynamic linker's cache (`ldconfig -p`)."""
    import subprocess

    exe = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        if "=>" in line and "x86-64" in line or "=>" in line and "64bit" in line:
            name, path = line.strip().split(" ", 1)[0], line.split("=>", 1)[1].strip()
            found.setdefault(name, path)
    return found


def loader_finds(soname: str, runpath: list[str], origin: Path) -> str | None:
    """Where the dynamic linker would find a library's NEEDED soname by itself (its RUNPATH, LD_LIBRARY_PATH, the
    linker cache, the default folders), or None."""
    import os

    dirs = [d.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin)) for d in runpath]
    dirs += [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for d in dirs:
        if (Path(d) / soname).exists():
            return str(Path(d) / soname)
    if soname in _ld_cache():
        return _ld_cache()[soname]
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        if (Path(d) / soname).exists():
            return str(Path(d) / soname)
    return None


BUILD_RECORD = "shadowbench-llama-build.json"  # in the environment's prefix: written by `make setup`


def recorded_toolkit() -> Path | None:
    """The CUDA toolkit's library folder `make setup` built llama-cpp-python with, where it recorded one."""
    import json

    rec = Path(sys.prefix) / BUILD_RECORD
    try:
        lib = json.loads(rec.read_text()).get("toolkit_lib")
    except (OSError, ValueError):
        return None
    return Path(lib) if lib else None


@lru_cache(maxsize=None)
def preload_llama() -> str:
    """For a CUDA build of llama-cpp-python, before ``import llama_cpp``: the CUDA runtime and cuBLAS it was linked
    against (its NEEDED sonames) that the dynamic linker would not find by itself, loaded from the toolkit `make
    setup` built it with (PyPI's CUDA 13 packages). Nothing where the loader finds them (a system toolkit in the
    linker's path or the library's RUNPATH), and never another copy of the same soname from elsewhere in
    site-packages (torch's own CUDA libraries): two builds of cuBLAS in one process crash."""
    if not sys.platform.startswith("linux"):
        return ""
    lib = _llama_cuda_lib()
    if lib is None:
        return ""
    try:
        needed, runpath = elf_links(lib)
    except (OSError, ValueError):
        return ""
    cuda = [n for n in needed if n.startswith(("libcudart.so", "libcublasLt.so", "libcublas.so"))]
    missing = [n for n in cuda if loader_finds(n, runpath, lib.parent) is None]
    toolkit = recorded_toolkit()
    if not missing or toolkit is None:
        return ""
    if any(n.startswith("libcublas.so") for n in missing):  # cuBLAS needs cuBLASLt from the same toolkit
        missing = [m for m in missing if not m.startswith("libcublasLt")]
        missing.insert(0, next((p.name for p in sorted(toolkit.glob("libcublasLt.so.*")) if p.name.count(".") == 2),
                               "libcublasLt.so.13"))
    used = []
    for name in missing:
        path = toolkit / name
        if path.exists():
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            used.append(str(path))
    return ", ".join(used)
