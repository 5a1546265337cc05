"""Embedding backend: a GGUF embedding model through llama-cpp-python (mean pooling, normalized vectors).

One repetition embeds the passage set: the six reference texts (``bench.speech.REFERENCE_TEXTS``: emails, meeting
notes, a support ticket) among the paragraphs of the bundled public-domain story as distractors, about ten thousand
tokens. The retrieval check after the window embeds one fixed query per reference text and records the share whose
nearest passage (cosine) is the text it was written from.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import Workload
from ..errors import BackendError, ModelNotFound
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


class EmbedBackend:
    name = "llama-cpp-python"

    def __init__(self, workload: Workload, model_path: Path):
        self.workload, self.model_path = workload, Path(model_path)
        self.llm = None

    def load(self) -> None:
        import llama_cpp

        if not self.model_path.is_file():
            raise ModelNotFound(f"GGUF embedding model {self.model_path} does not exist")
        n_ctx = self.workload.params["n_ctx"]
        try:
            self.llm = llama_cpp.Llama(str(self.model_path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx,
                                       n_ubatch=n_ctx, n_threads=self.workload.threads,
                                       n_threads_batch=self.workload.threads,
                                       n_gpu_layers=self.workload.params["n_gpu_layers"],
                                       pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp could not load {self.model_path} as an embedding model: {e}") from e
        self._build = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
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
                "backend_build": self._build}

    def prepare(self, test: str) -> None:
        pass

    def run(self, test: str) -> dict:
        t0 = time.perf_counter()
        vectors = self.llm.embed(self.passages, normalize=True)
        wall = time.perf_counter() - t0
        self._vectors = np.asarray(vectors, dtype=np.float32)
        tokens = sum(self.tokens)
        return {"passages": len(self.passages), "embed_tokens": tokens, "embed_tokens_per_s": tokens / wall,
                "passages_per_s": len(self.passages) / wall, "dims": int(self._vectors.shape[1])}

    def check(self, test: str) -> dict:
        """Recall@1 of the fixed queries against the passages just embedded (not timed)."""
        prefix = self.workload.params["query_prefix"]
        q = np.asarray(self.llm.embed([prefix + x for x in QUERIES.values()], normalize=True), dtype=np.float32)
        hits = (q @ self._vectors.T).argmax(axis=1) == np.arange(len(QUERIES))
        return {"recall_at_1": float(hits.mean())}


def create(workload: Workload, model_path: Path) -> EmbedBackend:
    return EmbedBackend(workload, model_path)
