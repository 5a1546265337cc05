"""Kind ``embed``: text embeddings for retrieval (RAG indexing) with a GGUF embedding model through
llama-cpp-python, or through an OpenAI-compatible ``/v1/embeddings`` endpoint (Ollama's nomic-embed-text, or
llama.cpp's ``llama-server --embeddings`` spawned on loopback with the model); one repetition embeds the whole
passage set (the six reference texts among the paragraphs of the bundled public-domain story) ``batch_size``
passages per call or request, then, after the window, fixed queries must retrieve the passage each was written
from (recall@1), so a broken model is caught, not priced."""
from __future__ import annotations

from ..columns import Column as C
from ..errors import ConfigError
from . import Pricing
from .endpoint import preflight  # noqa: F401  (the kind's preflight: an external server answers first)
from .schema import FIT_KEYS, MODEL, N_GPU_LAYERS, Key, bool_key, fixed_tests, int_key, number_key, str_key

NAME = "embed"
BACKEND = "bench.backends.embed"
parse_test, TESTS = fixed_tests("embed")

KEYS = {
    "model": Key(MODEL.types, MODEL.expected + " (not with base_url: the server has its own)", None),
    "tests": TESTS,
    "n_gpu_layers": N_GPU_LAYERS,
    "n_ctx": int_key("an integer >= 64: the longest passage in tokens", 512, check=lambda v: v >= 64),
    "passage_prefix": str_key('text put before each passage, as the model was trained (nomic-embed-text: '
                              '"search_document: ")', ""),
    "query_prefix": str_key('text put before each query (nomic-embed-text: "search_query: ")', ""),
    "flash_attn": bool_key("true or false (flash attention; llama-server spawned here always has it on)", True),
    "batch_size": int_key("an integer >= 1: passages per llama.cpp call or per request", 32, check=lambda v: v >= 1),
    "base_url": str_key('an OpenAI-compatible base URL serving /embeddings, like "http://127.0.0.1:11434/v1" '
                        '(Ollama)', "", check=lambda v: v == "" or v.startswith(("http://", "https://"))),
    "spawn": bool_key("true (serve the model with llama.cpp's llama-server --embeddings on 127.0.0.1 and embed "
                      "through its /v1/embeddings) or false", False),
    "model_name": str_key("the model name the server knows", "local"),
    "api_key_env": str_key("the name of an environment variable holding the API key (never written to results)", ""),
    "timeout_s": number_key("a number of seconds > 0 for one request", 120.0, check=lambda v: v > 0),
    **FIT_KEYS,
}


def finish(w: dict, path, where: str, check_models: bool) -> None:
    if w["base_url"] and (w["spawn"] or w["model"] is not None):
        raise ConfigError(path, f"{where}.base_url", "base_url alone (the server's model is model_name), or a model "
                          "(with spawn = true to serve it through llama-server)",
                          f"base_url and {'spawn' if w['spawn'] else 'model'}")
    if w["model"] is None and not w["base_url"]:
        raise ConfigError(path, f"{where}.model", "a GGUF embedding model, or base_url (an embeddings server)",
                          "<nothing: the key is missing>")


COLUMNS = [
    C("passages", "metric", int, "", "passages embedded in one repetition"),
    C("embed_tokens", "metric", int, "tokens", "tokens embedded in one repetition (the model's tokenizer, or the "
      "server's usage report; empty where a server reports none)"),
    C("embed_tokens_per_s", "metric", float, "tokens/s", "embed_tokens / wall time", summary=True, spread=True,
      label="embed tokens/s", headline=True, better="higher"),
    C("passages_per_s", "metric", float, "passages/s", "passages / wall time"),
    C("recall_at_1", "metric", float, "", "share of the fixed queries whose nearest passage is the one they were "
      "written from, measured after the window (1.0 expected)", summary=True, better="higher"),
    C("dims", "settings", int, "", "embedding dimensions"),
    C("batch_size", "settings", int, "passages", "passages per llama.cpp call or per /embeddings request"),
]
SHARES: tuple[str, ...] = ("n_gpu_layers", "n_ctx", "flash_attn")

PRICING = Pricing("embed", "token", lambda row: row["embed_tokens"], display_unit="1M tokens", display_scale=1e6)
