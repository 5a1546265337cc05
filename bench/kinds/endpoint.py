"""Kind ``endpoint``: an OpenAI-compatible server (Ollama, vLLM, llama.cpp's server, or llama-cpp-python's server
spawned on loopback) under a concurrency sweep (``c4``) or at a fixed request rate (``r0.5`` requests/s)."""
from __future__ import annotations

import os
import re
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ..columns import Column as C, ratio
from ..errors import ConfigError, ShadowbenchError
from .. import models
from . import Pricing
from .schema import ARCH, FIT_KEYS, N_CTX, N_GPU_LAYERS, Key, bool_key, int_key, number_key, str_key, tests_key

NAME = "endpoint"
BACKEND = "bench.backends.endpoint"

_TEST = re.compile(r"^(?:c(?P<c>[1-9]\d*)|(?P<kind>[rp])(?P<r>(?:0|[1-9]\d*)(?:\.\d+)?))$")


class Step(NamedTuple):
    concurrency: int | None  # cN: N requests in flight
    rate: float | None  # rX / pX: X requests per second
    poisson: bool = False  # pX: arrivals at random (exponential gaps, a fixed seed), the shape of real traffic


def parse_test(name: str) -> Step | None:
    """``c4`` -> 4 requests in flight; ``r0.5`` -> one request every 2 s; ``p0.5`` -> Poisson arrivals at 0.5
    requests/s; None if malformed (``c0``, ``r0``, ``r0.0``, ``r00``, ``r.5``)."""
    m = _TEST.match(name)
    if not m:
        return None
    if m["c"] is not None:
        return Step(int(m["c"]), None)
    rate = float(m["r"])
    return Step(None, rate, m["kind"] == "p") if rate > 0 else None


def redact_url(url: str) -> str:
    """The URL without user:password@ and without its query and fragment (where API keys hide): what a row, a log
    line or the screen may show."""
    u = urlsplit(url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, "", ""))


def endpoint_url(base_url: str, path: str) -> str:
    """``path`` (/models, /chat/completions) under the base URL, keeping its query string (some servers take the
    key there)."""
    u = urlsplit(base_url)
    return urlunsplit((u.scheme, u.netloc, u.path.rstrip("/") + path, u.query, ""))


class EndpointUnreachable(ShadowbenchError):
    exit_status = 2


def auth_headers(params: dict) -> dict[str, str]:
    """The Authorization header from the environment variable the suite names (never from the suite itself)."""
    key = os.environ.get(params["api_key_env"], "") if params["api_key_env"] else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def check_answers(base_url: str, headers: dict[str, str]) -> None:
    """The server answers ``GET /models``; EndpointUnreachable (exit status 2, the URL redacted) otherwise."""
    import httpx

    try:
        r = httpx.get(endpoint_url(base_url, "/models"), headers=headers, timeout=10.0)
    except httpx.HTTPError as e:
        raise EndpointUnreachable(f"{redact_url(base_url)}: unreachable ({type(e).__name__}); is the server "
                                  "running?") from None
    if r.status_code >= 400:
        raise EndpointUnreachable(f"{redact_url(base_url)}/models answered HTTP {r.status_code}")


def attach(base_url: str, params: dict, cleanup) -> tuple[str, dict[str, str]]:
    """(the URL as rows and screens may show it, the auth headers) once the server answers ``GET /models``;
    ``cleanup()`` (stop a spawned server) and EndpointUnreachable otherwise."""
    headers = auth_headers(params)
    try:
        check_answers(base_url, headers)
    except EndpointUnreachable:
        cleanup()
        raise
    return redact_url(base_url), headers


def preflight(w) -> None:
    """An external server must answer before anything is measured (the idle baseline included): exit status 2
    names it otherwise. A spawned server is checked when it starts (the embed kind shares this: a local model
    names no base_url)."""
    p = w.params
    if p["base_url"]:
        check_answers(p["base_url"], auth_headers(p))


def problem(metrics: dict) -> str | None:
    """A repetition whose every request failed measured nothing: the run says so and exits 1 (the row is kept)."""
    if metrics.get("requests") and not metrics.get("completed"):
        return f"every request of the step failed ({metrics.get('failures') or 'no answer'})"
    return None


