"""`make perf-check`: is the harness as fast as llama.cpp itself?

In one go, on the same GGUF, threads, flash-attention setting and build flags, it measures pp512 and tg128 with
  1. llama.cpp's own ``llama-bench`` (built from the sources vendored in the llama-cpp-python sdist, with the
     CMake flags of bench/buildflags.py, by bench/llamacpp.py, cached under ~/.cache/shadowbench/llama.cpp/<key>),
  2. a bare llama-cpp-python loop (the same decode calls llama-bench makes, nothing else),
  3. the harness (Runner + LLM backend, rows written to a temporary folder),
interleaved over several rounds so that drift of a shared machine hits all three alike, and prints medians and
ratios. Targets: harness / llama-bench >= 0.97, harness / bare loop >= 0.98. ``batched`` sets the harness's
parallel-sequence decoding (``pp128+tg128xN``) against ``llama-batched-bench`` (target >= 0.95); ``quality`` its
perplexity and KL divergence against ``llama-perplexity`` on the same files and text (target: within 2%).
``report-memory`` repeats committed rows into one 200 MB results file and measures ``shadowbench report``'s peak
memory on it (target: under 1 GB).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import buildflags, llamacpp, models
from .config import default_threads, load_suite
from .energy import NullMeter, build_meter
from .results import read_rows
from .runner import Runner

PP, TG = 512, 128
TARGET_LLAMA_BENCH, TARGET_BARE = 0.97, 0.98
console = Console(stderr=True)


def run_llama_bench(exe: Path, model: Path, threads: int, reps: int, pp: int = PP,
                    tg: int = TG) -> dict[str, list[float]]:
    """llama-bench's tokens/s samples of ppN and tgN ("pp512", "tg128" by default)."""
    out = subprocess.run([str(exe), "-m", str(model), "-t", str(threads), "-p", str(pp), "-n", str(tg),
                          "-r", str(reps), "-fa", "on", "-o", "json"], check=True, capture_output=True, text=True,
                         env=llamacpp.env())
    res = {}
    for r in json.loads(out.stdout):
        key = f"pp{pp}" if r["n_prompt"] == pp and r["n_gen"] == 0 else f"tg{tg}"
        res[key] = list(r["samples_ts"])
    return res


class BareLoop:
    """llama-bench's test_prompt/test_gen in a few lines of llama-cpp-python, for the harness-overhead ratio."""

    def __init__(self, model: Path, threads: int):
        import llama_cpp

        self.lc = llama_cpp
        self.llm = llama_cpp.Llama(str(model), n_ctx=PP + TG, n_batch=512, n_ubatch=512, n_threads=threads,
                                   n_threads_batch=threads, flash_attn=True, verbose=False)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.llm.model))
        self.batch = llama_cpp.llama_batch_init(PP, 0, 1)

    def _decode(self, tokens, start):
        b = self.batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = t, start + i, 1, 0, False
        b.logits[len(tokens) - 1] = True
        self.lc.llama_decode(self.llm.ctx, b)

    def pp(self) -> float:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.llm.ctx), True)
        t = time.perf_counter()
        self._decode([(i * 7919 + 1) % self.n_vocab for i in range(PP)], 0)
        self.lc.llama_synchronize(self.llm.ctx)
        return PP / (time.perf_counter() - t)

    def tg(self) -> float:
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.llm.ctx), True)
        t = time.perf_counter()
        token = 1
        for k in range(TG):
            self._decode([token], k)
            self.lc.llama_synchronize(self.llm.ctx)
            token = (token * 7919 + 13) % self.n_vocab
        return TG / (time.perf_counter() - t)

    def close(self):
        self.lc.llama_batch_free(self.batch)
        self.llm.close()


SUITE = """
[suite]
name = "perf-check"
[defaults]
warmups = 1
repetitions = {reps}
threads = {threads}
[[workloads]]
name = "smollm2"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 2048
flash_attn = true
tests = ["pp512", "tg128"]
"""


