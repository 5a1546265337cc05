"""Kind ``llm``: a GGUF model through llama-cpp-python, llama-bench style tests (pp512, tg128, pp500+tg200), the
batching tests ``eachN`` / ``collectN`` (N emails classified one request each, or in one numbered request:
``bench/batching.py``), and the quality tests ``ppl`` and ``kld`` (llama-perplexity's perplexity and KL
divergence from a base workload, over a fixed text: ``bench/quality.py``). A workload's model may be a quantization
of an earlier workload's (``quantize_from`` + ``quantize_type``), made once with llama.cpp's own quantizer and
cached."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ..columns import Column as C, ratio
from ..errors import ConfigError
from ..models import ModelRef
from . import Pricing
from .schema import ARCH, FIT, FIT_KEYS, MODEL, N_CTX, N_GPU_LAYERS_FIT, Key, bool_key, int_key, str_key, tests_key

NAME = "llm"
BACKEND = "bench.backends.llm"

_TEST = re.compile(r"^(?:pp(?P<pp>\d+))?(?P<plus>\+)?(?:tg(?P<tg>\d+))?(?:x(?P<n>[1-9]\d*))?$")
MAX_PARALLEL = 256


class LLMTest(NamedTuple):
    pp: int  # prompt tokens per sequence
    tg: int  # generated tokens per sequence
    parallel: int = 1  # sequences decoded together (llama-batched-bench's unshared-prompt case)


class Batch(NamedTuple):
    collect: bool  # one request holding every item (True) or one request per item
    items: int


_BATCH = re.compile(r"^(?P<mode>each|collect)(?P<n>[1-9]\d*)$")
MAX_BATCH_ITEMS = 200

QUALITY_TESTS = ("ppl", "kld")  # run once, no warmup: deterministic, and not speed figures (their energy counts)


def parse_test(name: str) -> LLMTest | Batch | str | None:
    """``pp512`` -> (512, 0, 1); ``tg128`` -> (0, 128, 1); ``pp500+tg200`` -> (500, 200, 1); ``pp500+tg200x8``:
    8 requests of 500+200 tokens decoded together; ``each20`` / ``collect20`` -> Batch(False / True, 20);
    ``ppl`` / ``kld``: the quality test's name; None if malformed."""
    if name in QUALITY_TESTS:
        return name
    if b := _BATCH.match(name):
        n = int(b["n"])
        return Batch(b["mode"] == "collect", n) if n <= MAX_BATCH_ITEMS else None
    m = _TEST.match(name)
    if not m or not (m["pp"] or m["tg"]) or (m["plus"] and not (m["pp"] and m["tg"])):
        return None
    pp, tg, n = int(m["pp"] or 0), int(m["tg"] or 0), int(m["n"] or 1)
    if (m["pp"] and pp < 1) or (m["tg"] and tg < 1) or n > MAX_PARALLEL:
        return None
    return LLMTest(pp, tg, n)


def request_test(name: str) -> bool:
    """A test whose rows are one request shape (pp/tg, what ``cost`` prices per request); not a quality pass, not
    a batching test (priced per item by ``analysis/batching.py``)."""
    return isinstance(parse_test(name), LLMTest)


def one_request_test(name: str) -> bool:
    """A request test of one sequence: its rows time one request (``pp500+tg200``), where ``...x8``'s rows time 8
    decoded together (their tokens/s is the aggregate of 8, not one request's)."""
    t = parse_test(name)
    return isinstance(t, LLMTest) and t.parallel == 1


def runs(test: str, warmups: int, repetitions: int) -> tuple[int, int]:
    """(warmups, repetitions) of a test: a quality test is one deterministic pass."""
    return (0, 1) if test in QUALITY_TESTS else (warmups, repetitions)


# llama.cpp's quantization types that need no importance matrix (llama-quantize's names)
QUANT_TYPES = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
               "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS")

