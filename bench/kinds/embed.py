"""Kind ``embed``: text embeddings for retrieval (RAG indexing) with a GGUF embedding model through
llama-cpp-python; one repetition embeds the whole passage set (the six reference texts among the paragraphs of the
bundled public-domain story), then, after the window, fixed queries must retrieve the passage each was written
from (recall@1), so a broken model is caught, not priced."""
from __future__ import annotations

from ..columns import Column as C
from . import Pricing
from .schema import FIT_KEYS, MODEL, N_GPU_LAYERS, fixed_tests, int_key, str_key

NAME = "embed"
BACKEND = "bench.backends.embed"
parse_test, TESTS = fixed_tests("embed")

KEYS = {
    "model": MODEL,
    "tests": TESTS,
    "n_gpu_layers": N_GPU_LAYERS,
    "n_ctx": int_key("an integer >= 64: the longest passage in tokens", 512, check=lambda v: v >= 64),
    "passage_prefix": str_key('text put before each passage, as the model was trained (nomic-embed-text: '
                              '"search_document: ")', ""),
    "query_prefix": str_key('text put before each query (nomic-embed-text: "search_query: ")', ""),
    **FIT_KEYS,
}

COLUMNS = [
    C("passages", "metric", int, "", "passages embedded in one repetition"),
    C("embed_tokens", "metric", int, "tokens", "tokens embedded in one repetition (the model's tokenizer)"),
    C("embed_tokens_per_s", "metric", float, "tokens/s", "embed_tokens / wall time", summary=True, spread=True,
      label="embed tokens/s", headline=True, better="higher"),
    C("passages_per_s", "metric", float, "passages/s", "passages / wall time"),
    C("recall_at_1", "metric", float, "", "share of the fixed queries whose nearest passage is the one they were "
      "written from, measured after the window (1.0 expected)", summary=True, better="higher"),
    C("dims", "settings", int, "", "embedding dimensions"),
]
SHARES: tuple[str, ...] = ("n_gpu_layers", "n_ctx")

PRICING = Pricing("embed", "token", lambda row: row["embed_tokens"], display_unit="1M tokens", display_scale=1e6)