def harness_rows(folder: Path, suite_text: str, metered: bool = True, launcher: str = "process",
                 skews: list[float] | None = None) -> list[dict]:
    """Run the harness on a suite written into ``folder`` (with this box's meter, or none; each workload in its own
    process, or ``inline``) and return its rows; ``skews`` collects each window's parent-span minus child window."""
    folder.mkdir(parents=True, exist_ok=True)
    suite_path = folder / "perf.toml"
    suite_path.write_text(suite_text)
    meter = build_meter("auto")[0] if metered else NullMeter()
    try:
        out = Runner(load_suite(suite_path), meter, folder / "results", "perf-check", [], console=console,
                     show_progress=False, launcher=launcher).run()
    finally:
        meter.close()
    if skews is not None:
        skews += out.skews_s
    return read_rows(out.path)


def overhead_us(harness_tps: float, ref_tps: float) -> float:
    """The harness's extra time per token, in microseconds, from two rates (tokens/s): 1/harness - 1/reference."""
    return (1 / harness_tps - 1 / ref_tps) * 1e6


def print_ratio_table(title: str, columns: tuple[str, ...], cells: list[str]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(*cells)
    Console(width=140).print(table)


def report_ratio(title: str, samples: dict[str, list[float]], num: str, den: str, labels: tuple[str, str, str],
                 fmt: str = ".1f", target: float | None = None) -> float:
    """The ratio of the medians of two sample lists (num / den), printed as a one-row table; flagged below target."""
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med[num] / med[den]
    flag = "" if target is None or ratio >= target else f" (below {target:g})"
    print_ratio_table(title, labels, [format(med[num], fmt), format(med[den], fmt), f"{ratio:.3f}{flag}"])
    return ratio


def run_harness(tmp: Path, threads: int, reps: int, launcher: str = "process",
                skews: list[float] | None = None) -> dict[str, list[float]]:
    rows = harness_rows(tmp, SUITE.format(reps=reps, threads=threads), metered=False, launcher=launcher, skews=skews)
    return {"pp512": [float(r["pp_tokens_per_s"]) for r in rows if r["test"] == "pp512"],
            "tg128": [float(r["tg_tokens_per_s"]) for r in rows if r["test"] == "tg128"]}


def sampler_overhead(args) -> float:
    """tg128 of the LLM backend with this box's meter sampling at 10 Hz against the same meter without its sampler
    thread, interleaved rounds in one process. Target: ratio >= 0.99."""
    from .backends.llm import LlamaCppBackend
    with tempfile.TemporaryDirectory() as tmp:
        suite_path = Path(tmp) / "perf.toml"
        suite_path.write_text(SUITE.format(reps=1, threads=args.threads))
        w = load_suite(suite_path).workloads[0]
    backend = LlamaCppBackend(w, models.resolve(w.model))
    backend.load()
    backend.prepare("tg128")
    backend.run("tg128")  # warm-up
    samples: dict[str, list[float]] = {"sampler 10 Hz": [], "no sampler": []}
    names = {}
    for rnd in range(args.rounds * 2):
        order = (("sampler 10 Hz", 10.0), ("no sampler", 0.0))
        for label, hz in (order if rnd % 2 == 0 else order[::-1]):  # ABBA: drift cancels
            meter, _ = build_meter("auto", sample_hz=hz)
            names[label] = meter.name
            meter.start()
            try:
                for _ in range(args.reps):
                    meter.begin("k")
                    samples[label].append(backend.run("tg128")["tg_tokens_per_s"])
                    meter.end("k")
            finally:
                meter.close()
    backend.unload()
    return report_ratio(f"sampler overhead: tg128 tokens/s, meter {names['no sampler']}, "
                        f"{len(samples['no sampler'])} repetitions each (median)", samples, "sampler 10 Hz",
                        "no sampler", ("sampler 10 Hz", "no sampler", "ratio"), target=0.99)


# the head of every perf-check suite: one warm-up, no idle baseline
PERF_HEAD = """
[suite]
name = "{name}"
[defaults]
warmups = 1
repetitions = {reps}
threads = {threads}
[energy]
idle_s = 0
"""

ASR_SUITE = PERF_HEAD.replace("{name}", "perf-asr") + """
[[workloads]]
name = "whisper-tiny.en"
kind = "asr"
model = "bundled:whisper-tiny.en"
audio = "{folder}"
"""


def asr_overhead(args) -> float:
    """RTF of the harness's faster-whisper workload against a bare WhisperModel.transcribe on the same clip (the
    longest reference clip), same model, device, compute type, beam size and threads, interleaved rounds."""
    from faster_whisper import decode_audio

    from . import speech
    from .backends.asr import transcribe, whisper_model

    voice_path = models.resolve(models.ModelRef("bundled", "piper-joe-medium"))
    voice = speech.piper_voice(voice_path)
    clips = speech.reference_clips(voice_path, lambda t: speech.piper_synthesize(voice, t))
    clip = max(clips, key=lambda c: c.audio_s)
    model_path = models.resolve(models.ModelRef("bundled", "whisper-tiny.en"))
    bare_model, _, _ = whisper_model(model_path, "cpu", "int8", args.threads)
    audio = decode_audio(str(clip.wav))
    transcribe(bare_model, audio, 5, "en")  # warm-up
    samples: dict[str, list[float]] = {"bare": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clip"
        folder.mkdir()
        shutil.copy(clip.wav, folder / clip.wav.name)
        shutil.copy(clip.wav.with_suffix(".txt"), folder / (clip.name + ".txt"))
        for rnd in range(args.rounds):
            for _ in range(args.reps):
                t = time.perf_counter()
                transcribe(bare_model, audio, 5, "en")
                samples["bare"].append((time.perf_counter() - t) / clip.audio_s)
            rows = harness_rows(Path(tmp) / f"r{rnd}",
                                ASR_SUITE.format(reps=args.reps, threads=args.threads, folder=folder))
            samples["harness"] += [float(r["rtf"]) for r in rows]
    return report_ratio(f"faster-whisper tiny.en int8, {args.threads} threads, clip {clip.name} "
                        f"({clip.audio_s:.1f} s), {len(samples['bare'])} runs each (median RTF, lower is faster)",
                        samples, "bare", "harness", ("bare call RTF", "harness RTF", "speed ratio harness/bare"),
                        fmt=".4f", target=0.98)


SERVER_SUITE = PERF_HEAD.replace("{name}", "perf-server") + """
[[workloads]]
name = "in-process"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 2048
tests = ["pp{pp}+tg{tg}"]
[[workloads]]
name = "server"
kind = "endpoint"
spawn = true
server = "llama-server"
slots = 1
model = "bundled:smollm2"
n_ctx = 512
prompt_tokens = {pp}
output_tokens = {tg}
requests_per_step = 3
tests = ["c1"]
"""


def server_overhead(args) -> float:
    """tg tokens/s of the same request shape in-process (LLM backend) and through the spawned llama-server (8
    slots, continuous batching) at concurrency 1 (1 / time per output token), interleaved rounds: the server's
    overhead. Target: within 10% (ratio >= 0.90)."""

    pp, tg = 100, 128
    samples: dict[str, list[float]] = {"in-process": [], "server": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            rows = harness_rows(Path(tmp) / f"r{rnd}",
                                SERVER_SUITE.format(reps=args.reps, threads=args.threads, pp=pp, tg=tg))
            for r in rows:
                samples[r["workload"]].append(float(r["tg_tokens_per_s"]))
    return report_ratio(f"SmolLM2 tg tokens/s for {pp}+{tg}-token requests, {args.threads} threads, "
                        f"{len(samples['server'])} repetitions each (median)", samples, "server", "in-process",
                        ("llama-server, concurrency 1", "in-process LLM backend", "server / in-process"),
                        target=0.90)


EMBED_SUITE = PERF_HEAD.replace("{name}", "perf-embed") + """
[[workloads]]
name = "in-process"
kind = "embed"
model = "bundled:all-minilm-l6-v2"

[[workloads]]
name = "llama-server"
kind = "embed"
model = "bundled:all-minilm-l6-v2"
spawn = true
"""


def embed_vs_llama_server(args) -> float:
    """Embedding tokens/s of the passage set in-process (llama-cpp-python) and through llama.cpp's own
    ``llama-server --embeddings`` (the endpoint path, 32 passages per request), interleaved rounds; recall@1 must be
    1.0 on both. The server adds HTTP and JSON per request; the in-process figure should not fall below it by more
    than the noise (target: in-process / server >= 0.95)."""
    samples: dict[str, list[float]] = {"in-process": [], "llama-server": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for r in harness_rows(Path(tmp) / f"r{rnd}", EMBED_SUITE.format(reps=args.reps, threads=args.threads)):
                if float(r["recall_at_1"]) != 1.0:
                    raise SystemExit(f"{r['workload']}: recall@1 {r['recall_at_1']} (expected 1.0)")
                samples[r["workload"]].append(float(r["embed_tokens_per_s"]))
    return report_ratio(f"all-MiniLM-L6-v2 embedding tokens/s, 124 passages, {args.threads} threads, "
                        f"{len(samples['llama-server'])} repetitions each (median)", samples, "in-process",
                        "llama-server", ("in-process (llama-cpp-python)", "llama-server /v1/embeddings",
                                         "in-process / server"), target=0.95)


BATCHED_PP, BATCHED_TG, BATCHED_PL = 128, 128, (1, 4, 8)
BATCHED_SUITE = PERF_HEAD.replace("{name}", "perf-batched") + """
[[workloads]]
name = "smol"
kind = "llm"
model = "bundled:smollm2"
n_ctx = {n_ctx}
n_batch = 512
n_ubatch = 512
tests = {tests}
"""
TARGET_BATCHED = 0.95


def run_batched_bench(exe: Path, model: Path, threads: int) -> dict[int, float]:
    """llama-batched-bench's aggregate generation speed (S_TG) per number of parallel sequences."""
    n_ctx = max(BATCHED_PL) * (BATCHED_PP + BATCHED_TG)
    out = subprocess.run([str(exe), "-m", str(model), "-c", str(n_ctx), "-b", "512", "-ub", "512",
                          "-npp", str(BATCHED_PP), "-ntg", str(BATCHED_TG), "-npl", ",".join(map(str, BATCHED_PL)),
                          "-t", str(threads), "-fa", "on", "--output-format", "jsonl"],
                         check=True, capture_output=True, text=True, env=llamacpp.env())
    return speed_tg_by_pl(out.stdout + out.stderr)


def speed_tg_by_pl(text: str) -> dict[int, float]:
    """llama-batched-bench's ``--output-format jsonl`` lines: aggregate generation speed (S_TG) per sequence count."""
    res = {}
    for line in text.splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            r = json.loads(line)
            res[int(r["pl"])] = float(r["speed_tg"])
    return res


def batched_vs_llama_batched_bench(args) -> float:
    """Aggregate decode tokens/s of n sequences decoded together: the harness (pp128+tg128xN) against llama.cpp's
    llama-batched-bench on the same model, threads, batch sizes and flash attention, interleaved rounds."""
    model = models.resolve(models.ModelRef("bundled", "smollm2"))
    exe = llamacpp.tool("llama-batched-bench", log=console.print)
    tests = [f"pp{BATCHED_PP}+tg{BATCHED_TG}" + (f"x{n}" if n > 1 else "") for n in BATCHED_PL]
    samples: dict[str, dict[int, list[float]]] = {"llama-batched-bench": {n: [] for n in BATCHED_PL},
                                                  "harness": {n: [] for n in BATCHED_PL}}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            console.print(f"round {rnd + 1}/{args.rounds}")
            for _ in range(args.reps):
                for n, v in run_batched_bench(exe, model, args.threads).items():
                    samples["llama-batched-bench"][n].append(v)
            rows = harness_rows(Path(tmp) / f"r{rnd}", BATCHED_SUITE.format(
                reps=args.reps, threads=args.threads, tests=json.dumps(tests),
                n_ctx=BATCHED_PP + BATCHED_TG), metered=False)
            for r in rows:
                samples["harness"][int(r["parallel"] or 1)].append(float(r["tg_tokens_per_s"]))
    table = Table(title=f"perf-check batched: SmolLM2-135M, pp{BATCHED_PP}+tg{BATCHED_TG} per sequence, "
                        f"{args.threads} threads, {args.rounds} rounds x {args.reps} reps "
                        "(median aggregate tg tokens/s)")
    for col in ("sequences", "llama-batched-bench", "harness", "harness/llama-batched-bench",
                "µs/token over llama-batched-bench"):
        table.add_column(col, justify="right")
    worst = 1e9
    for n in BATCHED_PL:
        ref = statistics.median(samples["llama-batched-bench"][n])
        got = statistics.median(samples["harness"][n])
        worst = min(worst, got / ref)
        table.add_row(str(n), f"{ref:.1f}", f"{got:.1f}",
                      f"{got / ref:.3f}" + ("" if got / ref >= TARGET_BATCHED else f" (below {TARGET_BATCHED})"),
                      f"{overhead_us(got, ref):+.1f}")
    Console(width=140).print(table)
    return worst


EXTERNAL_SUITE = PERF_HEAD.replace("{name}", "perf-external") + """
[[workloads]]
name = "external"
kind = "endpoint"
base_url = "http://127.0.0.1:{port}/v1"
model_name = "local"
prompt_tokens = 100
output_tokens = 128
requests_per_step = 4
tests = ["c1"]
"""


def external_server_energy(args) -> float:
    """An external llama-server on this machine, started here and not by the harness: the harness's labeled CPU
    estimate of a c1 step must count at least the server's own CPU time × the estimate's watts per busy thread
    (target ratio >= 1.0; the rest is the harness's client)."""
    import psutil

    from .energy.estimate import cpu_watts_per_thread
    from .provenance import cpu_model
    from .servers import answers, free_port

    model = models.resolve(models.ModelRef("bundled", "smollm2"))
    exe = llamacpp.tool("llama-server", log=console.print)
    port = free_port()
    proc = subprocess.Popen([str(exe), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", "2048",
                             "-np", "1", "-t", str(args.threads), "--alias", "local", "--no-webui"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=llamacpp.env())
    try:
        if not answers(f"http://127.0.0.1:{port}/v1", 60, alive=lambda: proc.poll() is None):
            raise RuntimeError(f"llama-server did not start (exit status {proc.poll()})")
        server = psutil.Process(proc.pid)
        cpu0 = sum(server.cpu_times()[:2])
        with tempfile.TemporaryDirectory() as tmp:
            suite = EXTERNAL_SUITE.format(reps=args.reps, threads=args.threads, port=port).replace(
                "[energy]\nidle_s = 0", '[energy]\nidle_s = 0\nmeter = "estimate"')
            rows = harness_rows(Path(tmp), suite.replace("warmups = 1", "warmups = 0"))
        server_cpu_s = sum(server.cpu_times()[:2]) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    w = cpu_watts_per_thread(cpu_model())[0]
    energy = sum(float(r["energy_j"]) for r in rows)
    floor = server_cpu_s * w
    return report_ratio(f"external llama-server (pid {proc.pid}), {len(rows)} c1 repetitions of 4 requests: the "
                        f"labeled estimate vs the server's own CPU time × {w:g} W per busy thread",
                        {"estimate": [energy], "server": [floor]}, "estimate", "server",
                        ("estimate J", "server CPU s × W/thread J", "ratio"), fmt=".1f", target=1.0)


QUALITY_QUANTS = ("Q8_0", "Q4_0", "Q2_K")
QUALITY_SUITE = PERF_HEAD.replace("{name}", "perf-quality") + """
[[workloads]]
name = "orig"
kind = "llm"
model = "bundled:smollm2"
tests = ["tg8"]
[[workloads]]
name = "F16"
kind = "llm"
quantize_from = "orig"
quantize_type = "F16"
kld_base = "F16"
tests = ["ppl", "kld"]
""" + "".join(f"""
[[workloads]]
name = "{q}"
kind = "llm"
quantize_from = "F16"
quantize_type = "{q}"
kld_base = "F16"
tests = ["kld"]
""" for q in QUALITY_QUANTS)
TARGET_QUALITY = 0.02


def run_llama_perplexity(exe: Path, model: Path, text: Path, base: Path, threads: int, kld: bool) -> dict:
    """llama-perplexity on the same context and batch as the harness (-c 512 -b 512, flash attention on): the base
    model saves its log-probabilities (--kl-divergence-base), a quantization is scored against them."""
    import re

    cmd = [str(exe), "-m", str(model), "-c", "512", "-b", "512", "-t", str(threads), "-fa", "on",
           "--kl-divergence-base", str(base)]
    cmd += ["--kl-divergence"] if kld else ["-f", str(text)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=llamacpp.env())
    log = out.stdout + out.stderr
    def num(pattern: str) -> float:
        m = re.search(pattern, log)
        if not m:
            raise RuntimeError(f"llama-perplexity printed no {pattern!r}: {log[-2000:]}")
        return float(m.group(1))
    if not kld:
        return {"ppl": num(r"Final estimate: PPL = ([\d.]+)")}
    return {"ppl": num(r"Mean PPL\(Q\)\s*:\s*([\d.]+)"), "kld_mean": num(r"Mean    KLD:\s*([-\d.]+)"),
            "kld_p99": num(r"99\.0%   KLD:\s*([-\d.]+)"), "same_top_p": num(r"Same top p:\s*([\d.]+)") / 100}


def quality_vs_llama_perplexity(args) -> float:
    """Perplexity and KL divergence of the harness's ppl and kld tests against llama-perplexity's on the same GGUF
    files (SmolLM2 Q4_1 dequantized to F16, and Q8_0, Q4_0, Q2_K made from it) and the whole bundled text. Target:
    every figure within 2%."""
    from . import quality

    exe = llamacpp.tool("llama-perplexity", log=console.print)
    text = quality.text_path(quality.REFERENCE)
    with tempfile.TemporaryDirectory() as tmp:
        rows = harness_rows(Path(tmp) / "h", QUALITY_SUITE.format(reps=1, threads=args.threads))
        paths = {}
        f16 = models.quantize(models.resolve(models.ModelRef("bundled", "smollm2")), "F16")
        paths["F16"] = f16
        for q in QUALITY_QUANTS:
            paths[q] = models.quantize(f16, q)
        base = Path(tmp) / "llama-perplexity-base.kld"
        ref = {"F16": run_llama_perplexity(exe, f16, text, base, args.threads, kld=False)}
        for q in QUALITY_QUANTS:
            ref[q] = run_llama_perplexity(exe, paths[q], text, base, args.threads, kld=True)
    got = {(r["workload"], r["test"]): r for r in rows}
    table = Table(title=f"perf-check quality: SmolLM2-135M, {quality.REFERENCE} (whole text, -c 512), "
                        f"{args.threads} threads")
    for col in ("model", "figure", "llama-perplexity", "harness", "harness/llama-perplexity"):
        table.add_column(col, justify="right")
    worst = 0.0
    for name, figures in ref.items():
        test = "ppl" if name == "F16" else "kld"
        for fig, want in figures.items():
            have = float(got[(name, test)][fig])
            r = have / want
            worst = max(worst, abs(r - 1))
            table.add_row(name, fig, f"{want:.6g}", f"{have:.6g}",
                          f"{r:.4f}" + ("" if abs(r - 1) <= TARGET_QUALITY else " (off by more than 2%)"))
    Console(width=120).print(table)
    print(f"target: every figure within {TARGET_QUALITY:.0%} of llama-perplexity's: "
          + ("met" if worst <= TARGET_QUALITY else "NOT met"))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perfcheck", description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=["all", "llm", "sampler", "asr", "server", "batched", "external",
                                                "quality", "embed", "synthetic", "report-memory"], default="all")
    ap.add_argument("--mb", type=float, default=200, help="size of the report-memory entry's results file")
    ap.add_argument("--synthetic", default="llama3.1-8b-q4_k_m", help="the synthetic model of the synthetic entry")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per tool per round")
    ap.add_argument("--threads", type=int, default=default_threads())
    args = ap.parse_args(argv)
    if args.what in ("all", "llm"):
        llm_vs_llama_bench(args)
    if args.what in ("all", "sampler"):
        sampler_overhead(args)
    if args.what in ("all", "asr"):
        asr_overhead(args)
    if args.what in ("all", "server"):
        server_overhead(args)
    if args.what in ("all", "batched"):
        batched_vs_llama_batched_bench(args)
    if args.what in ("all", "external"):
        external_server_energy(args)
    if args.what in ("all", "quality"):
        quality_vs_llama_perplexity(args)
    if args.what in ("all", "embed"):
        embed_vs_llama_server(args)
    if args.what in ("all", "synthetic"):
        synthetic_vs_llama_bench(args)
    if args.what in ("all", "report-memory"):
        report_memory(args)
    return 0


REPORT_MEMORY_TARGET_BYTES = 1 << 30
# the command in a child that prints its own peak resident memory last (KiB), whatever the command printed
_PEAK_RSS = """
import resource, runpy, sys
sys.argv = ["shadowbench", *sys.argv[1:]]
try:
    runpy.run_module("shadowbench", run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def report_memory(args) -> float:
    """Peak resident memory of `shadowbench report` on one results file of ``--mb`` MB (committed rows repeated),
    against the 1 GB target."""
    src = max((p for p in Path("results").glob("*/*.csv") if not p.name.endswith(".power.csv")),
              key=lambda p: p.stat().st_size, default=None)
    if src is None:
        console.print("report-memory: no committed results under results/ to repeat")
        return float("nan")
    header, *body = src.read_text().splitlines(keepends=True)
    with tempfile.TemporaryDirectory(prefix="shadowbench-perf-") as tmp:
        big = Path(tmp) / "results" / "box" / f"20261201T000000Z-{src.stem.split('-', 1)[1]}.csv"
        big.parent.mkdir(parents=True)
        target, size = args.mb * 1e6, 0
        chunk = "".join(body)
        with big.open("w") as f:
            f.write(header)
            while size < target:
                f.write(chunk)
                size += len(chunk)
        n = sum(1 for _ in big.open()) - 1
        console.print(f"report-memory: {big.stat().st_size / 1e6:.0f} MB, {n:,} rows (from {src})")
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _PEAK_RSS, "report", "--results-dir", str(big.parents[1])],
                             check=True, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak = int(out.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux
    ratio = peak / REPORT_MEMORY_TARGET_BYTES
    print_ratio_table("shadowbench report on a large results file", ("file MB", "rows", "peak GB", "wall s",
                                                                     "peak / 1 GB target"),
                      [f"{size / 1e6:.0f}", f"{n:,}", f"{peak / 1e9:.2f}", f"{wall:.0f}", f"{ratio:.2f}"])
    return ratio


SYNTH_SUITE = PERF_HEAD.replace("{name}", "perf-synthetic") + """
[[workloads]]
name = "synthetic"
kind = "llm"
model = "synthetic:{name}"
n_ctx = 512
tests = ["pp{pp}", "tg{tg}"]
"""


def synthetic_vs_llama_bench(args) -> float:
    """A synthetic-weights GGUF (Llama-3.1-8B Q4_K_M by default, generated once) under llama.cpp's own llama-bench
    and the harness, interleaved rounds: llama.cpp runs the file, and the harness reads what llama-bench reads.
    Short tests (pp64, tg16): an 8B model on a few CPU cores is slow."""
    from . import synthllm

    pp, tg = 64, 16
    model = synthllm.ensure(args.synthetic)
    exe = llamacpp.tool("llama-bench", log=console.print)
    samples: dict[str, dict[str, list[float]]] = {"llama-bench": {"pp": [], "tg": []}, "harness": {"pp": [], "tg": []}}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for test, v in run_llama_bench(exe, model, args.threads, args.reps, pp, tg).items():
                samples["llama-bench"][test[:2]] += v
            for r in harness_rows(Path(tmp) / f"r{rnd}", SYNTH_SUITE.format(
                    reps=args.reps, threads=args.threads, name=args.synthetic, pp=pp, tg=tg), metered=False):
                key = "pp" if r["test"].startswith("pp") else "tg"
                samples["harness"][key].append(float(r[f"{key}_tokens_per_s"]))
    table = Table(title=f"perf-check synthetic: synthetic:{args.synthetic} ({model.stat().st_size / 1e9:.2f} GB), "
                        f"{args.threads} threads, {args.rounds} rounds x {args.reps} reps (median tokens/s)")
    for col in ("test", "llama-bench", "harness", "harness/llama-bench"):
        table.add_column(col, justify="right")
    worst = 1e9
    for key, test in (("pp", f"pp{pp}"), ("tg", f"tg{tg}")):
        ref, got = statistics.median(samples["llama-bench"][key]), statistics.median(samples["harness"][key])
        worst = min(worst, got / ref)
        table.add_row(test, f"{ref:.2f}", f"{got:.2f}", f"{got / ref:.3f}")
    Console(width=140).print(table)
    return worst


def llm_vs_llama_bench(args) -> None:

    model = models.resolve(models.ModelRef("bundled", "smollm2"))
    exe = llamacpp.tool("llama-bench", log=console.print)
    console.print(f"model {model.name}, {args.threads} threads, flash attention on, flags: "
                  f"{' '.join(buildflags.cmake_args())}")
    tools = ("llama-bench", "bare loop", "harness", "harness inline")
    samples = {tool: {"pp512": [], "tg128": []} for tool in tools}
    skews: list[float] = []
    bare = BareLoop(model, args.threads)
    bare.pp(), bare.tg()  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(1, args.rounds + 1):
            console.print(f"round {rnd}/{args.rounds}")
            for k, v in run_llama_bench(exe, model, args.threads, args.reps).items():
                samples["llama-bench"][k] += v
            for _ in range(args.reps):
                samples["bare loop"]["pp512"].append(bare.pp())
                samples["bare loop"]["tg128"].append(bare.tg())
            for k, v in run_harness(Path(tmp) / f"r{rnd}", args.threads, args.reps, skews=skews).items():
                samples["harness"][k] += v
            for k, v in run_harness(Path(tmp) / f"i{rnd}", args.threads, args.reps, launcher="inline").items():
                samples["harness inline"][k] += v
    bare.close()

    med = {tool: {t: statistics.median(v) for t, v in d.items()} for tool, d in samples.items()}
    table = Table(title=f"perf-check: SmolLM2-135M Q4_1, {args.threads} threads, "
                        f"{args.rounds} rounds x {args.reps} reps (median tokens/s); harness: each workload in its "
                        "own process (the default), inline: in the harness process")
    for col in ("test", *tools, "harness/llama-bench", "harness/bare", "harness/inline", "µs/token over llama-bench"):
        table.add_column(col, justify="right")
    ok = True
    for t in ("pp512", "tg128"):
        r_lb = med["harness"][t] / med["llama-bench"][t]
        r_bare = med["harness"][t] / med["bare loop"][t]
        ok &= r_lb >= TARGET_LLAMA_BENCH and r_bare >= TARGET_BARE
        table.add_row(t, *(f"{med[tool][t]:.1f}" for tool in tools),
                      f"{r_lb:.3f}" + ("" if r_lb >= TARGET_LLAMA_BENCH else " (below 0.97)"),
                      f"{r_bare:.3f}" + ("" if r_bare >= TARGET_BARE else " (below 0.98)"),
                      f"{med['harness'][t] / med['harness inline'][t]:.3f}",
                      f"{overhead_us(med['harness'][t], med['llama-bench'][t]):+.1f}")
    Console(width=180).print(table)
    if skews:
        ms = sorted(1e3 * x for x in skews)
        print(f"window skew (the parent's metered span minus the child's timed window, {len(ms)} windows): median "
              f"{statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms; the child's window is the one priced")
    print("targets: harness/llama-bench >= 0.97, harness/bare >= 0.98: " + ("met" if ok else "NOT met"))


if __name__ == "__main__":
    sys.exit(main())