KEYS = {
    "model": Key(MODEL.types, MODEL.expected + ' (or none, with quantize_from)', None, False, MODEL.check),
    "tests": tests_key(parse_test, 'a non-empty list of tests like "pp512", "tg128", "pp500+tg200", "pp500+tg200x8" '
                       '(8 sequences decoded together), "each20" / "collect20" (20 emails classified one request '
                       f'each / in one request; up to {MAX_BATCH_ITEMS}), "ppl", "kld"'),
    "quantize_from": str_key("the name of an earlier llm workload of the suite whose model this one quantizes"),
    "quantize_type": str_key(f"a llama.cpp quantization type ({', '.join(QUANT_TYPES)}): the model (or "
                             "quantize_from's) quantized to it", check=lambda v: v in QUANT_TYPES),
    "kld_base": str_key("the name of this workload or an earlier llm workload of the suite: the model the kld test "
                        "measures the divergence from"),
    "quality_text": str_key('a bundled text ("a-scandal-in-bohemia") or a path to a UTF-8 text file',
                            "a-scandal-in-bohemia"),
    "quality_ctx": int_key("an integer >= 16: tokens per chunk of the quality text (llama-perplexity's -c)", 512,
                           check=lambda v: v >= 16),
    "quality_chunks": int_key("an integer >= 1: at most this many chunks (llama-perplexity's --chunks)", None,
                              check=lambda v: v >= 1),
    "n_gpu_layers": N_GPU_LAYERS_FIT,
    "n_ctx": N_CTX,
    "n_batch": int_key("an integer >= 1", 512, check=lambda v: v >= 1),
    "n_ubatch": int_key("an integer >= 1", 512, check=lambda v: v >= 1),
    "flash_attn": bool_key(default=True),
    "seed": int_key(default=0),
    "arch": ARCH,
    **FIT_KEYS,
}

COLUMNS = [
    C("prompt_tokens", "metric", int, "tokens", "prompt tokens, counted by the model's tokenizer (xN tests: all "
      "sequences; endpoint: the server's usage report, mean per request)"),
    C("output_tokens", "metric", int, "tokens", "generated tokens (xN tests and endpoint: all sequences or requests)"),
    C("pp_tokens_per_s", "metric", float, "tokens/s", "prompt tokens / prompt processing time", summary=True,
      spread=True, label="pp tokens/s", headline=True, better="higher"),
    C("tg_tokens_per_s", "metric", float, "tokens/s", "generated tokens / generation time (endpoint: per "
      "request, 1 / tpot_s)", summary=True, spread=True, label="tg tokens/s", headline=True, better="higher"),
    C("ttft_s", "metric", float, "s", "time to first token (endpoint: median over requests)", summary=True,
      label="TTFT s", better="lower"),
    C("parallel", "metric", int, "sequences", "sequences decoded together (xN tests); tg_tokens_per_s is then their "
      "aggregate"),
    C("seq_tg_tokens_per_s", "metric", float, "tokens/s", "generated tokens per second of one sequence (xN tests: "
      "what each request sees)", summary=True),
    C("j_per_output_token", "metric", float, "J/token", "energy_j / output_tokens",
      derive=ratio("energy_j", "output_tokens")),
    C("items", "metric", int, "items", "emails classified in one repetition (eachN / collectN tests)"),
    C("items_answered", "metric", int, "items", "items whose label was parsed back from the answer"),
    C("label_accuracy", "metric", float, "", "share of the items labeled as written (0–1): a batch that answers "
      "worse is seen, not priced as equal", summary=True, better="higher"),
    C("s_per_item", "metric", float, "s", "wall_s / items", derive=ratio("wall_s", "items"), summary=True,
      better="lower"),
    C("j_per_item", "metric", float, "J", "energy_j / items", derive=ratio("energy_j", "items")),
    C("n_gpu_layers", "settings", int, "", "layers offloaded to the GPU (-1 = all; with \"fit\": the number that "
      "fit)"),
    C("layers_on_gpu", "settings", int, "layers", "n_gpu_layers = \"fit\": repeating layers on the GPU"),
    C("n_layers", "settings", int, "layers", "n_gpu_layers = \"fit\": the model's repeating layers"),
    C("gpu_bytes", "settings", int, "bytes", "n_gpu_layers = \"fit\": weights, KV cache and runtime on the GPU"),
    C("ram_bytes", "settings", int, "bytes", "n_gpu_layers = \"fit\": weights and KV cache left in RAM"),
    C("n_ctx", "settings", int, "tokens", "context size"),
    C("n_batch", "settings", int, "tokens", "logical batch size"),
    C("flash_attn", "settings", bool, "", "flash attention on"),
    C("quant", "settings", str, "", "the GGUF file's type as llama.cpp names it (Q4_K_M, Q8_0, F16...)"),
    C("bits_per_weight", "settings", float, "bits", "model file bits per parameter (a quantization's real size: "
      "tensors a type cannot hold fall back to another)"),
    C("model_params", "settings", int, "", "parameters of the model"),
    C("ppl", "metric", float, "", "perplexity of the quality text (llama-perplexity's chunking: the second half of "
      "each chunk scored); lower is better; compare only at the same text and context", summary=True,
      better="lower"),
    C("kld_mean", "metric", float, "nats", "mean KL divergence of the next-token distribution from the kld_base "
      "model's, over the scored tokens", summary=True, better="lower", signed=True),
    C("kld_p99", "metric", float, "nats", "99th percentile of the per-token KL divergence", better="lower",
      signed=True),  # >= 0 in theory; llama-perplexity's float sums can land a hair below
    C("same_top_p", "metric", float, "", "share of scored tokens where this model's and the base's most likely next "
      "token agree (0–1)", summary=True, better="higher"),
    C("scored_tokens", "metric", int, "tokens", "tokens whose prediction ppl and kld average over"),
    C("kld_base", "settings", str, "", "the workload whose model the kld test measured against"),
    C("kld_base_sha256", "settings", str, "", "SHA-256 of the kld base's model file"),
    C("quality_text", "settings", str, "", "the text ppl and kld read, and the first 12 hex digits of its SHA-256"),
    C("quality_ctx", "settings", int, "tokens", "tokens per chunk of the quality text"),
]
SHARES: tuple[str, ...] = ("requests",)

