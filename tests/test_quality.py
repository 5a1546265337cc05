"""The quality scoring (bench.quality) on arrays, and the suite keys of the quality tests and quantizations."""
import numpy as np
import pytest

from bench import quality
from bench.config import load_suite
from bench.errors import BackendError, ConfigError
from bench.kinds import llm, runs, steps

RNG = np.random.default_rng(7)


def _logits(k=40, v=300, spread=4.0):
    return (RNG.standard_normal((k, v)) * spread).astype(np.float32)


def _kld_exact(base: np.ndarray, model: np.ndarray) -> np.ndarray:
    lb, lm = quality.log_softmax(base), quality.log_softmax(model)
    return (np.exp(lb) * (lb - lm)).sum(axis=1)


def test_base_rows_hold_log_probs_within_half_a_step():
    x = _logits()
    rows = quality.quantize_base(x)
    assert rows.shape == (40, quality.row_width(300)) and rows.dtype == np.uint16
    lp = quality.base_log_probs(rows, 300)
    exact = quality.log_softmax(x)
    step = (x.max(axis=1) - np.maximum(x.min(axis=1), x.max(axis=1) - 16)) / 65535
    inside = exact > exact.max(axis=1, keepdims=True) - 16 + 1e-3
    assert np.all(np.abs(lp - exact)[inside] <= (step[:, None] * 0.5 + 1e-5).repeat(300, 1)[inside])


def test_kld_matches_the_exact_divergence_and_a_model_against_itself_is_zero():
    base, other = _logits(), _logits()
    model = base + 0.3 * other  # a perturbed copy, as a quantization is
    s = quality.Scores()
    nxt = RNG.integers(0, 300, 40)
    s.add_kld(model, nxt, quality.quantize_base(base), 300)
    m = s.metrics()
    exact = _kld_exact(base, model)
    assert m["kld_mean"] == pytest.approx(exact.mean(), rel=1e-3)
    assert m["kld_p99"] == pytest.approx(np.percentile(exact, 99), rel=1e-3)
    assert m["same_top_p"] == pytest.approx(np.mean(base.argmax(1) == model.argmax(1)))
    assert m["ppl"] == pytest.approx(np.exp(quality.nll(model, nxt).mean()), rel=1e-6)
    assert m["scored_tokens"] == 40
    self_ = quality.Scores()
    self_.add_kld(base, nxt, quality.quantize_base(base), 300)
    assert abs(self_.metrics()["kld_mean"]) < 1e-5 and self_.metrics()["same_top_p"] == 1.0


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    s = quality.Scores()
    s.add_ppl(np.zeros((10, 64), dtype=np.float32), np.arange(10))
    assert s.metrics()["ppl"] == pytest.approx(64)


def test_base_file_round_trip_in_llama_cpp_layout(tmp_path):
    n_ctx, v = 32, 301  # odd vocabulary: rows are padded to an even count
    tokens = RNG.integers(0, v, 3 * n_ctx).astype(np.int32)
    chunks = [_logits(quality.scored_per_chunk(n_ctx), v) for _ in range(3)]
    path = tmp_path / "b.kld"
    quality.write_base(path, n_ctx, v, tokens, iter(chunks))
    raw = path.read_bytes()
    assert raw[:8] == b"_logits_" and np.frombuffer(raw[8:20], np.int32).tolist() == [32, 301, 3]
    assert len(raw) == 20 + 4 * 96 + 3 * 15 * (2 * 151 + 4) * 2
    b = quality.read_base(path)
    assert np.array_equal(b.tokens, tokens)
    assert np.array_equal(b.chunk_rows(2), quality.quantize_base(chunks[2]))


def test_truncated_or_foreign_base_file_is_refused(tmp_path):
    path = tmp_path / "b.kld"
    quality.write_base(path, 32, 50, np.zeros(64, np.int32), iter([_logits(15, 50)] * 2))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BackendError, match="truncated"):
        quality.read_base(path)
    path.write_bytes(b"not a base file at all")
    with pytest.raises(BackendError, match="_logits_"):
        quality.read_base(path)


def test_interrupted_base_write_leaves_no_file(tmp_path):
    def chunks():
        yield _logits(15, 50)
        raise KeyboardInterrupt
    path = tmp_path / "b.kld"
    with pytest.raises(KeyboardInterrupt):
        quality.write_base(path, 32, 50, np.zeros(64, np.int32), chunks())
    assert list(tmp_path.iterdir()) == []


