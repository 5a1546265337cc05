"""`make gpu-check`: does this NVIDIA box work, and does the harness read what llama.cpp and the driver read?

In one go, with no network (the suite's models are synthetic weights generated here), it runs:
  1. `shadowbench doctor` (each engine asked in its own process, and the CUDA libraries each loads);
  2. `shadowbench run suites/gpu-synthetic.toml` (a Llama-3.1-8B-shaped Q4_K_M GGUF and the SD 1.5 shapes, each
     workload in its own process, the NVML energy counter read by the harness);
  3. llama.cpp's own ``llama-bench`` (pp512, tg128) and ``llama-batched-bench`` (8 sequences) on the same GGUF with
     the same layers on the GPU, flash attention and threads;
while ``nvidia-smi`` samples the card's power at 10 Hz beside everything, independently of the harness. It prints
(and writes to ``--out``) the ratios: harness / llama-bench for pp512 and tg128 (target 0.97-1.03), harness /
llama-batched-bench at 8 sequences (target >= 0.95), and for every row of 1 s or more the NVML counter's average
power / nvidia-smi's sampled average over the same window (target within 10%). Exit 1 when a target is missed or a
workload failed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "suites" / "gpu-synthetic.toml"
LLAMA_BENCH_BAND = (0.97, 1.03)
BATCHED_MIN = 0.95
POWER_TOLERANCE = 0.10
MIN_WINDOW_S = 1.0


class NvidiaSmi:
    """nvidia-smi sampling the cards' power every 100 ms in its own process: (UTC seconds, W summed over cards)."""

    FIELDS = ("power.draw.instant", "power.draw")

    def __init__(self, log: Path):
        self.log, self.samples, self.proc, self.field = log, [], None, ""
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return False
        for f in self.FIELDS:  # the instantaneous field where the driver has it (R535+), else the 1 s average
            probe = subprocess.run([exe, f"--query-gpu={f}", "--format=csv,noheader,nounits"], capture_output=True,
                                   text=True)
            if probe.returncode == 0 and probe.stdout.strip() and "Not Supported" not in probe.stdout:
                self.field = f
                break
        else:
            return False
        self.proc = subprocess.Popen([exe, f"--query-gpu=timestamp,index,{self.field}", "--format=csv,noheader,nounits",
                                      "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return True

    def _read(self) -> None:
        by_stamp: dict[str, float] = {}
        with open(self.log, "w") as f:
            for line in self.proc.stdout:
                f.write(line)
                parts = [p.strip() for p in line.split(",")]
                if len(parts) != 3:
                    continue
                try:  # the driver's local time stamp -> UTC seconds
                    t = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").astimezone(timezone.utc).timestamp()
                    w = float(parts[2])
                except ValueError:
                    continue
                by_stamp[parts[0]] = by_stamp.get(parts[0], 0.0) + w
                self.samples.append((t, by_stamp[parts[0]]))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def mean_w(self, t0: float, t1: float) -> float | None:
        """Mean sampled power over [t0, t1] (UTC seconds), None with fewer than 5 samples in it."""
        last: dict[float, float] = {}
        for t, w in self.samples:  # the last (summed) reading per time stamp
            if t0 <= t <= t1:
                last[t] = w
        return statistics.fmean(last.values()) if len(last) >= 5 else None


def _utc(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _median(rows, test, col):
    vals = [float(r[col]) for r in rows if r["test"] == test and r.get(col) not in (None, "")]
    return statistics.median(vals) if vals else None


def llama_bench(exe: Path, model: Path, threads: int, ngl: int, reps: int, env) -> dict[str, float]:
    out = subprocess.run([str(exe), "-m", str(model), "-t", str(threads), "-ngl", str(ngl), "-p", "512", "-n", "128",
                          "-r", str(reps), "-fa", "on", "-o", "json"], check=True, capture_output=True, text=True,
                         env=env, timeout=900)
    res = {}
    for r in json.loads(out.stdout):
        res["pp512" if r["n_gen"] == 0 else "tg128"] = float(r["avg_ts"])
    return res


def batched_bench(exe: Path, model: Path, threads: int, ngl: int, env) -> dict[int, float]:
    out = subprocess.run([str(exe), "-m", str(model), "-c", str(8 * 640), "-b", "2048", "-ub", "512", "-npp", "512",
                          "-ntg", "128", "-npl", "1,8", "-t", str(threads), "-ngl", str(ngl), "-fa", "on",
                          "--output-format", "jsonl"], check=True, capture_output=True, text=True, env=env,
                         timeout=900)
    from .perfcheck import speed_tg_by_pl

    return speed_tg_by_pl(out.stdout + out.stderr)


def main(argv: list[str] | None = None) -> int:
    from . import llamacpp, models
    from .config import load_suite
    from .results import read_rows

    ap = argparse.ArgumentParser(prog="python -m bench.gpucheck", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="folder for the rows, logs and the summary (default: a new one "
                    "under the cache)")
    ap.add_argument("--suite", default=str(SUITE), help="the suite (default suites/gpu-synthetic.toml)")
    ap.add_argument("--reps", type=int, default=5, help="llama-bench repetitions")
    ap.add_argument("--idle-s", default="5")
    args = ap.parse_args(argv)
    from .cache import cache_dir

    out = Path(args.out) if args.out else cache_dir("gpu-check") / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    summary: list[str] = [f"# gpu-check {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", ""]
    failed: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        summary.append(line)

    py = [sys.executable, "-m", "shadowbench"]
    r = subprocess.run([*py, "doctor"], capture_output=True, text=True, cwd=REPO, timeout=900)
    (out / "doctor.txt").write_text(r.stdout + r.stderr)
    say("## doctor (exit %d)" % r.returncode)
    say("```")
    say(r.stdout.strip())
    say("```")

    suite = load_suite(args.suite)
    llm = next(w for w in suite.workloads if w.kind == "llm")
    t = time.perf_counter()
    model = models.resolve(llm.model)  # a synthetic file is written here, once, before anything is timed
    say(f"model {llm.model.label()}: {model} ({model.stat().st_size:,} bytes, ready in "
        f"{time.perf_counter() - t:.1f} s)")

    smi = NvidiaSmi(out / "nvidia-smi-power.csv")
    sampling = smi.start()
    say(f"nvidia-smi power sampling: {'every 100 ms, ' + smi.field if sampling else 'not available on this box'}")
    try:
        t = time.perf_counter()
        r = subprocess.run([*py, "run", args.suite, "--results-dir", str(out / "results"), "--machine", "gpu-check",
                            "--no-progress", "--idle-s", args.idle_s], capture_output=True, text=True, cwd=REPO,
                           timeout=3600)
        (out / "run.log").write_text(r.stdout + r.stderr)
        say(f"## shadowbench run {Path(args.suite).name}: exit {r.returncode} in {time.perf_counter() - t:.0f} s")
        say("```")
        say("\n".join(ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip())[-6000:])
        say("```")
        if r.returncode != 0:
            failed.append(f"shadowbench run exited {r.returncode}")
        files = sorted(p for p in (out / "results").rglob("*.csv") if not p.name.endswith(".power.csv"))
        rows = read_rows(files[-1]) if files else []
        threads, ngl = llm.threads, llm.params.get("n_gpu_layers", -1)
        ngl = 99 if ngl in (-1, "fit") else ngl
        env = llamacpp.env()
        ref, batched = {}, {}
        try:
            ref = llama_bench(llamacpp.tool("llama-bench"), model, threads, ngl, args.reps, env)
            batched = batched_bench(llamacpp.tool("llama-batched-bench"), model, threads, ngl, env)
        except Exception as e:  # noqa: BLE001 - the rest of the check still says what it can
            failed.append(f"llama.cpp's tools: {type(e).__name__}: {e}")
            say(f"llama.cpp's tools failed: {type(e).__name__}: {e}")
    finally:
        smi.stop()

    say("")
    say("## harness / llama.cpp")
    say("| test | harness | llama.cpp | ratio | target |")
    say("|---|---|---|---|---|")
    llm_rows = [x for x in rows if x["kind"] == "llm"]
    for test, col in (("pp512", "pp_tokens_per_s"), ("tg128", "tg_tokens_per_s")):
        h, ref_v = _median(llm_rows, test, col), ref.get(test)
        ratio = h / ref_v if h and ref_v else None
        ok = ratio is not None and LLAMA_BENCH_BAND[0] <= ratio <= LLAMA_BENCH_BAND[1]
        if not ok:
            failed.append(f"{test}: harness / llama-bench {ratio}")
        say(f"| {test} (llama-bench) | {h or 0:.1f} | {ref_v or 0:.1f} | {ratio or 0:.3f} | "
            f"{LLAMA_BENCH_BAND[0]}-{LLAMA_BENCH_BAND[1]}{'' if ok else ' MISSED'} |")
    h8 = _median(llm_rows, "pp512+tg128x8", "tg_tokens_per_s")
    r8 = batched.get(8)
    ratio8 = h8 / r8 if h8 and r8 else None
    ok8 = ratio8 is not None and ratio8 >= BATCHED_MIN
    if not ok8:
        failed.append(f"8 sequences: harness / llama-batched-bench {ratio8}")
    say(f"| 8 sequences, aggregate tg (llama-batched-bench) | {h8 or 0:.1f} | {r8 or 0:.1f} | {ratio8 or 0:.3f} | "
        f">= {BATCHED_MIN}{'' if ok8 else ' MISSED'} |")
    devices = sorted({x.get("device", "") for x in llm_rows})
    say(f"LLM rows: {len(llm_rows)}, device {', '.join(devices) or 'none'}; image rows: "
        f"{sum(1 for x in rows if x['kind'] == 'image')}")

    say("")
    say("## NVML energy counter / nvidia-smi sampled power (rows of 1 s or more)")
    say("| workload | test | rep | wall s | counter W | sampled W | ratio |")
    say("|---|---|---|---|---|---|---|")
    ratios = []
    for x in rows:
        wall = float(x["wall_s"])
        counter = x.get("gpu_energy_counter_j")
        if wall < MIN_WINDOW_S or counter in (None, "") or not sampling:
            continue
        t0 = _utc(x["utc_time"])
        sampled = smi.mean_w(t0, t0 + wall)
        cw = float(counter) / wall
        ratio = cw / sampled if sampled else None
        if ratio is not None:
            ratios.append(ratio)
        say(f"| {x['workload']} | {x['test']} | {x['repetition']} | {wall:.2f} | {cw:.1f} | "
            f"{sampled or 0:.1f} | {ratio or 0:.3f} |")
    if ratios:
        say(f"counter / sampled: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f} "
            f"over {len(ratios)} windows")
        if abs(statistics.median(ratios) - 1) > POWER_TOLERANCE:
            failed.append(f"counter / sampled power {statistics.median(ratios):.3f}")
    elif sampling:
        failed.append("no window to set the counter against sampled power")
    say("")
    say("verdict: " + ("PASS" if not failed else "FAIL: " + "; ".join(failed)))
    (out / "gpu-check.md").write_text("\n".join(summary) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