PRICING = Pricing("llm", "request", lambda row: 1.0)


def synthetic_name(model) -> str:
    """The synthetic LLM name of a workload's model value ('' for real weights)."""
    return model.split(":", 1)[1] if isinstance(model, str) and model.startswith("synthetic:") else ""


def finish(w: dict, path, where: str, check_models: bool) -> None:
    if name := synthetic_name(w["model"]):
        from .. import synthllm

        if not synthllm.is_llm(name):
            raise ConfigError(path, f"{where}.model", "synthetic:<arch>-<quant> for an LLM (" + ", ".join(
                synthllm.archs()) + "; " + ", ".join(synthllm.QUANTS) + "): synthetic:" + name
                + " is an image pipeline", w["model"])
        noise = [t for t in w["tests"] if t in QUALITY_TESTS or isinstance(parse_test(t), Batch)]
        if noise:
            raise ConfigError(path, f"{where}.tests", "speed tests only with synthetic weights: their answers are "
                              f"noise, so {', '.join(noise)} would measure nothing (use the real model)", noise)
        if w["arch"] is None:  # the KV cache per layer (the fit check, "fit"), from the architecture
            a, _ = synthllm.parse(name)
            w["arch"] = {"n_layers": a.n_layer, "n_kv_heads": a.n_head_kv, "head_dim": a.head_dim}
    if (w["model"] is None) == (w["quantize_from"] is None):
        raise ConfigError(path, f"{where}.model", "either a model or quantize_from (the workload whose model to "
                          "quantize), not both", "<both>" if w["model"] is not None else "<neither>")
    if w["quantize_from"] is not None and w["quantize_type"] is None:
        raise ConfigError(path, f"{where}.quantize_type", "a quantization type with quantize_from",
                          "<nothing: the key is missing>")
    if w["n_gpu_layers"] == FIT and w["arch"] is None:
        raise ConfigError(path, f"{where}.arch", 'arch = {n_layers, n_kv_heads, head_dim} with n_gpu_layers = "fit" '
                          "(the KV cache per layer)", "<nothing: the key is missing>")
    if "kld" in w["tests"] and w["kld_base"] is None:
        raise ConfigError(path, f"{where}.kld_base", "the workload the kld test measures against (this workload's own "
                          "name for the base itself)", "<nothing: the key is missing>")
    if set(w["tests"]) & set(QUALITY_TESTS) and w["quality_ctx"] > w["n_ctx"]:
        raise ConfigError(path, f"{where}.quality_ctx", f"at most n_ctx ({w['n_ctx']})", w["quality_ctx"])
    from ..quality import bundled_texts

    if w["quality_text"] not in bundled_texts():
        p = Path(w["quality_text"]).expanduser()
        p = p if p.is_absolute() else (Path(path).parent / p).resolve()
        if check_models and not p.is_file():
            raise ConfigError(path, f"{where}.quality_text",
                              f"a bundled text ({', '.join(bundled_texts())}) or an existing text file", str(p))
        w["quality_text"] = str(p)


def link(w: dict, model: ModelRef | None, path, where: str, earlier: dict) -> tuple[ModelRef | None, dict]:
    """The workload's model, quantized where ``quantize_type`` says (its own ``model``, or the model of the
    earlier workload ``quantize_from`` names), and the kld base's model in the params (for the backend to find the
    base's file). ``earlier``: name -> (kind, ModelRef) of the workloads before this one."""
    def ref(key: str, self_ok: bool) -> ModelRef | None:
        name = w[key]
        if name is None:
            return None
        if self_ok and name == w["name"]:
            return SELF
        if name not in earlier or earlier[name][0] != NAME:
            raise ConfigError(path, f"{where}.{key}", "the name of an llm workload earlier in the suite"
                              + (" (or this workload's own)" if self_ok else ""), name)
        return earlier[name][1]
    model = ref("quantize_from", False) or model
    if w["quantize_type"] is not None:
        model = ModelRef("quantize", w["quantize_type"], base=model)
    kld = ref("kld_base", True)
    return model, ({"kld_base_model": kld} if kld is not None else {})


SELF = ModelRef("self", "")  # kld_base_model of the base itself
