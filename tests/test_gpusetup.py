"""The GPU setup without a GPU: fake ``nvidia-smi`` (and ``nvcc``) executables on PATH, shaped like the real tools'
output, drive the plan (toolkit, architectures, torch build), the Makefile's GPU branch (a dry run: nothing is
installed) and ``shadowbench doctor``'s verdicts; a GPU suite's workload is refused on this CPU box with the reason."""
import csv
import json
import shutil
import textwrap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run_cli

CARDS = {
    "3090": "NVIDIA GeForce RTX 3090, 24576, 8.6",
    "4060ti": "NVIDIA GeForce RTX 4060 Ti, 16380, 8.9",
}
DRIVERS = {"r580": ("580.95.05", "13.0"), "r575": ("575.64.03", "12.9"), "r535": ("535.247.01", "12.2")}


def fake_tools(tmp_path: Path, cards: list[str], driver: str, nvcc: str | None = None, broken=False) -> dict:
    """A folder with nvidia-smi (and nvcc) answering like the real ones; the environment with it first on PATH."""
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    ver, cuda = DRIVERS[driver]
    rows = "\n".join(f"{CARDS[c]}, {ver}" for c in cards)
    head = (f"+-----------------------------------------------------------------------------------------+\n"
            f"| NVIDIA-SMI {ver}              Driver Version: {ver}      CUDA Version: {cuda}     |\n"
            f"|-----------------------------------------+------------------------+----------------------+")
    smi = d / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA "
                                    "driver.'; exit 9\n" if broken else
                                    f'case "$1" in --query-gpu=*) cat <<"EOF"\n{rows}\nEOF\n;; *) cat <<"EOF"\n'
                                    f"{head}\nEOF\n;; esac\n"))
    smi.chmod(0o755)
    if nvcc:
        (d / "nvcc").write_text(f"#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                                f"echo 'Cuda compilation tools, release {nvcc}, V{nvcc}.1'\n")
        (d / "nvcc").chmod(0o755)
    # no system toolkit unless the test gives one: this machine has /usr/local/cuda-13.0 and nvcc in /usr/local/bin
    path = ":".join(p for p in os.environ["PATH"].split(":") if not os.path.isfile(os.path.join(p, "nvcc")))
    return {**os.environ, "PATH": f"{d}:{path}", "CUDA_HOME": str(tmp_path / "no-cuda-home")}


def plan_in(env: dict, *args: str) -> str:
    r = subprocess.run([sys.executable, "bench/buildflags.py", *args], capture_output=True, text=True, cwd=REPO,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_3090_on_a_cuda_13_driver_gets_the_pypi_toolchain_for_sm86_and_torch_cu130(tmp_path):
    env = fake_tools(tmp_path, ["3090"], "r580")
    args = plan_in(env, "args", "--venv", str(tmp_path / "venv")).split()
    root = tmp_path / "venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" \
        / "nvidia" / "cu13"
    assert "-DGGML_CUDA=on" in args and "-DCMAKE_CUDA_ARCHITECTURES=86" in args
    assert f"-DCMAKE_CUDA_COMPILER={root}/bin/nvcc" in args and f"-DCUDAToolkit_ROOT={root}" in args
    assert plan_in(env, "torch").strip() == ("torch==2.13.0+cu130 --extra-index-url "
                                             "https://download.pytorch.org/whl/cu130")
    pk = plan_in(env, "cuda-packages").split()
    assert "nvidia-cuda-nvcc==13.5.37" in pk and "nvidia-cublas==13.10.0.20" in pk
    assert "nvidia-cublas-cu12==12.9.3.13" in pk  # CTranslate2's cuBLAS
    text = plan_in(env, "plan")
    assert "NVIDIA GeForce RTX 3090, 24576 MiB, compute capability 8.6" in text
    assert "CUDA build for architectures 86 with no system nvcc; the driver runs CUDA 13.0: PyPI's CUDA 13.5.37" in text
    # the architectures are part of the wheel cache key
    (tmp_path / "b").mkdir()
    env2 = fake_tools(tmp_path / "b", ["4060ti"], "r580")
    assert plan_in(env, "key") != plan_in(env2, "key")
    assert "-DCMAKE_CUDA_ARCHITECTURES=89" in plan_in(env2, "args").split()


def test_two_cards_build_for_both_architectures(tmp_path):
    env = fake_tools(tmp_path, ["4060ti", "3090"], "r580")
    assert "-DCMAKE_CUDA_ARCHITECTURES=86;89" in plan_in(env, "args").split()


def test_a_driver_too_old_for_the_cuda_13_packages_says_what_to_do(tmp_path):
    env = fake_tools(tmp_path, ["3090"], "r535")
    args = plan_in(env, "args").split()
    assert "-DGGML_CUDA=on" not in args  # a CPU build, said, not a failure deep in a pip log
    text = plan_in(env, "plan")
    assert "llama.cpp: CPU build: no CUDA toolkit to build with" in text
    assert "driver 535.247.01 runs CUDA 12.2" in text and "Update the NVIDIA driver to R580+" in text
    assert "install a system CUDA 12 toolkit (it is then used)" in text
    assert plan_in(env, "torch").strip() == "torch==2.13.0"
    assert "the CPU build: PyTorch 2.13.0's CUDA builds need CUDA 12.8 or newer" in text
    assert plan_in(env, "cuda-packages").split() == ["nvidia-cublas-cu12==12.9.3.13"]


def test_a_cuda_12_9_driver_gets_torch_cu128_and_a_system_toolkit_where_there_is_one(tmp_path):
    env = fake_tools(tmp_path, ["4060ti"], "r575", nvcc="12.4")
    args = plan_in(env, "args").split()
    assert "-DGGML_CUDA=on" in args and "-DCMAKE_CUDA_ARCHITECTURES=89" in args
    assert not any(a.startswith("-DCMAKE_CUDA_COMPILER") for a in args)  # CMake finds the system nvcc itself
    assert "the system CUDA 12.4 toolkit at" in plan_in(env, "plan")
    assert plan_in(env, "torch").strip().startswith("torch==2.13.0+cu128 ")
    assert "nvidia-cuda-nvcc" not in plan_in(env, "cuda-packages")


def test_a_driver_that_does_not_answer_is_named(tmp_path):
    env = fake_tools(tmp_path, ["3090"], "r580", broken=True)
    assert "the NVIDIA driver is installed but not working" in plan_in(env, "plan")
    assert "-DGGML_CUDA=on" not in plan_in(env, "args").split()


def test_the_makefile_gpu_branch_as_a_dry_run(tmp_path):
    """`make -n setup` with a fake 3090: the commands it would run, nothing run (no venv is created)."""
    env = fake_tools(tmp_path, ["3090"], "r580")
    venv = tmp_path / "venv"
    r = subprocess.run(["make", "-n", "setup", f"VENV={venv}", "PYTHON=" + sys.executable], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "install --quiet torch==2.13.0+cu130 --extra-index-url https://download.pytorch.org/whl/cu130" in out
    assert "nvidia-cuda-nvcc==13.5.37" in out and "bench/buildflags.py link-toolkit" in out
    assert "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=86" in out and f"{venv}/lib/python" in out
    assert not venv.exists()
    r = subprocess.run(["make", "gpu-plan", f"VENV={venv}", "PYTHON=" + sys.executable], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0 and "GPU plan: driver 580.95.05, runs CUDA 13.0" in r.stdout
    assert "CUDA packages: nvidia-cuda-nvcc==13.5.37" in r.stdout and not venv.exists()
    # and on this box, no GPU: the CPU torch build this project's machines have on disk
    plain = {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    r = subprocess.run(["make", "-n", "setup", f"VENV={venv}", "PYTHON=" + sys.executable], capture_output=True,
                       text=True, cwd=REPO, env=plain, timeout=120)
    assert "install --quiet torch==2.13.0\n" in r.stdout and "nvidia-cuda" not in r.stdout
    assert "GGML_CUDA" not in r.stdout


@pytest.mark.slow  # asks the installed engines: llama-cpp-python comes with `make setup`
def test_doctor_on_this_box_says_no_driver_and_what_it_means_for_each_engine():
    r = run_cli("doctor")
    assert r.returncode == 1
    out = r.stdout
    assert out.startswith("no NVIDIA driver (nvidia-smi not found): every engine runs on the CPU")
    for line in ("CPU  llama.cpp (llama-cpp-python) [llm, embed]", "LLM and embedding workloads run on the CPU",
                 "CPU  CTranslate2 (faster-whisper) [asr]", "speech-to-text runs on the CPU",
                 "CPU  torch (diffusers) [image]: torch 2.13.0+cpu, a CPU build",
                 "CPU  onnxruntime (Piper) [tts]"):
        assert line in out


@pytest.mark.slow  # asks the installed engines: llama-cpp-python comes with `make setup`
def test_doctor_with_a_3090_names_each_engine_that_would_not_use_it_and_the_fix(tmp_path):
    env = fake_tools(tmp_path, ["3090"], "r580")
    r = run_cli("doctor", env={"PATH": env["PATH"], "CUDA_HOME": env["CUDA_HOME"]})
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert out.startswith("NVIDIA driver 580.95.05, supports CUDA 13.0\n  NVIDIA GeForce RTX 3090: 24 GiB, compute "
                          "capability 8.6")
    assert "the installed wheel was built without CUDA; `make setup` builds it with no system nvcc; the driver " \
           "runs CUDA 13.0: PyPI's CUDA 13.5.37 packages" in out and "for architectures 86" in out
    # CTranslate2: without the CUDA 12 cuBLAS package (a CI venv) the fix is to install it; with it (a venv where
    # `make cuda-build-check` ran) the fake card is no device for the real library, and it says so
    assert ("libcublas.so.12 is not in the environment: `pip install nvidia-cublas-cu12==12.9.3.13`" in out
            or "the driver does not give CTranslate2 a device" in out)
    assert "a CPU build of torch: `pip install torch==2.13.0+cu130 --extra-index-url " \
           "https://download.pytorch.org/whl/cu130`" in out
    assert "the CPU package: Piper runs on the CPU" in out


def test_doctor_with_a_driver_too_old(tmp_path):
    env = fake_tools(tmp_path, ["4060ti"], "r535")
    out = run_cli("doctor", env={"PATH": env["PATH"], "CUDA_HOME": env["CUDA_HOME"]}).stdout
    assert "NVIDIA GeForce RTX 4060 Ti: 16 GiB, compute capability 8.9" in out
    assert "no CUDA toolkit to build with: no system nvcc, and driver 535.247.01 runs CUDA 12.2" in out
    assert "PyTorch 2.13.0's CUDA builds need CUDA 12.8 or newer and the driver runs 12.2: update the driver" in out


SUITE = """
[suite]
name = "needs-gpu"
[defaults]
warmups = 0
repetitions = 1
threads = 2
require_gpu = true
[energy]
idle_s = 0
meter = "estimate"
[[workloads]]
name = "on-gpu"
kind = "llm"
model = "bundled:smollm2"
tests = ["tg16"]
[[workloads]]
name = "cpu-on-purpose"
kind = "llm"
model = "bundled:smollm2"
require_gpu = false
tests = ["tg16"]
"""


@pytest.mark.slow
def test_a_workload_that_requires_the_gpu_is_refused_on_the_cpu_with_the_reason_and_the_rest_runs(
        write_suite, tmp_path):
    r = run_cli("run", write_suite(SUITE), "--results-dir", tmp_path, "--no-progress", "--machine", "cpubox")
    assert r.returncode == 1
    said = " ".join((r.stdout + r.stderr).split())
    assert "on-gpu: require_gpu, but it would run on the CPU: llama.cpp (llama-cpp-python): no NVIDIA driver" in said
    rows = list(csv.DictReader(open(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))))
    assert [(x["workload"], x["device"]) for x in rows] == [("cpu-on-purpose", "cpu")]


def test_link_toolkit_names_the_libraries_cmake_looks_for_and_stubs_the_driver(tmp_path, monkeypatch):
    """PyPI's tree has only versioned libraries; CMake links unversioned names and CUDA::cuda_driver. Without a
    driver (the build check) the stub defines the driver functions ggml calls, with the driver's soname."""
    from bench import buildflags

    lib = tmp_path / "cu13" / "lib"
    lib.mkdir(parents=True)
    for f in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        (lib / f).write_bytes(b"")
    monkeypatch.setattr(buildflags, "system_libcuda", lambda: None)
    said = buildflags.link_toolkit(tmp_path / "cu13", stub_driver=True)
    assert (lib / "libcublas.so").resolve().name == "libcublas.so.13" and len(said) == 4
    stub = lib / "stubs" / "libcuda.so"
    names = subprocess.run(["nm", "-D", "--defined-only", str(stub)], capture_output=True, text=True).stdout
    assert all(f" T {f}" in names for f in buildflags.DRIVER_API)
    assert "libcuda.so.1" in subprocess.run(["readelf", "-d", str(stub)], capture_output=True, text=True).stdout
    assert buildflags.link_toolkit(tmp_path / "cu13", stub_driver=True) == []  # once


def test_on_a_gpu_box_the_stub_is_the_drivers_own_library(tmp_path, monkeypatch):
    from bench import buildflags

    (tmp_path / "lib").mkdir()
    driver = tmp_path / "libcuda.so.1"
    driver.write_bytes(b"")
    monkeypatch.setattr(buildflags, "_run", lambda cmd: f"\tlibcuda.so.1 (libc6,x86-64) => {driver}\n"
                        if "ldconfig" in cmd[0] else None)
    assert buildflags.system_libcuda() == str(driver)
    buildflags.link_toolkit(tmp_path)
    assert (tmp_path / "lib" / "stubs" / "libcuda.so").resolve() == driver


def test_make_bench_on_a_gpu_box_starts_with_doctor(tmp_path):
    env = fake_tools(tmp_path, ["3090"], "r580")
    r = subprocess.run(["make", "-n", "bench", f"VENV={tmp_path / 'venv'}", "PYTHON=" + sys.executable],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    lines = r.stdout.splitlines()
    doctor = next(i for i, x in enumerate(lines) if x.endswith("/shadowbench doctor"))
    run = next(i for i, x in enumerate(lines) if "/shadowbench run " in x)
    assert doctor < run


def test_ctranslate2s_cublas_is_found_by_its_soname_without_ld_library_path(tmp_path):
    """A library in an NVIDIA package folder (here a stand-in built with the real soname) is loaded by
    cudalibs, after which dlopen("libcublas.so.12") by name, as CTranslate2 does, finds it: no LD_LIBRARY_PATH."""
    lib = tmp_path / "site" / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    for name in ("libcublas.so.12", "libcublasLt.so.12"):
        src = tmp_path / f"{name}.c"
        src.write_text("int cublasCreate_v2(void) { return 0; }\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / name), str(src), f"-Wl,-soname,{name}"], check=True)
    code = (f"import ctypes, shutil; from bench import cudalibs; cudalibs._roots = lambda: [__import__('pathlib')"
            f".Path({str(tmp_path / 'site' / 'nvidia')!r})]; shutil.which = lambda n: '/usr/bin/' + n; "
            "print(cudalibs.preload_ct2()); ctypes.CDLL('libcublas.so.12'); print('found by soname')")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(lib), "found by soname"]
    # and without the preload the name is not found
    r = subprocess.run([sys.executable, "-c", "import ctypes; ctypes.CDLL('libcublas.so.12')"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode != 0 and "libcublas.so.12" in r.stderr


def test_doctor_reports_an_engine_whose_probe_crashes_and_goes_on(tmp_path):
    # an engine whose import dies natively (as two builds of one CUDA library in a process do): a llama_cpp on the
    # path that reads address 0 when imported
    fake = tmp_path / "lib" / "llama_cpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import ctypes, sys\nprint('ggml_cuda_init: found 1 CUDA devices', "
                                      "file=sys.stderr, flush=True)\nctypes.string_at(0)\n")
    r = run_cli("doctor", env={"PYTHONPATH": str(tmp_path / "lib")})
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert "FAIL  llama.cpp (llama-cpp-python) [llm, embed]: the probe CRASHED with SIGSEGV (Segmentation fault)" \
        in out
    assert "| ggml_cuda_init: found 1 CUDA devices" in out  # its last words
    assert "Two builds of one CUDA library in a process are the usual cause" in out
    # the other engines were still asked, each in its own process
    assert "torch (diffusers) [image]: torch" in out and "onnxruntime (Piper) [tts]: onnxruntime" in out
    assert "Traceback" not in r.stderr


def test_loaded_cuda_libraries_are_read_from_the_process_map(tmp_path):
    from bench.doctor import library_clashes, loaded_cuda_libs, Engine

    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /nonexistent/cuda-13.0/lib64/libcublas.so.13.1.0.3\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /nonexistent/cuda-13.0/lib64/libcudart.so.13.0.96\n"
        "7f04-7f05 r-xp 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
        "7f06-7f07 rw-p 00000000 00:00 0 \n")
    libs = loaded_cuda_libs(str(maps))
    assert set(libs) == {"libcublas", "libcudart"}
    assert libs["libcublas"].startswith("/nonexistent/cuda-13.0/lib64/libcublas.so.13.1.0.3")
    a = Engine("llama.cpp (x)", "llm", True, "", libs={"libcublas": "/usr/local/cuda/lib64/libcublas.so.13.1.0.3"})
    b = Engine("torch (diffusers)", "image", True, "",
               libs={"libcublas": "/venv/nvidia/cu13/lib/libcublas.so.13 (13.0.2)"})
    [warn] = library_clashes([a, b])
    assert "libcublas differs between engines: llama.cpp loads /usr/local/cuda" in warn and "never meet" in warn
    assert library_clashes([a, a]) == []


def _so(cc, out: Path, src: str, *flags: str) -> None:
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(c), *flags], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to make the libraries")
def test_preload_loads_only_the_toolkit_the_build_was_linked_with(tmp_path):
    """A llama.cpp CUDA build NEEDs libcublas.so.13; torch's copy of that soname sits in site-packages. With the
    build's toolkit recorded, exactly that toolkit's file is loaded; without a record, nothing (never torch's copy);
    where the build's RUNPATH finds it, nothing either."""
    cc = shutil.which("cc")
    toolkit, torchs = tmp_path / "toolkit" / "lib", tmp_path / "site" / "nvidia" / "cu13" / "lib"
    pkg = tmp_path / "site" / "llama_cpp"
    for d in (toolkit, torchs, pkg / "lib"):
        d.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for where, tag in ((toolkit, "toolkit"), (torchs, "torch")):
        _so(cc, where / "libcublas.so.13", f'const char *which_cublas(void) {{ return "{tag}"; }}\n',
            "-Wl,-soname,libcublas.so.13")
    ggml = pkg / "lib" / "libggml-cuda.so"
    _so(cc, ggml, "const char *which_cublas(void); const char *ask(void) { return which_cublas(); }\n",
        f"-L{toolkit}", "-l:libcublas.so.13")
    from bench.cudalibs import elf_links

    needed, runpath = elf_links(ggml)
    assert "libcublas.so.13" in needed and runpath == []
    script = textwrap.dedent(f"""
        import ctypes, json, sys
        from pathlib import Path
        sys.path.insert(0, {str(tmp_path / "site")!r})
        from bench import cudalibs
        sys.prefix = sys.argv[1]
        loaded = cudalibs.preload_llama()
        try:
            lib = ctypes.CDLL({str(ggml)!r})
            lib.ask.restype = ctypes.c_char_p
            got = lib.ask().decode()
        except OSError as e:
            got = "unresolved"
        print(json.dumps([loaded, got]))
    """)

    def ask(prefix: Path, **env):
        r = subprocess.run([sys.executable, "-c", script, str(prefix)], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "LD_LIBRARY_PATH": "", **env}, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    rec = tmp_path / "venv"
    rec.mkdir()
    (rec / "shadowbench-llama-build.json").write_text(json.dumps({"toolkit": "pypi", "toolkit_lib": str(toolkit)}))
    loaded, got = ask(rec)
    assert loaded == str(toolkit / "libcublas.so.13") and got == "toolkit"
    loaded, got = ask(tmp_path / "no-record")  # no record: never another copy of the soname
    assert loaded == "" and got == "unresolved"
    loaded, got = ask(rec, LD_LIBRARY_PATH=str(torchs))  # the loader finds one by itself: nothing preloaded
    assert loaded == "" and got == "torch"