KEYS = {
    "model": Key((str, dict), 'the GGUF model to serve when spawn = true ("bundled:NAME", a path, or '
                 '{hf_repo, hf_file})', None),
    "tests": tests_key(parse_test, 'a list of steps like "c1", "c4" (requests in flight, >= 1), "r0.5" (requests/s, '
                       '> 0, evenly spaced) or "p0.5" (Poisson arrivals)', ["c1", "c2", "c4", "c8", "c16"]),
    "base_url": str_key('an OpenAI-compatible base URL like "http://127.0.0.1:11434/v1"', "",
                        check=lambda v: v == "" or v.startswith(("http://", "https://"))),
    "spawn": bool_key("true (start a server with the model on 127.0.0.1) or false", False),
    "server": str_key('the server spawn = true starts: "llama-server" (llama.cpp\'s, continuous batching) or '
                      '"llama-cpp-python" (its Python server, one request at a time)', "llama-cpp-python",
                      check=lambda v: v in ("llama-server", "llama-cpp-python")),
    "slots": int_key("an integer >= 1 (llama-server's parallel slots, -np)", 8, check=lambda v: 1 <= v <= 256),
    "model_name": str_key("the model name the server knows", "local"),
    "api_key_env": str_key("the name of an environment variable holding the API key (never written to results)", ""),
    "tokenizer": str_key("a GGUF file whose tokenizer counts output tokens when the server reports no usage", ""),
    "prompt_tokens": int_key("an integer >= 1", 500, check=lambda v: v >= 1),
    "output_tokens": int_key("an integer >= 1", 200, check=lambda v: v >= 1),
    "requests_per_step": int_key("an integer >= 1", 8, check=lambda v: v >= 1),
    "timeout_s": number_key("a number of seconds > 0", 120.0, check=lambda v: v > 0),
    "n_ctx": N_CTX,
    "n_gpu_layers": N_GPU_LAYERS,
    "arch": ARCH,
    **FIT_KEYS,
}


def finish(w: dict, path, where: str, check_models: bool) -> None:
    if w["spawn"] == bool(w["base_url"]):
        raise ConfigError(path, f"{where}.base_url", "either base_url or spawn = true (with a model), not both",
                          w["base_url"] or "<neither>")
    if w["spawn"] and w["model"] is None:
        raise ConfigError(path, f"{where}.model", "a GGUF model to serve with spawn = true",
                          "<nothing: the key is missing>")
    if w["tokenizer"]:
        tok = models.parse_ref(w["tokenizer"], path, f"{where}.tokenizer")
        if check_models:
            models.check(tok, path, f"{where}.tokenizer")
        w["tokenizer"] = str(models.resolve(tok)) if check_models else tok.name


COLUMNS = [
    C("concurrency", "metric", int, "requests", "requests in flight (c steps)"),
    C("request_rate", "metric", float, "requests/s", "arrival rate (r steps: evenly spaced; p steps: Poisson)"),
    C("requests", "metric", int, "requests", "requests sent in the repetition"),
    C("completed", "metric", int, "requests", "requests answered in full"),
    C("failed", "metric", int, "requests", "requests that failed", summary=True),
    C("failures", "metric", str, "", "failures by kind: http_429:2;timeout:1"),
    C("failure_rate", "metric", float, "", "failed / requests: the share of requests that failed (latency "
      "percentiles are over completed requests only)", summary=True, derive=ratio("failed", "requests")),
    C("agg_tokens_per_s", "metric", float, "tokens/s", "output tokens of all requests / the repetition's wall time",
      summary=True, label="aggregate tokens/s", headline=True, better="higher"),
    C("ttft_p50_s", "metric", float, "s", "time to first token, median over completed requests"),
    C("ttft_p95_s", "metric", float, "s", "time to first token, 95th percentile", summary=True),
    C("ttft_p99_s", "metric", float, "s", "time to first token, 99th percentile"),
    C("itl_p50_s", "metric", float, "s", "time between streamed chunks, median"),
    C("itl_p95_s", "metric", float, "s", "time between streamed chunks, 95th percentile"),
    C("itl_p99_s", "metric", float, "s", "time between streamed chunks, 99th percentile"),
    C("tpot_s", "metric", float, "s", "time per output token after the first, mean over requests"),
    C("e2e_p50_s", "metric", float, "s", "request latency, median"),
    C("e2e_p95_s", "metric", float, "s", "request latency, 95th percentile"),
    C("token_count_source", "metric", str, "", "usage (the server's report) or tokenizer (re-tokenized text)"),
]
SHARES = ("prompt_tokens", "output_tokens", "tg_tokens_per_s", "ttft_s", "j_per_output_token", "n_ctx", "n_gpu_layers")

PRICING = Pricing("llm", "request", lambda row: row["completed"])