def test_chunking_follows_llama_perplexity():
    assert quality.first_scored(512) == 256 and quality.scored_per_chunk(512) == 255
    assert quality.chunk_count(12237, 512, None) == 23
    assert quality.chunk_count(12237, 512, 4) == 4
    with pytest.raises(BackendError, match="at least 1024"):
        quality.chunk_count(1000, 512, None)


def test_bundled_text_is_long_enough_and_named():
    assert "a-scandal-in-bohemia" in quality.bundled_texts()
    text = quality.read_text("a-scandal-in-bohemia")
    assert text.startswith("A SCANDAL IN BOHEMIA") and text.rstrip().endswith("title of _the_ woman.")
    assert len(text.split()) > 8000


# ------------------------------------------------------------------------------------------------ suite keys

SUITE = """
[suite]
name = "q"
[[workloads]]
name = "orig"
kind = "llm"
model = "bundled:smollm2"
tests = ["pp8"]
{more}
"""


def _load(write_suite, more):
    return load_suite(write_suite(SUITE.format(more=more)))


def test_quantization_of_an_earlier_workload(write_suite):
    s = _load(write_suite, """
[[workloads]]
name = "f16"
kind = "llm"
quantize_from = "orig"
quantize_type = "F16"
kld_base = "f16"
tests = ["ppl", "kld", "tg16"]
[[workloads]]
name = "q2"
kind = "llm"
quantize_from = "f16"
quantize_type = "Q2_K"
kld_base = "f16"
quality_chunks = 4
tests = ["kld"]
[[workloads]]
name = "own"
kind = "llm"
model = "bundled:smollm2"
quantize_type = "Q8_0"
tests = ["pp8"]
""")
    f16, q2, own = s.workloads[1], s.workloads[2], s.workloads[3]
    assert own.model.label() == "bundled:smollm2 -> Q8_0"  # its own model, quantized
    assert f16.model.source == "quantize" and f16.model.base == s.workloads[0].model
    assert q2.model.label() == "bundled:smollm2 -> F16 -> Q2_K"
    assert f16.params["kld_base_model"] == llm.SELF and q2.params["kld_base_model"] == f16.model
    assert q2.params["quality_text"] == "a-scandal-in-bohemia" and q2.params["quality_chunks"] == 4
    assert runs(f16, "ppl") == (0, 1) and runs(f16, "tg16") == (f16.warmups, f16.repetitions)
    assert steps(f16) == 2 + f16.warmups + f16.repetitions


@pytest.mark.parametrize("more, key, expected", [
    ('name = "x"\nkind = "llm"\nquantize_from = "later"\nquantize_type = "Q4_0"\ntests = ["pp8"]',
     "workloads[1].quantize_from", "earlier in the suite"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\nquantize_from = "orig"\nquantize_type = "Q4_0"\n'
     'tests = ["pp8"]', "workloads[1].model", "not both"),
    ('name = "x"\nkind = "llm"\nquantize_from = "orig"\ntests = ["pp8"]', "workloads[1].quantize_type",
     "with quantize_from"),
    ('name = "x"\nkind = "llm"\nquantize_from = "orig"\nquantize_type = "Q9_9"\ntests = ["pp8"]',
     "workloads[1].quantize_type", "quantization type"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\ntests = ["kld"]', "workloads[1].kld_base",
     "measures against"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\nkld_base = "nope"\ntests = ["kld"]',
     "workloads[1].kld_base", "earlier in the suite"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\nquality_ctx = 4096\ntests = ["ppl"]',
     "workloads[1].quality_ctx", "at most n_ctx"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\nquality_text = "missing.txt"\ntests = ["ppl"]',
     "workloads[1].quality_text", "existing text file"),
    ('name = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\ntests = ["ppl2"]', "workloads[1].tests", '"kld"'),
])
def test_bad_quality_keys_name_the_key(write_suite, more, key, expected):
    with pytest.raises(ConfigError) as e:
        _load(write_suite, "[[workloads]]\n" + more)
    assert e.value.key == key and expected in str(e.value)


def test_quality_context_is_checked_only_where_a_quality_test_runs(write_suite):
    s = _load(write_suite, '[[workloads]]\nname = "x"\nkind = "llm"\nmodel = "bundled:smollm2"\nn_ctx = 256\n'
                           'tests = ["tg4"]')
    assert s.workloads[1].params["quality_ctx"] == 512
