"""Synthetic LLM weights: a published architecture's GGUF layout with seeded random weights."""
from collections import Counter

import pytest

from bench import synthllm
from bench.errors import ConfigError

from .conftest import run_cli


def test_llama31_8b_q4_k_m_has_the_published_files_tensor_table_and_size():
    a, q = synthllm.parse("llama3.1-8b-q4_k_m")
    table = synthllm.tensor_table(a, q)
    # the published Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf: 66 F32, 193 Q4_K and 33 Q6_K tensors
    assert Counter(t for _, _, t in table) == {"F32": 66, "Q4_K": 193, "Q6_K": 33}
    assert synthllm.n_params(a) == 8_030_261_312
    types = {n: t for n, _, t in table}
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    # llama.cpp's use_more_bits(i, 32): layers 0-3, 28-31 and every third from 6
    assert [i for i in range(32) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"] == [
        0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert all(types[f"blk.{i}.ffn_down.weight"] == types[f"blk.{i}.attn_v.weight"] for i in range(32))


@pytest.mark.parametrize("arch", list(synthllm.archs()))
@pytest.mark.parametrize("quant", list(synthllm.QUANTS))
def test_every_architectures_table_follows_its_declared_shapes(arch, quant):
    a, q = synthllm.parse(f"{arch}-{quant}")
    table = {n: (s, t) for n, s, t in synthllm.tensor_table(a, q)}
    kv = a.head_dim * a.n_head_kv
    assert table["token_embd.weight"][0] == (a.n_embd, a.n_vocab)
    assert table["output.weight"][0] == (a.n_embd, a.n_vocab)
    for i in range(a.n_layer):
        if a.gguf_arch == "phi3":
            assert table[f"blk.{i}.attn_qkv.weight"][0] == (a.n_embd, a.n_embd + 2 * kv)
            assert table[f"blk.{i}.ffn_up.weight"][0] == (a.n_embd, 2 * a.n_ff)
        else:
            assert table[f"blk.{i}.attn_k.weight"][0] == (a.n_embd, kv)
            assert table[f"blk.{i}.ffn_gate.weight"][0] == (a.n_embd, a.n_ff)
        assert table[f"blk.{i}.ffn_down.weight"][0] == (a.n_ff, a.n_embd)
    assert not any(f"blk.{a.n_layer}." in n for n in table)
    # every matrix row is whole blocks of its type, vectors stay F32, and F16 means every matrix F16
    for shape, typ in table.values():
        synthllm.tensor_bytes(shape, typ)
        assert (len(shape) == 1) == (typ == "F32")
        if q == "f16":
            assert typ in ("F16", "F32")
    if q in a.published:  # a published file's size: within 1%
        assert synthllm.data_bytes(a, q) == pytest.approx(a.published[q], rel=0.01)
        assert a.published_source


def test_q4_k_m_rules_for_70b_and_fused_tensors():
    a, q = synthllm.parse("llama3.3-70b-q4_k_m")
    types = Counter(t for n, _, t in synthllm.tensor_table(a, q) if "attn_v" in n)
    assert types == {"Q6_K": 40, "Q5_K": 40}  # llama.cpp's LLM_TYPE_70B: attn_v one step up from Q4_K
    a, q = synthllm.parse("phi-3.5-mini-q4_k_m")
    assert {t for n, _, t in synthllm.tensor_table(a, q) if "attn_qkv" in n} == {"Q5_K"}


def test_names_and_refusals(write_suite):
    assert "llama3.1-8b-q4_k_m" in synthllm.names() and synthllm.is_llm("mistral-7b-f16")
    assert not synthllm.is_llm("sd15") and not synthllm.is_llm("llama3.1-8b-q3_k")
    with pytest.raises(ConfigError, match="synthetic:<arch>-<quant>"):
        synthllm.parse("gpt5-q4_k_m")
    head = "[suite]\nname = \"s\"\n[[workloads]]\nname = \"w\"\nkind = \"{kind}\"\nmodel = \"{model}\"\n{extra}"
    cases = [("llm", "synthetic:llama3.1-8b-q4_k_m", 'tests = ["tg16", "ppl"]', "speed tests only"),
             ("llm", "synthetic:llama3.1-8b-q4_k_m", 'tests = ["each5"]', "speed tests only"),
             ("llm", "synthetic:sd15", 'tests = ["tg16"]', "is an image pipeline"),
             ("image", "synthetic:llama3.1-8b-q4_k_m", "", "synthetic LLM weights are for kind")]
    for kind, model, extra, msg in cases:
        r = run_cli("validate", write_suite(head.format(kind=kind, model=model, extra=extra)))
        assert r.returncode == 2 and msg in r.stderr, (model, r.stderr)
    ok = write_suite(head.format(kind="llm", model="synthetic:llama3.3-70b-q4_k_m",
                                 extra='n_gpu_layers = "fit"\ntests = ["tg16"]'))
    r = run_cli("validate", ok)  # "fit" takes its KV-cache shape from the architecture
    assert r.returncode == 0, r.stderr


@pytest.mark.slow  # llama.cpp loads and runs it
def test_a_tiny_synthetic_model_is_written_once_and_runs_through_the_harness(write_suite, tmp_path, llama_src):
    import numpy as np

    from bench.results import read_rows

    path = synthllm.ensure("llama-tiny-q4_k_m")
    stamp = path.stat().st_mtime_ns
    assert synthllm.ensure("llama-tiny-q4_k_m") == path and path.stat().st_mtime_ns == stamp  # made once
    kv = synthllm.read_kv(path)
    assert len(kv["tokenizer.ggml.tokens"][0]) == 128_256 and kv["tokenizer.ggml.pre"][0] == "llama-bpe"
    import llama_cpp

    m = llama_cpp.Llama(model_path=str(path), n_ctx=128, verbose=False, logits_all=True)
    tokens = m.tokenize(b"The quick brown fox jumps over the lazy dog.")
    assert tokens[:3] == [128000, 791, 4062]  # Llama 3's own tokenizer
    m.eval(tokens)
    logits = np.array(m.scores[:len(tokens)])
    assert np.isfinite(logits).all() and logits.std() > 0  # no NaN or Inf anywhere in the forward pass
    m.close()
    suite = write_suite("""
        [suite]
        name = "synth"
        [defaults]
        warmups = 1
        repetitions = 2
        threads = 2
        [energy]
        idle_s = 0
        [[workloads]]
        name = "tiny"
        kind = "llm"
        model = "synthetic:llama-tiny-q4_k_m"
        n_ctx = 256
        tests = ["pp32", "tg8"]
    """)
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    [csv] = [p for p in (tmp_path / "res").rglob("*.csv") if not p.name.endswith(".power.csv")]
    rows = read_rows(csv)
    assert len(rows) == 4 and {x["weights"] for x in rows} == {"synthetic"}
    assert {x["quant"] for x in rows} == {"Q4_K_M"} and int(rows[0]["model_bytes"]) == path.stat().st_size
    assert all(float(x["tg_tokens_per_s"]) > 0 for x in rows if x["test"] == "tg8")


def test_a_published_architectures_synthetic_rows_price_with_the_label_and_a_test_shape_never():
    import pandas as pd

    from analysis import rows

    def frame(model, workload):
        return pd.DataFrame([{"machine": "box", "kind": "llm", "workload": workload, "model": model,
                              "weights": "synthetic", "suite_version": 1, "test": "tg16"}] * 2)

    df = pd.concat([frame("synthetic:llama3.1-8b-q4_k_m", "big"), frame("synthetic:llama-tiny-q4_k_m", "tiny"),
                    frame("synthetic:llama-tiny-q4_k_m", "tiny")])
    g, note = rows.select(df, ["box"], "llm")
    assert set(g["workload"]) == {"big"}  # the tiny shape had more rows, and still never prices
    assert note == "synthetic weights: the speed and energy of Llama-3.1-8B Q4_K_M; its answers are noise"
    with pytest.raises(LookupError, match="test shape, not a published model's"):
        rows.select(df, ["box"], "llm", "tiny")
    g, note = rows.select(frame("synthetic:llama-tiny-q4_k_m", "tiny"), ["box"], "llm")
    assert g.empty
