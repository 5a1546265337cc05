"""Kind ``llm``: a GGUF model through llama-cpp-python, llama-bench style tests (pp512, tg128, pp500+tg200)."""
from __future__ import annotations

import re
from typing import NamedTuple

from ..columns import Column as C, ratio
from . import Pricing
from .schema import ARCH, FIT_KEYS, MODEL, N_CTX, N_GPU_LAYERS, bool_key, int_key, tests_key

NAME = "llm"
BACKEND = "bench.backends.llm"

_TEST = re.compile(r"^(?:pp(?P<pp>\d+))?(?P<plus>\+)?(?:tg(?P<tg>\d+))?(?:x(?P<n>[1-9]\d*))?$")
MAX_PARALLEL = 256


class LLMTest(NamedTuple):
    pp: int  # prompt tokens per sequence
    tg: int  # generated tokens per sequence
    parallel: int = 1  # sequences decoded together (llama-batched-bench's unshared-prompt case)


def parse_test(name: str) -> LLMTest | None:
    """``pp512`` -> (512, 0, 1); ``tg128`` -> (0, 128, 1); ``pp500+tg200`` -> (500, 200, 1); ``pp500+tg200x8``:
    8 requests of 500+200 tokens decoded together; None if malformed."""
    m = _TEST.match(name)
    if not m or not (m["pp"] or m["tg"]) or (m["plus"] and not (m["pp"] and m["tg"])):
        return None
    pp, tg, n = int(m["pp"] or 0), int(m["tg"] or 0), int(m["n"] or 1)
    if (m["pp"] and pp < 1) or (m["tg"] and tg < 1) or n > MAX_PARALLEL:
        return None
    return LLMTest(pp, tg, n)


KEYS = {
    "model": MODEL,
    "tests": tests_key(parse_test, 'a non-empty list of tests like "pp512", "tg128", "pp500+tg200", "pp500+tg200x8" '
                       '(8 sequences decoded together)'),
    "n_gpu_layers": N_GPU_LAYERS,
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
    C("n_gpu_layers", "settings", int, "", "layers offloaded to the GPU (-1 = all)"),
    C("n_ctx", "settings", int, "tokens", "context size"),
    C("n_batch", "settings", int, "tokens", "logical batch size"),
    C("flash_attn", "settings", bool, "", "flash attention on"),
]
SHARES: tuple[str, ...] = ()

PRICING = Pricing("llm", "request", lambda row: 1.0)
