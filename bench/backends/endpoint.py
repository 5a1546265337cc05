"""OpenAI-compatible endpoint backend (Ollama, vLLM, llama.cpp server, llama-cpp-python's server): streamed
``/v1/chat/completions`` under a concurrency sweep or at a fixed request rate, with httpx's async client.

One test is one step (``c4``: 4 requests in flight; ``r0.5``: 0.5 requests per second); one repetition sends
``requests_per_step`` requests and is one measurement window (the GPU is local even when the server is another
process), so energy per output token at each concurrency is a column. Output tokens come from the server's usage
report or the model's tokenizer, never from the number of streamed chunks; inter-token latency is measured between
streamed chunks (``itl_*``), time per output token from end-to-end time and the token count (``tpot_s``).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from ..config import Workload
from ..energy.base import Scope
from ..errors import BackendError
from ..kinds.endpoint import attach, endpoint_url, parse_test
from ..servers import SERVERS, SpawnedServer
from .texts import CORPUS


@dataclass
class Result:
    ok: bool
    error: str = ""
    ttft: float | None = None
    e2e: float | None = None
    itls: list[float] = field(default_factory=list)
    text: str = ""
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    source: str = "none"


def prompt_text(n_tokens: int) -> str:
    """About ``n_tokens`` tokens of the reference text (English runs ~0.75 words per token); the server's usage
    report gives the exact count."""
    words = CORPUS.split()
    n_words = max(1, int(n_tokens * 0.75))
    return " ".join((words * (n_words // len(words) + 1))[:n_words])


class EndpointBackend:
    name = "openai-endpoint"

    def __init__(self, workload: Workload, model_path: Path | None):
        self.workload, self.model_path = workload, model_path
        self.server: SpawnedServer | None = None
        self.tokenizer = None
        self.results: list[Result] = []
        self._seq = 0
        self._run_tag = os.urandom(4).hex()

    def load(self) -> None:
        p = self.workload.params
        if p["spawn"]:
            self.server = SERVERS[p["server"]](self.model_path, p["n_ctx"], self.workload.threads,
                                               p["n_gpu_layers"], alias=p["model_name"], slots=p["slots"]).start()
            self.base_url = self.server.base_url
        else:
            self.base_url = p["base_url"]
        # never a password or a key in a row, a log or the screen
        self.shown_url, self.headers = attach(self.base_url, p, self.unload)
        tok = self.model_path if p["spawn"] else p["tokenizer"]
        if tok:
            import llama_cpp

            self.tokenizer = llama_cpp.Llama(str(tok), vocab_only=True, verbose=False)
        self.prompt = prompt_text(p["prompt_tokens"])

    def energy_scope(self) -> Scope:
        return server_scope(self.server, self.base_url, self.shown_url)

    def unload(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def settings(self) -> dict:
        p = self.workload.params
        slots = f" ({p['slots']} slots)" if p["server"] == "llama-server" else ""
        where = f"spawned {SERVERS[p['server']].name}{slots}" if p["spawn"] else "external server"
        return {"threads": self.workload.threads, "backend_build": f"{where} {self.shown_url}",
                "n_gpu_layers": self.workload.params["n_gpu_layers"] if self.workload.params["spawn"] else None}

    def prepare(self, test: str) -> None:
        pass

    # ------------------------------------------------------------------ requests
    def _payload(self) -> dict:
        p = self.workload.params
        n = p["output_tokens"]
        self._seq += 1  # a distinct first line per request, so no server can answer from its prompt (prefix) cache
        content = f"Request {self._seq} of run {self._run_tag}.\n{self.prompt}"
        return {"model": p["model_name"], "messages": [{"role": "user", "content": content}], "stream": True,
                "max_tokens": n, "temperature": 0.0, "stream_options": {"include_usage": True},
                # exactly n tokens where the server supports it (llama.cpp/llama-cpp-python, vLLM); others ignore it
                "min_tokens": n, "ignore_eos": True}

    async def _one(self, client: httpx.AsyncClient) -> Result:
        t0 = time.perf_counter()
        res = Result(ok=False)
        last = None
        parts: list[str] = []
        usage = None
        try:
            async with client.stream("POST", endpoint_url(self.base_url, "/chat/completions"), json=self._payload(),
                                     headers=self.headers) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    res.error = f"http_{resp.status_code}"
                    return res
                done = False
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        res.error = "bad_json"
                        return res
                    chunk = _chunk(obj)
                    if chunk is None:  # valid JSON of the wrong shape
                        res.error = "bad_shape"
                        return res
                    if chunk[1] is not None:
                        usage = chunk[1]
                    for delta in chunk[0]:
                        if delta:
                            now = time.perf_counter()
                            if res.ttft is None:
                                res.ttft = now - t0
                            else:
                                res.itls.append(now - last)
                            last = now
                            parts.append(delta)
                if not done:
                    res.error = "stream_cut"
                    return res
        except httpx.ConnectError:
            res.error = "connect"
            return res
        except httpx.TimeoutException:
            res.error = "timeout"
            return res
        except (httpx.RemoteProtocolError, httpx.ReadError):
            res.error = "stream_cut"
            return res
        res.e2e = time.perf_counter() - t0
        res.text = "".join(parts)
        if usage and usage.get("completion_tokens") is not None:
            out, prompt = usage["completion_tokens"], usage.get("prompt_tokens")
            if not _count(out) or (prompt is not None and not _count(prompt)):
                res.error = "bad_usage"  # a token count that is not a whole number >= 0
                return res
            res.output_tokens, res.prompt_tokens = out, prompt
            res.source = "usage"
        elif self.tokenizer is not None:
            res.output_tokens = len(self.tokenizer.tokenize(res.text.encode(), add_bos=False, special=True))
            res.source = "tokenizer"
        res.ok = res.ttft is not None
        if not res.ok:
            res.error = "empty"
        return res

    async def _bounded(self, client: httpx.AsyncClient) -> Result:
        """One request within its deadline: ``timeout_s`` bounds the whole request (a server that trickles tokens
        forever fails as ``deadline``), not only each read."""
        try:
            return await asyncio.wait_for(self._one(client), self.workload.params["timeout_s"])
        except asyncio.TimeoutError:
            return Result(ok=False, error="deadline")

    async def _step(self, concurrency: int | None, rate: float | None, poisson: bool = False) -> list[Result]:
        p = self.workload.params
        n = p["requests_per_step"]
        limits = httpx.Limits(max_connections=max(concurrency or 1, 64), max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=httpx.Timeout(p["timeout_s"]), limits=limits) as client:
            if concurrency is not None:
                sem = asyncio.Semaphore(concurrency)

                async def bounded():
                    async with sem:
                        return await self._bounded(client)

                return list(await asyncio.gather(*(bounded() for _ in range(n))))

            if poisson:  # exponential gaps, a fixed seed: the same arrivals in every repetition
                gaps = np.random.default_rng(0).exponential(1.0 / rate, n)
                starts = [0.0, *np.cumsum(gaps)[:-1]]
            else:
                starts = [i / rate for i in range(n)]

            async def at(i):
                await asyncio.sleep(starts[i])
                return await self._bounded(client)

            return list(await asyncio.gather(*(at(i) for i in range(n))))

    def run(self, test: str) -> dict:
        conc, rate, poisson = parse_test(test)
        t0 = time.perf_counter()
        results = asyncio.run(self._step(conc, rate, poisson))
        wall = time.perf_counter() - t0
        self.results = results
        ok = [r for r in results if r.ok]
        fails = Counter(r.error for r in results if not r.ok)
        out = {"concurrency": conc, "request_rate": rate, "requests": len(results), "completed": len(ok),
               "failed": len(results) - len(ok),
               "failures": ";".join(f"{k}:{v}" for k, v in sorted(fails.items()))}
        counted = [r for r in ok if r.output_tokens is not None]
        out["token_count_source"] = ";".join(sorted({r.source for r in ok})) or "none"
        if ok:
            pct = lambda xs, q: float(np.percentile(xs, q)) if xs else None  # noqa: E731
            ttfts = [r.ttft for r in ok]
            itls = [x for r in ok for x in r.itls]
            e2es = [r.e2e for r in ok]
            out.update({"ttft_p50_s": pct(ttfts, 50), "ttft_p95_s": pct(ttfts, 95), "ttft_p99_s": pct(ttfts, 99),
                        "itl_p50_s": pct(itls, 50), "itl_p95_s": pct(itls, 95), "itl_p99_s": pct(itls, 99),
                        "e2e_p50_s": pct(e2es, 50), "e2e_p95_s": pct(e2es, 95), "ttft_s": pct(ttfts, 50)})
        if counted:
            total = sum(r.output_tokens for r in counted)
            out["output_tokens"] = total
            out["agg_tokens_per_s"] = total / wall
            tpots = [(r.e2e - r.ttft) / (r.output_tokens - 1) for r in counted if r.output_tokens > 1]
            if tpots:
                out["tpot_s"] = float(np.mean(tpots))
                out["tg_tokens_per_s"] = 1.0 / out["tpot_s"]  # per request, as one client sees it
            prompts = [r.prompt_tokens for r in counted if r.prompt_tokens is not None]
            if prompts:
                out["prompt_tokens"] = int(np.mean(prompts))
        return out


def server_scope(server: SpawnedServer | None, base_url: str, shown_url: str) -> Scope:
    """Whose CPU time the labeled estimate counts: a spawned server is a child process (counted already); an external
    server on this machine is found by the port it listens on; one elsewhere gets no energy here."""
    if server is not None:
        return Scope("process", note=f"includes the spawned {server.name} (a child process)")
    u = urlsplit(base_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    if not _is_this_machine(u.hostname or ""):
        return Scope("remote", note=f"the server at {shown_url} runs on another machine: its energy is not "
                                    "measured here")
    pids = _listening_pids(port)
    if pids:
        return Scope("pids", tuple(pids), note=f"includes the CPU time of the local server (pid "
                                               f"{', '.join(map(str, pids))}) listening on port {port}")
    return Scope("system", note=f"the local server on port {port} could not be found: the whole machine's busy "
                                "CPU time is counted")


def _is_this_machine(host: str) -> bool:
    import ipaddress
    import socket

    import psutil

    if host in ("localhost", ""):
        return True
    try:
        addrs = {ipaddress.ip_address(a[4][0].split("%")[0]) for a in socket.getaddrinfo(host, None)}
    except (OSError, ValueError):
        return False
    mine = {ipaddress.ip_address(a.address.split("%")[0]) for nic in psutil.net_if_addrs().values() for a in nic
            if a.family in (socket.AF_INET, socket.AF_INET6)}
    return all(a.is_loopback or a in mine for a in addrs)


def _listening_pids(port: int) -> list[int]:
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return sorted({c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   and c.pid is not None and c.pid != os.getpid()})


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _chunk(obj) -> tuple[list[str | None], dict | None] | None:
    """(content deltas, usage) of one streamed chunk, or None when it is not shaped like an OpenAI chunk."""
    if not isinstance(obj, dict):
        return None
    choices = obj.get("choices") or []
    usage = obj.get("usage") or None
    if not isinstance(choices, list) or (usage is not None and not isinstance(usage, dict)):
        return None
    deltas = []
    for ch in choices:
        delta = ch.get("delta") if isinstance(ch, dict) else None
        delta = {} if delta is None else delta
        content = delta.get("content") if isinstance(delta, dict) else 0
        if not isinstance(ch, dict) or not isinstance(delta, dict) or (content is not None
                                                                        and not isinstance(content, str)):
            return None
        deltas.append(content)
    return deltas, usage


def create(workload: Workload, model_path: Path | None) -> EndpointBackend:
    if workload.params["spawn"] and model_path is None:
        raise BackendError("spawn = true needs a GGUF model")
    return EndpointBackend(workload, model_path)
