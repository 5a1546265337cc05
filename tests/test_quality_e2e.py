"""Quality end to end on the real SmolLM2-135M: quantizations made with llama.cpp's quantizer from the bundled
Q4_1, perplexity and KL divergence from the dequantized F16, through `shadowbench run`."""
import csv
import os

import pytest

from bench.kinds.llm import QUANT_TYPES

from .conftest import run_cli

pytestmark = pytest.mark.slow

SUITE = """
[suite]
name = "quality"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
[[workloads]]
name = "orig"
kind = "llm"
model = "bundled:smollm2"
tests = ["tg8"]
{quants}
"""

QUANT = """
[[workloads]]
name = "{name}"
kind = "llm"
quantize_from = "{src}"
quantize_type = "{qtype}"
kld_base = "f16"
quality_chunks = 4
tests = {tests}
"""


def _rows(results):
    [f] = [p for p in results.rglob("*.csv") if not p.name.endswith(".power.csv")]
    with open(f) as fh:
        return {(r["workload"], r["test"]): r for r in csv.DictReader(fh)}


def test_every_quant_type_is_one_llama_cpp_knows():
    import llama_cpp

    for t in QUANT_TYPES:
        assert isinstance(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{t}"), int), t


def test_quantizations_rank_by_divergence_from_the_f16_base(tmp_path, write_suite):
    quants = QUANT.format(name="f16", src="orig", qtype="F16", tests='["ppl", "kld"]') + "".join(
        QUANT.format(name=q.lower(), src="f16", qtype=q, tests='["ppl", "kld"]') for q in ("Q8_0", "Q4_0", "Q2_K"))
    suite = write_suite(SUITE.format(quants=quants))
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress", "--meter", "estimate")
    assert r.returncode == 0, r.stderr
    rows = _rows(tmp_path / "res")
    k = {w: float(rows[(w, "kld")]["kld_mean"]) for w in ("f16", "q8_0", "q4_0", "q2_k")}
    top = {w: float(rows[(w, "kld")]["same_top_p"]) for w in k}
    assert abs(k["f16"]) < 1e-5 and top["f16"] == 1.0  # the base against itself: 0 within its 16-bit rounding
    assert k["q8_0"] < k["q4_0"] < k["q2_k"]
    assert top["q8_0"] > top["q4_0"] > top["q2_k"]
    for w in k:
        kld, ppl = rows[(w, "kld")], rows[(w, "ppl")]
        assert kld["ppl"] == ppl["ppl"]  # the same tokens scored by the same model
        assert int(kld["scored_tokens"]) == 4 * 255 and kld["quality_ctx"] == "512"
        assert kld["kld_base"] == "f16" and kld["kld_base_sha256"] == rows[("f16", "kld")]["model_sha256"]
        assert kld["quality_text"].startswith("a-scandal-in-bohemia ")
        assert float(kld["energy_j"]) > 0 and kld["warmups"] == "0" and kld["pp_tokens_per_s"] == ""
    assert rows[("f16", "ppl")]["quant"] == "F16" and float(rows[("f16", "ppl")]["bits_per_weight"]) > 15.9
    assert rows[("q2_k", "ppl")]["quant"] == "Q2_K"
    assert float(rows[("q8_0", "ppl")]["ppl"]) < float(rows[("q2_k", "ppl")]["ppl"])
    # the base's log-probabilities are made once and reused
    bases = list((_cache() / "kld-base").glob("*-c512-n4.kld"))
    assert len(bases) == 1
    stamp = bases[0].stat().st_mtime_ns
    again = write_suite(SUITE.format(quants=QUANT.format(name="f16", src="orig", qtype="F16", tests='["kld"]')
                                     + QUANT.format(name="q8_0", src="f16", qtype="Q8_0", tests='["kld"]')),
                        name="again.toml")
    r = run_cli("run", again, "--results-dir", tmp_path / "res2", "--no-progress", "--meter", "estimate")
    assert r.returncode == 0, r.stderr
    assert bases[0].stat().st_mtime_ns == stamp
    assert float(_rows(tmp_path / "res2")[("q8_0", "kld")]["kld_mean"]) == pytest.approx(k["q8_0"], rel=1e-6)


def _cache():
    from pathlib import Path

    return Path(os.environ["XDG_CACHE_HOME"]) / "shadowbench"


def test_kld_without_the_bases_file_says_to_run_the_base_first(tmp_path, write_suite):
    # the base runs no kld test, so its log-probabilities are never made: the quant's kld fails, its ppl still runs
    quants = (QUANT.format(name="f16", src="orig", qtype="F16", tests='["ppl"]').replace("quality_chunks = 4",
                                                                                         "quality_chunks = 2")
              + QUANT.format(name="q4_0", src="f16", qtype="Q4_0", tests='["kld", "ppl"]').replace(
                  "quality_chunks = 4", "quality_chunks = 2"))
    r = run_cli("run", write_suite(SUITE.format(quants=quants)), "--results-dir", tmp_path / "res", "--no-progress",
                "--meter", "estimate")
    assert r.returncode == 1
    assert "no saved log-probabilities of the kld base f16" in r.stderr and "run it first" in r.stderr
    rows = _rows(tmp_path / "res")
    assert ("q4_0", "ppl") in rows and ("q4_0", "kld") not in rows
