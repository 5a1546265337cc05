"""Partial offload (n_gpu_layers = "fit"): the split by layer for the guides' 70B on the guides' cards, from the
file size before a download and from a GGUF's own tensor table after it; the RAM check for the rest; the key."""
import csv

import numpy as np
import pytest

from bench import fetch
from bench.config import load_suite
from bench.errors import ConfigError

from .conftest import REPO, run_cli

LLAMA_70B = {"n_layers": 80, "n_kv_heads": 8, "head_dim": 128}
Q4_K_M_70B = 42_520_000_000  # Llama-3.3-70B-Instruct-Q4_K_M.gguf, bytes (bartowski's file: 42.5 GB)
GB = 1e9


@pytest.mark.parametrize("card_gb,expected_layers", [(24, 42), (16, 28)])
def test_70b_split_on_24_and_16_gb(card_gb, expected_layers):
    kv_per_layer = 2 * 4096 * 8 * 128 * 2  # f16 K and V, one layer, n_ctx 4096: 16.8 MB
    per_layer = Q4_K_M_70B // 80
    k = int((card_gb * GB - fetch.RUNTIME_OVERHEAD_GB * GB) // (per_layer + kv_per_layer))
    assert k == expected_layers
    s = fetch.estimated_split(Q4_K_M_70B, LLAMA_70B, 4096, int(card_gb * GB))
    assert (s.n_gpu_layers, s.layers_on_gpu, s.n_layers, s.estimated) == (k, k, 80, True)
    assert s.gpu_bytes == k * (per_layer + kv_per_layer) + int(fetch.RUNTIME_OVERHEAD_GB * GB) <= card_gb * GB
    assert s.ram_bytes == (80 - k) * (per_layer + kv_per_layer)
    assert f"{k} of 80 layers on the GPU" in s.detail


def test_70b_on_a_24_gb_card_needs_the_rest_in_ram():
    gpus = [{"name": "NVIDIA GeForce RTX 3090", "memory_total_gb": 24.0, "memory_free_gb": 24.0}]
    n = fetch.Need(0, Q4_K_M_70B, Q4_K_M_70B, "")
    params = {"n_gpu_layers": "fit", "arch": LLAMA_70B, "n_ctx": 4096}
    assert fetch.fit_reason("llm", n, params, gpus, ram_gib=64) is None
    why = fetch.fit_reason("llm", n, params, gpus, ram_gib=16)
    assert why.startswith("split by layer: 42 of 80 layers on the GPU") and "the part in RAM needs 20.8 GB" in why
    # without "fit" the whole model must fit: it does not
    assert "needs 42.52 GB" in fetch.fit_reason("llm", n, {"n_gpu_layers": -1}, gpus, ram_gib=64)


def test_everything_fits_gives_all_layers_and_the_output_head():
    s = fetch.split_layers([100] * 4, token_embd=50, output=30, kv_per_layer=10, free_gpu=10_000, overhead=1000)
    assert (s.n_gpu_layers, s.layers_on_gpu) == (-1, 4)
    assert s.gpu_bytes == 4 * 110 + 30 + 1000 and s.ram_bytes == 50  # token embeddings stay on the CPU
    s = fetch.split_layers([100] * 4, 50, 30, 10, free_gpu=1000, overhead=1000)
    assert (s.n_gpu_layers, s.gpu_bytes, s.ram_bytes) == (0, 0, 4 * 110 + 80)


def _write_gguf(path, layer_floats: list[int]):
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_tensor("token_embd.weight", np.zeros(64, dtype=np.float32))
    for i, n in enumerate(layer_floats):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros(n, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_up.weight", np.zeros(n, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.zeros(16, dtype=np.float32))
    w.add_tensor("output.weight", np.zeros(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_the_exact_split_comes_from_the_files_tensor_table(tmp_path):
    """Uneven layers: the top layers llama.cpp offloads are the ones counted."""
    f = tmp_path / "m.gguf"
    _write_gguf(f, [1000, 1000, 2000, 3000])  # floats per tensor, two tensors per layer: 8, 8, 16, 24 kB
    layers, embd, out = fetch.gguf_layers(f)
    assert layers == [8000, 8000, 16000, 24000] and embd == 256 and out == 64 + 256
    arch = {"n_layers": 4, "n_kv_heads": 1, "head_dim": 8}
    kv = 2 * 64 * 1 * 8 * 2  # n_ctx 64: 2 KB per layer
    s = fetch.file_split(f, arch, 64, free_gpu=40_000 + 2 * kv + int(fetch.RUNTIME_OVERHEAD_GB * GB))
    assert (s.n_gpu_layers, s.estimated) == (2, False)  # the top two: 16 kB + 24 kB
    assert s.ram_bytes == 16000 + 256 + 320 + 2 * kv


def test_fit_needs_arch_and_is_the_only_word(write_suite):
    head = '[suite]\nname = "s"\n[[workloads]]\nname = "w"\nkind = "llm"\nmodel = "bundled:smollm2"\ntests = ["tg16"]\n'
    with pytest.raises(ConfigError) as e:
        load_suite(write_suite(head + 'n_gpu_layers = "fit"\n'))
    assert "arch" in str(e.value)
    with pytest.raises(ConfigError):
        load_suite(write_suite(head + 'n_gpu_layers = "all"\n'))
    arch = 'arch = { n_layers = 30, n_kv_heads = 3, head_dim = 64 }\n'
    ok = load_suite(write_suite(head + 'n_gpu_layers = "fit"\n' + arch))
    assert ok.workloads[0].params["n_gpu_layers"] == "fit"


@pytest.mark.slow
def test_fit_on_a_box_without_a_gpu_runs_every_layer_on_the_cpu(write_suite, tmp_path):
    suite = write_suite("""
[suite]
name = "fit"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
meter = "estimate"
[[workloads]]
name = "smol"
kind = "llm"
model = "bundled:smollm2"
n_gpu_layers = "fit"
arch = { n_layers = 30, n_kv_heads = 3, head_dim = 64 }
tests = ["tg16"]
""")
    r = run_cli("run", suite, "--results-dir", tmp_path, "--no-progress", "--machine", "cpubox")
    assert r.returncode == 0, r.stderr
    [row] = list(csv.DictReader(open(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))))
    assert row["n_gpu_layers"] == "0" and row["device"] == "cpu" and row["gpu_bytes"] == ""


CARDS = {"rtx3090": ([{"name": "NVIDIA GeForce RTX 3090", "memory_total_gb": 25.3, "memory_free_gb": 24.8}], 32),
         "rtx4060ti": ([{"name": "NVIDIA GeForce RTX 4060 Ti", "memory_total_gb": 17.2, "memory_free_gb": 16.7}], 16)}
BIG = {  # the fit check's verdict for each big-model workload of each GPU suite (quoted in the README)
    ("rtx3090", "llama3.3-70b-q4_k_m-split"): "fits split by layer: 44 of 80 layers on the GPU (24.7 GB with KV cache "
                                              "and runtime), 19.7 GB in RAM",
    ("rtx3090", "flux1-schnell-1024"): "needs 33.50 GB (declared 33.5 GB (memory_gb)); the GPU (NVIDIA GeForce RTX "
                                       "3090) has 24.8 GB free of 25.3 GB",
    ("rtx3090", "flux1-schnell-q8_0-1024"): "fits (declared 15.5 GB)",
    ("rtx3090", "qwen-image-q4_k_s-1024"): "fits (declared 18 GB)",
    ("rtx4060ti", "llama3.3-70b-q4_k_m-split"): "split by layer: 29 of 80 layers on the GPU (16.5 GB with KV cache and "
                                                "runtime), 28.0 GB in RAM; the part in RAM needs 28.0 GB and the box "
                                                "has 16.0 GB",
    ("rtx4060ti", "flux1-schnell-q4_k_s-1024"): "fits (declared 10.5 GB)",
    ("rtx4060ti", "qwen-image-q4_k_s-1024-sequential"): "fits (declared 6 GB)",
}


@pytest.mark.parametrize("card,workload", sorted(BIG))
def test_the_fit_checks_verdict_for_each_big_model_on_each_card(card, workload):
    """An empty card as NVML reports it (0.5 GB held by the driver), the build's RAM (builds.toml: 32 GB on the 3090
    box, 16 GB on the 4060 Ti box); the 70B's published file size."""
    gpus, ram = CARDS[card]
    [w] = [w for w in load_suite(REPO / "suites" / f"{card}.toml", check_models=False).workloads if w.name == workload]
    p = dict(w.params)
    if p.get("memory_gb"):
        n = fetch.Need(0, 0, int(p["memory_gb"] * GB), f"declared {p['memory_gb']:g} GB (memory_gb)")
    else:
        n = fetch.Need(0, Q4_K_M_70B, Q4_K_M_70B, "")
    why = fetch.fit_reason(w.kind, n, p, gpus, ram_gib=ram * 1e9 / 2**30)
    if why is None and p.get("n_gpu_layers") == "fit":
        got = "fits split by layer: " + fetch.estimated_split(Q4_K_M_70B, p["arch"], p["n_ctx"],
                                                              fetch.gpu_free_bytes(gpus)).detail.split(" (est")[0]
    elif why is None:
        got = f"fits (declared {p['memory_gb']:g} GB)"
    else:
        got = why.split(" (estimated from")[0] + (why.split("tensors)")[1] if "tensors)" in why else "")
    assert got == BIG[(card, workload)]
