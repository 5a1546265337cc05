"""GPU suites and model fetching: suites validate here; hub models resolve through a pre-filled Hugging Face cache
with HF_HUB_OFFLINE=1 (the same code path as a download); the fit check and the disk check."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from bench import fetch, models
from bench.commands import pick_suite
from bench.config import load_suite
from bench.errors import DeviceUnavailable
from bench.energy import NullMeter
from bench.energy.nvml import probe_gpus
from bench.results import read_rows
from bench.runner import Runner

from .conftest import REPO, run_cli
from .fake_nvml import FakeNVML, PowerTrace

SMOL = models.resolve(models.ModelRef("bundled", "smollm2"))


def fill_cache(hf_home: Path, repo: str, filename: str, src: Path | None = None, sparse_bytes: int = 0) -> Path:
    """The layout huggingface_hub writes: blobs/, snapshots/<commit>/<file> -> blob, refs/main."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo}/{filename}".encode()).hexdigest()
    blob = root / "blobs" / hashlib.sha256(f"{repo}/{filename}".encode()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    if src is not None:
        shutil.copyfile(src, blob)
    else:
        with open(blob, "wb") as f:
            f.truncate(sparse_bytes)  # sparse: the size without the disk
    snap = root / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snap


@pytest.mark.parametrize("suite", ["rtx3090.toml", "rtx4060ti.toml", "rtx3090-sweep.toml", "rtx4060ti-sweep.toml",
                                   "quality-smollm2.toml", "gpu-llama3.1-8b.toml", "ollama.toml",
                                   "vllm.toml", "sd15-synthetic.toml", "server-smollm2.toml", "quick.toml"])
def test_every_suite_validates(suite):
    r = run_cli("validate", REPO / "suites" / suite)
    assert r.returncode == 0, r.stderr


HF_SUITE = """
[suite]
name = "hub"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
[[workloads]]
name = "from-hub"
kind = "llm"
model = {{ hf_repo = "test-org/smollm2-gguf", hf_file = "smollm2.gguf" }}
arch = {{ n_layers = 30, n_kv_heads = 3, head_dim = 64 }}
n_ctx = {n_ctx}
tests = ["pp32+tg8"]
"""


@pytest.mark.slow
def test_hub_model_resolves_from_prefilled_cache_offline(write_suite, tmp_path):
    hf_home = tmp_path / "hf"
    snap = fill_cache(hf_home, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    r = run_cli("run", write_suite(HF_SUITE.format(n_ctx=512)), "--results-dir", tmp_path / "res", "--no-progress",
                env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    [row] = read_rows(next(p for p in (tmp_path / "res").rglob("*.csv") if not p.name.endswith(".power.csv")))
    assert row["model"] == "hf:test-org/smollm2-gguf/smollm2.gguf"
    assert row["model_sha256"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    assert float(row["tg_tokens_per_s"]) > 0 and row["output_tokens"] == "8"
    # a model that is not in the cache fails clearly offline, naming it
    r = run_cli("run", write_suite(HF_SUITE.format(n_ctx=512).replace("smollm2-gguf", "absent-gguf"), "b.toml"),
                "--results-dir", tmp_path / "res2", "--no-progress",
                env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "test-org/absent-gguf" in r.stderr and "HF_HUB_OFFLINE" in r.stderr


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hf_home


def _card(gb):
    gpus, why = probe_gpus(FakeNVML(PowerTrace(horizon_s=1), name="NVIDIA GeForce RTX 4060 Ti", memory_gb=gb))
    assert why == ""
    return gpus


@pytest.mark.slow
def test_model_larger_than_the_card_is_skipped_with_sizes_and_the_rest_runs(write_suite, tmp_path, offline_cache):
    fill_cache(offline_cache, "test-org/big-gguf", "big-f16.gguf", sparse_bytes=17_000_000_000)
    fill_cache(offline_cache, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    text = HF_SUITE.format(n_ctx=512) + """
[[workloads]]
name = "too-big"
kind = "llm"
model = { hf_repo = "test-org/big-gguf", hf_file = "big-f16.gguf" }
arch = { n_layers = 32, n_kv_heads = 8, head_dim = 128 }
n_ctx = 4096
tests = ["tg8"]
"""
    suite = load_suite(write_suite(text))
    out = Runner(suite, NullMeter(), tmp_path / "res", "box", _card(16.0), show_progress=False, idle_s=0).run()
    assert out.failures == []
    [(name, why)] = out.skipped
    assert name == "too-big"
    assert "needs 18.14 GB" in why and "model 17.00 GB" in why and "KV cache 0.54 GB for n_ctx 4096" in why
    assert "RTX 4060 Ti" in why and "16.0 GB" in why
    assert [r["workload"] for r in read_rows(out.path)] == ["from-hub"]  # the rest of the suite ran


def test_kv_cache_counts_in_the_fit(offline_cache):
    fill_cache(offline_cache, "test-org/smollm2-gguf", "smollm2.gguf", src=SMOL)
    ref = models.ModelRef("hf", "test-org/smollm2-gguf", "smollm2.gguf")
    small = fetch.need("llm", ref, {"n_ctx": 4096, "arch": {"n_layers": 32, "n_kv_heads": 8, "head_dim": 128}})
    assert small.download_bytes == 0 and small.model_bytes == SMOL.stat().st_size
    assert fetch.fit_reason("llm", small, {"n_gpu_layers": -1}, _card(16.0), 24) is None
    huge = fetch.need("llm", ref, {"n_ctx": 131072, "arch": {"n_layers": 80, "n_kv_heads": 64, "head_dim": 128}})
    why = fetch.fit_reason("llm", huge, {"n_gpu_layers": -1}, _card(16.0), 24)
    assert why and "KV cache 343.60 GB for n_ctx 131072" in why
    # with every layer on the CPU, RAM is what has to hold it
    assert "RAM" in fetch.fit_reason("llm", huge, {"n_gpu_layers": 0}, _card(16.0), 24)


def test_kv_cache_size():
    # Llama-3.1-8B: 32 layers, 8 KV heads of 128, f16, 4096 tokens = 512 MiB
    assert fetch.kv_cache_bytes(4096, {"n_layers": 32, "n_kv_heads": 8, "head_dim": 128}) == 512 * 2**20


@pytest.mark.slow
def test_full_disk_is_refused_before_downloading(write_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "hub_size", lambda ref: (5_000_000_000, False))  # not cached: would download 5 GB
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100e9, 99e9, 2_000_000_000))
    downloads = []
    monkeypatch.setattr(models, "resolve", lambda ref: downloads.append(ref))
    suite = load_suite(write_suite(HF_SUITE.format(n_ctx=512)), check_models=False)
    out = Runner(suite, NullMeter(), tmp_path / "res", "box", _card(24.0), show_progress=False, idle_s=0).run()
    [(name, msg)] = out.failures
    assert "not enough disk for the download: needs 5.00 GB" in msg and "2.00 GB free" in msg
    assert out.exit_status == 2
    assert downloads == []  # refused before anything downloaded
    with pytest.raises(DeviceUnavailable):
        fetch.check_disk(fetch.Need(5_000_000_000, 5_000_000_000, 0, ""), tmp_path)


def test_make_bench_picks_the_suite_by_gpu_memory():
    assert pick_suite([]).name == "quick.toml"
    # a first run on a GPU is one model; FULL=1 (--full) is the card's whole suite
    assert pick_suite(_card(25.77)).name == "gpu-llama3.1-8b.toml"
    assert pick_suite(_card(25.77), full=True).name == "rtx3090.toml"  # a 24 GiB card as NVML reports it
    assert pick_suite(_card(17.18), full=True).name == "rtx4060ti.toml"  # 16 GiB
    assert pick_suite(_card(6.0)).name == "quick.toml"


def test_plan_fits_in_free_memory_and_names_who_holds_the_rest(tmp_path):
    """A 24 GB card with 18 GB held by Ollama (fake nvidia-smi and fake NVML on the paths): plan marks what does
    not fit in the 6 GB that are free, names the holder with the hint, and lists what is not cached in one line."""
    import subprocess

    hf = tmp_path / "hf"
    fill_cache(hf, "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
               sparse_bytes=4_920_000_000)
    fill_cache(hf, "bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf",
               sparse_bytes=2_390_000_000)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI 560.35.03 (fake)'\n")
    smi.chmod(0o755)
    ollama = bin_dir / "ollama"
    shutil.copy("/bin/sleep", ollama)
    holder = subprocess.Popen([str(ollama), "60"])
    try:
        r = run_cli("plan", REPO / "suites" / "rtx3090.toml", env={
            "PYTHONPATH": str(REPO / "tests" / "fake_gpu"), "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HF_HUB_CACHE": str(hf / "hub"), "HF_HUB_OFFLINE": "1", "FAKE_GPU_TOTAL_GB": "24",
            "FAKE_GPU_USED_GB": "18", "FAKE_GPU_PROCS": f"{holder.pid}:17.5"})
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr  # one workload could not be sized: not a whole plan
    lines = r.stdout.splitlines()
    assert lines[0] == "GPU NVIDIA GeForce RTX 3090: 24.0 GB, 6.0 GB free"
    assert lines[1] == (f"  held by ollama (pid {holder.pid}, 17.5 GB); Ollama frees it with OLLAMA_KEEP_ALIVE=0 "
                        "or when stopped")
    q4 = next(x for x in lines if x.startswith("llama3.1-8b-q4_k_m"))
    # 4.92 GB of weights + 0.54 GB of KV cache for n_ctx 4096 + 0.6 GB runtime = 6.06 GB > 6.0 GB free
    assert "in cache; needs 6.06 GB; DOES NOT FIT: needs 6.06 GB" in q4 and "6.0 GB free of 24.0 GB" in q4
    assert "ollama" in q4
    phi = next(x for x in lines if x.startswith("phi3.5-mini-q4_k_m"))
    assert phi.endswith("fits")
    f16 = next(x for x in lines if x.startswith("llama3.1-8b-f16"))
    assert "SKIPPED" in f16 and "not in the Hugging Face cache" in f16
    skipped = sum(": SKIPPED: " in x for x in lines)  # the workloads whose files are not in this offline cache
    assert lines[-1] == f"downloads: unknown: {skipped} workload(s) could not be sized (see SKIPPED above)"


@pytest.mark.slow
def test_hub_unreachable_skips_that_workload_in_one_line_and_the_rest_runs(write_suite, tmp_path):
    text = """
[suite]
name = "hub-down"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
[[workloads]]
name = "from-hub"
kind = "llm"
model = { hf_repo = "test-org/not-cached-gguf", hf_file = "model.gguf" }
tests = ["tg4"]
[[workloads]]
name = "local"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 256
tests = ["tg4"]
"""
    r = run_cli("run", write_suite(text), "--results-dir", tmp_path / "res", "--no-progress",
                env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
                     "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}, timeout=180)
    errors = [x for x in r.stderr.splitlines() if "from-hub" in x and "could not ask the Hugging Face hub" in x]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert [row["workload"] for row in read_rows(next((tmp_path / "res").rglob("*-hub-down.csv")))] == ["local"]


def test_a_run_asks_before_downloading_more_than_20_gb(write_suite, tmp_path, monkeypatch, capsys):
    import signal

    from shadowbench.cli import main

    monkeypatch.setattr(fetch, "hub_size", lambda ref: (30_000_000_000, False))  # a 30 GB model, not cached
    suite = write_suite("""
[suite]
name = "big"
[[workloads]]
name = "huge"
kind = "llm"
model = { hf_repo = "test-org/huge-gguf", hf_file = "huge.gguf" }
tests = ["tg4"]
""")
    sigint = signal.getsignal(signal.SIGINT)
    try:
        rc = main(["run", str(suite), "--results-dir", str(tmp_path / "res"), "--no-progress"])
    finally:
        signal.signal(signal.SIGINT, sigint)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    err = capsys.readouterr().err
    assert rc == 2 and "plan: huge (llm, hf:test-org/huge-gguf/huge.gguf): download 30.00 GB" in err
    assert "--yes: expected --yes to download 30.0 GB of models (more than 20 GB)" in err
    assert not (tmp_path / "res").exists()  # nothing started, nothing written


def test_a_gguf_ollama_has_pulled_is_used_in_place(write_suite, tmp_path):
    """``model = "ollama:NAME"`` finds the GGUF blob of a model Ollama has pulled (its manifest's model layer), so
    nothing is downloaded twice; a model Ollama does not have is a one-line error naming the manifest."""
    import json

    root = tmp_path / "ollama"
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:aaa"},
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:bbb"}]}))
    (root / "blobs").mkdir()
    (root / "blobs" / "sha256-bbb").symlink_to(SMOL)
    text = """
[suite]
name = "ollama-blob"
[[workloads]]
name = "w"
kind = "llm"
model = "ollama:{name}"
tests = ["tg4"]
"""
    env = {"OLLAMA_MODELS": str(root)}
    r = run_cli("validate", write_suite(text.format(name="smollm2:135m")), env=env)
    assert r.returncode == 0, r.stderr
    from bench import models

    os.environ["OLLAMA_MODELS"] = str(root)
    try:
        assert models.resolve(models.ModelRef("ollama", "smollm2:135m")) == root / "blobs" / "sha256-bbb"
    finally:
        del os.environ["OLLAMA_MODELS"]
    r = run_cli("validate", write_suite(text.format(name="llama3.1:8b"), "b.toml"), env=env)
    assert r.returncode == 2 and "no Ollama manifest at" in r.stderr and "llama3.1/8b" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_image_pipelines_gguf_transformer_counts_in_the_download(offline_cache):
    """The pipeline folder and the transformer's GGUF are two downloads; a cached file counts as none."""
    fill_cache(offline_cache, "test-org/flux-gguf", "flux-Q8_0.gguf", sparse_bytes=12_700_000_000)
    fill_cache(offline_cache, "test-org/flux-pipeline", "model_index.json", sparse_bytes=1_000)
    pipe = models.ModelRef("hf", "test-org/flux-pipeline", "model_index.json")
    n = fetch.need("image", pipe, {"memory_gb": 15.5, "transformer_gguf": {"hf_repo": "test-org/flux-gguf",
                                                                           "hf_file": "flux-Q8_0.gguf"}})
    assert n.model_bytes == 12_700_001_000 and n.download_bytes == 0 and n.memory_bytes == 15_500_000_000
    with pytest.raises(models.ModelNotFound, match="not in the Hugging Face cache"):
        fetch.need("image", pipe, {"transformer_gguf": {"hf_repo": "test-org/absent", "hf_file": "x.gguf"}})
