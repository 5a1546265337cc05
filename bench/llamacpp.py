"""llama.cpp's own tools (llama-bench, llama-server, llama-batched-bench, llama-perplexity), built once per box
from the llama.cpp sources vendored in the pinned llama-cpp-python release, with the same CMake flags as the Python
wheel (``bench/buildflags.py``), into ``~/.cache/shadowbench/llama.cpp/<flags key>/bin``. The harness uses them as the
reference it is checked against (perf-check) and as the server a homelab runs (``server = "llama-server"``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import buildflags
from .cache import cache_dir
from .errors import ShadowbenchError

TOOLS = ("llama-bench", "llama-server", "llama-batched-bench", "llama-perplexity")


def tool_dir() -> Path:
    """Where this box's tools live: ``SHADOWBENCH_LLAMA_CPP_TOOLS`` (the tests point it at the box's own cache,
    shared like the wheel cache) or the cache folder, one folder per version and flags."""
    root = os.environ.get("SHADOWBENCH_LLAMA_CPP_TOOLS")
    return (Path(root) if root else cache_dir("llama.cpp")) / buildflags.build_key(buildflags.cmake_args()) / "bin"


def env() -> dict[str, str]:
    """The environment to run a tool in: its shared libraries (libllama, libggml) sit beside it."""
    lib = str(tool_dir())
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [lib, os.environ.get("LD_LIBRARY_PATH")]))}


def tool(name: str, build: bool = True, log=print) -> Path:
    """The path of a llama.cpp tool, built (a few minutes on 2 cores; the other tools stay as they are) when
    missing and ``build``; ShadowbenchError when it is missing and not to be built, or the build fails."""
    exe = tool_dir() / name
    if exe.exists():
        return exe
    if not build:
        raise ShadowbenchError(f"{name} is not built yet: run `python -m bench.llamacpp` (builds {', '.join(TOOLS)} "
                               f"from the llama-cpp-python {buildflags.LLAMA_CPP_PYTHON_VERSION} sources)")
    build_tools(log, only=(name,))
    return exe


def _vendored_sources(tmp: str) -> Path:
    """Download the pinned llama-cpp-python sdist into ``tmp`` and extract it: its vendored llama.cpp folder."""
    version = buildflags.LLAMA_CPP_PYTHON_VERSION
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={version}", "-d", tmp], check=True)
    [sdist] = Path(tmp).glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp, filter="data")
    return Path(tmp) / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"


def source_dir(log=print) -> Path:
    """llama.cpp's converter (convert_hf_to_gguf.py, its conversion package and gguf-py) from the sources vendored in
    the pinned llama-cpp-python sdist, extracted once into the cache."""
    version = buildflags.LLAMA_CPP_PYTHON_VERSION
    dest = cache_dir("llama.cpp-src") / version
    if (dest / "convert_hf_to_gguf.py").is_file() and (dest / "models" / "ggml-vocab-llama-bpe.gguf").is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        log(f"fetching the llama-cpp-python {version} sources for llama.cpp's converter (once)")
        try:
            src = _vendored_sources(tmp)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            raise ShadowbenchError(f"fetching llama.cpp's sources failed ({type(e).__name__}: {e})") from None
        tmp_dest = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp_dest, ignore_errors=True)
        tmp_dest.mkdir(parents=True)
        for part in ("convert_hf_to_gguf.py", "gguf-py", "conversion"):
            if (src / part).is_dir():
                shutil.copytree(src / part, tmp_dest / part)
            elif (src / part).is_file():
                shutil.copy2(src / part, tmp_dest / part)
        (tmp_dest / "models").mkdir()
        for vocab in (src / "models").glob("ggml-vocab-*.gguf"):  # tokenizers only, for synthetic weights
            shutil.copy2(vocab, tmp_dest / "models" / vocab.name)
        shutil.rmtree(dest, ignore_errors=True)
        tmp_dest.rename(dest)
    return dest


def vocab_file(name: str, log=print) -> Path:
    """llama.cpp's vocab-only test file ``models/ggml-vocab-<name>.gguf`` (a model's tokenizer with no weights):
    from ``SHADOWBENCH_LLAMA_CPP_SRC`` (a llama.cpp source folder, for a box with no network) or the sources
    vendored in the pinned sdist."""
    root = os.environ.get("SHADOWBENCH_LLAMA_CPP_SRC")
    path = (Path(root) if root else source_dir(log)) / "models" / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        raise ShadowbenchError(f"llama.cpp's vocabulary file {path} is missing"
                               + (" (SHADOWBENCH_LLAMA_CPP_SRC points at a folder without it)" if root else ""))
    return path


def build_tools(log=print, only: tuple[str, ...] = TOOLS) -> Path:
    """Build the tools of ``only`` (all of TOOLS) not built yet into ``tool_dir()``, beside the ones that are (same
    flags, same sources: their shared libraries are the same)."""
    args = buildflags.cmake_args()
    bin_dir = tool_dir()
    missing = [t for t in only if not (bin_dir / t).exists()]
    if not missing:
        return bin_dir
    version = buildflags.LLAMA_CPP_PYTHON_VERSION
    with tempfile.TemporaryDirectory() as tmp:
        log(f"building {', '.join(missing)} from the llama-cpp-python {version} sdist with {' '.join(args)} (once)")
        try:
            src = _vendored_sources(tmp)
            build = Path(tmp) / "build"
            subprocess.run(["cmake", "-S", str(src), "-B", str(build), *args, "-DCMAKE_BUILD_TYPE=Release",
                            "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                            "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON"],
                           check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["cmake", "--build", str(build), "--target", *missing, "-j", str(os.cpu_count() or 2)],
                           check=True, stdout=subprocess.DEVNULL)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            raise ShadowbenchError(f"building llama.cpp's tools failed ({type(e).__name__}: {e})") from None
        bin_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted((build / "bin").iterdir(), key=lambda f: f.name in missing):  # the executables last
            tmp_f = bin_dir / (f.name + ".tmp")
            shutil.copy2(f, tmp_f, follow_symlinks=False)
            tmp_f.replace(bin_dir / f.name)  # an interrupted build never leaves a half-copied tool behind
    return bin_dir


if __name__ == "__main__":
    print(build_tools())
