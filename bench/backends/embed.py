"""Embedding backends: a GGUF embedding model through llama-cpp-python (mean pooling, normalized vectors), or an
OpenAI-compatible ``/v1/embeddings`` endpoint (an external server such as Ollama, or llama.cpp's llama-server
spawned on loopback with ``--embeddings``).

One repetition embeds the passage set, ``batch_size`` passages per call or request: the six reference texts
(``bench.speech.REFERENCE_TEXTS``: emails, meeting notes, a support ticket) among the paragraphs of the bundled
public-domain story as distractors, about ten thousand tokens. The retrieval check after the window embeds one fixed
query per reference text and records the share whose nearest passage (cosine) is the text it was written from.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import Workload
from ..energy.base import Scope
from ..errors import BackendError, ModelNotFound
from ..kinds.endpoint import attach, endpoint_url
from ..quality import REFERENCE, read_text
from ..speech import REFERENCE_TEXTS

QUERIES = {  # written from each reference text, in other words than its own where possible
    "email-vendor-review": "What three points should we agree on before the steering call?",
    "email-usage-numbers": "Who asked for three months of usage numbers split by task type?",
    "meeting-actions": "Who benchmarks the local model and measures its power draw?",
    "meeting-vendors": "Which transcription vendors are compared on price per audio minute?",
    "meeting-questions": "Who maintains the box and what happens when it is down?",
    "support-ticket": "I was charged twice and cannot log in to my account",
}


def passages() -> list[str]:
    story = [p.replace("\n", " ").strip() for p in read_text(REFERENCE).split("\n\n") if len(p.strip()) > 80]
    return [REFERENCE_TEXTS[k] for k in QUERIES] + story


class _PassageSet:
    """What both backends do with their ``embed(texts) -> (vectors, tokens reported or None)``: one repetition
    embeds every passage ``batch_size`` at a time; the retrieval check after it."""

    workload: Workload
    passages: list[str]
    tokens: list[int]  # per passage from the model's tokenizer; empty where a server reports usage

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int | None]:
        raise NotImplementedError

    def prepare(self, test: str) -> None:
        pass

    def run(self, test: str) -> dict:
        """Tokens from the model's tokenizer (local) or the server's usage report (empty where a response has
        none)."""
        size = self.workload.params["batch_size"]
        parts, usage = [], []
        t0 = time.perf_counter()
        for i in range(0, len(self.passages), size):
            vectors, used = self.embed(self.passages[i:i + size])
            parts.append(vectors)
            usage.append(used)
        wall = time.perf_counter() - t0
        vectors = np.concatenate(parts)
        self._vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        tokens = sum(self.tokens) if self.tokens else (sum(usage) if None not in usage else None)
        return {"passages": len(self.passages), "embed_tokens": tokens,
                "embed_tokens_per_s": tokens / wall if tokens is not None else None,
                "passages_per_s": len(self.passages) / wall, "dims": int(vectors.shape[1])}

    def check(self, test: str) -> dict:
        """Recall@1 of the fixed queries against the passages just embedded (not timed)."""
        prefix = self.workload.params["query_prefix"]
        q, _ = self.embed([prefix + x for x in QUERIES.values()])
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        hits = (q @ self._vectors.T).argmax(axis=1) == np.arange(len(QUERIES))
        return {"recall_at_1": float(hits.mean())}


class EmbedBackend(_PassageSet):
    name = "llama-cpp-python"

    def __init__(self, workload: Workload, model_path: Path):
        self.workload, self.model_path = workload, Path(model_path)
        self.llm = None

    def load(self) -> None:
        from .. import cudalibs

        cudalibs.preload_llama()
        import llama_cpp

        if not self.model_path.is_file():
            raise ModelNotFound(f"GGUF embedding model {self.model_path} does not exist")
        n_ctx = self.workload.params["n_ctx"]
        try:
            self.llm = llama_cpp.Llama(str(self.model_path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx,
                                       n_ubatch=n_ctx, n_threads=self.workload.threads,
                                       n_threads_batch=self.workload.threads,
                                       n_gpu_layers=self.workload.params["n_gpu_layers"],
                                       flash_attn=self.workload.params["flash_attn"],
                                       pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp could not load {self.model_path} as an embedding model: {e}") from e
        self._build = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
        self._offload = bool(llama_cpp.llama_supports_gpu_offload())
        self.passages = [self.workload.params["passage_prefix"] + p for p in passages()]
        self.tokens = [len(self.llm.tokenize(p.encode())) for p in self.passages]
        if max(self.tokens) > n_ctx:
            raise BackendError(f"a passage has {max(self.tokens)} tokens; n_ctx is {n_ctx}")

    def unload(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def settings(self) -> dict:
        p = self.workload.params
        return {"threads": self.workload.threads, "n_gpu_layers": p["n_gpu_layers"], "n_ctx": p["n_ctx"],
                "batch_size": p["batch_size"], "flash_attn": p["flash_attn"], "backend_build": self._build,
                "device": "cuda" if self._offload and p["n_gpu_layers"] != 0 else "cpu"}

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int | None]:
        return np.asarray(self.llm.embed(texts, normalize=True), dtype=np.float32), None


class EmbedEndpointBackend(_PassageSet):
    """``POST {base_url}/embeddings`` with ``batch_size`` passages per request, one request at a time (indexing a
    document set is a batch job, not concurrent traffic)."""

    name = "openai-embeddings"

    def __init__(self, workload: Workload, model_path: Path | None):
        self.workload, self.model_path = workload, model_path
        self.server = None
        self.tokens: list[int] = []  # the server reports usage

    def load(self) -> None:
        import httpx

        from ..servers import LlamaServer

        p = self.workload.params
        if p["spawn"]:
            if self.model_path is None or not Path(self.model_path).is_file():
                raise ModelNotFound(f"GGUF embedding model {self.model_path} does not exist")
            self.server = LlamaServer(self.model_path, p["n_ctx"], self.workload.threads, p["n_gpu_layers"],
                                      alias=p["model_name"], embeddings=True).start()
            self.base_url = self.server.base_url
        else:
            self.base_url = p["base_url"]
        self.shown_url, self.headers = attach(self.base_url, p, self.unload)
        self.client = httpx.Client(timeout=p["timeout_s"], headers=self.headers)
        self.passages = [p["passage_prefix"] + x for x in passages()]

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int | None]:
        import httpx

        url = endpoint_url(self.base_url, "/embeddings")
        try:
            r = self.client.post(url, json={"model": self.workload.params["model_name"], "input": texts,
                                            "encoding_format": "float"})
        except httpx.HTTPError as e:
            raise BackendError(f"{self.shown_url}/embeddings: {type(e).__name__}") from None
        if r.status_code != 200:
            raise BackendError(f"{self.shown_url}/embeddings answered HTTP {r.status_code}: {r.text[:200]}")
        try:
            body = r.json()
            data = sorted(body["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise BackendError(f"{self.shown_url}/embeddings: not an OpenAI embeddings response ({e!r})") from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise BackendError(f"{self.shown_url}/embeddings: {len(vectors)} vectors for {len(texts)} inputs")
        usage = body.get("usage") or {}
        tokens = usage.get("prompt_tokens")
        return vectors, tokens if isinstance(tokens, int) and tokens > 0 else None

    def energy_scope(self) -> Scope:
        from .endpoint import server_scope

        return server_scope(self.server, self.base_url, self.shown_url)

    def unload(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def settings(self) -> dict:
        p = self.workload.params
        where = "spawned llama-server --embeddings" if p["spawn"] else "external server"
        return {"threads": self.workload.threads, "n_ctx": p["n_ctx"], "batch_size": p["batch_size"],
                "flash_attn": True if p["spawn"] else None,
                "backend_build": f"{where} {self.shown_url}",
                "n_gpu_layers": p["n_gpu_layers"] if p["spawn"] else None}

def create(workload: Workload, model_path: Path | None):
    p = workload.params
    if p["spawn"] or p["base_url"]:
        return EmbedEndpointBackend(workload, model_path)
    return EmbedBackend(workload, model_path)
