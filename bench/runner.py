"""The runner: for each workload load its backend, warm up (not recorded), then measure N repetitions, each one
meter window and one CSV row written as soon as it is measured.

It receives its meter and output folder as arguments; it knows nothing about dollars. A workload that fails (model
missing, backend error) is reported and skipped; the other workloads still run and every row is kept.
"""
from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import SCHEMA_VERSION, fetch, models, provenance
from .backends import create as create_backend
from .config import Suite, Workload
from .errors import ShadowbenchError
from .meters import Meter
from .results import ResultWriter, new_result_path

# throughput-like columns summarised per test and checked for spread
SUMMARY_METRICS = ["pp_tokens_per_s", "tg_tokens_per_s", "agg_tokens_per_s", "ttft_s", "ttft_p95_s", "failed", "rtf", "chars_per_s", "ttfa_s", "wer",
                   "s_per_image", "it_per_s", "wall_s", "energy_j"]
CV_METRICS = ["pp_tokens_per_s", "tg_tokens_per_s", "rtf", "chars_per_s", "s_per_image", "wall_s"]


@dataclass
class RunOutcome:
    path: Path
    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (workload/test, message)
    warnings: list[str] = field(default_factory=list)
    exit_status: int = 0  # the highest exit status of the failures (2: bad input; 1: a backend failed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (workload, why): will not fit this box


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (sample stdev / mean); None with fewer than 2 values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def _window_columns(w) -> dict:
    return {"wall_s": w.duration_s, "energy_j": w.energy_j, "energy_source": w.energy_source,
            "gpu_energy_j": w.gpu_energy_j, "gpu_energy_source": w.gpu_energy_source,
            "cpu_energy_j": w.cpu_energy_j, "cpu_energy_source": w.cpu_energy_source,
            "avg_power_w": w.avg_power_w, "peak_power_w": w.peak_power_w, "flags": ";".join(w.flags),
            **w.extra}


class Runner:
    def __init__(self, suite: Suite, meter: Meter, results_dir: Path, machine: str, gpus: list[dict],
                 console: Console | None = None, show_progress: bool = True, idle_s: float | None = None):
        self.suite, self.meter, self.machine, self.gpus = suite, meter, machine, gpus
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.show_progress = show_progress
        now = datetime.now(timezone.utc)
        self.stamp = now.strftime("%Y%m%dT%H%M%SZ")
        self.run_id = f"{self.stamp}-{uuid.uuid4().hex[:6]}"
        self.base = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "machine": machine,
                     "suite": suite.name, "suite_version": suite.version,
                     "run_started_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), **provenance.collect(gpus)}
        self.path = new_result_path(results_dir, machine, self.stamp, suite.name)
        self.idle_s = suite.energy.idle_s if idle_s is None else idle_s
        self.idle_power_w: float | None = None

    def run(self) -> RunOutcome:
        total = sum(len(w.tests) * (w.warmups + w.repetitions) for w in self.suite.workloads)
        with ResultWriter(self.path) as writer:
            outcome = RunOutcome(writer.path)
            if hasattr(self.meter, "start"):  # the sampler and the run's power series
                self.meter.start(writer.path.with_suffix(".power.csv"))
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                                disable=not self.show_progress, transient=False)
            with progress:
                self._measure_idle(progress)
                task = progress.add_task(f"{self.suite.name}", total=total)
                for workload in self.suite.workloads:
                    self._run_workload(workload, writer, outcome, progress, task)
        return outcome

    def _measure_idle(self, progress) -> None:
        """Idle baseline before the suite: rows carry gross energy, idle-subtracted net energy and these watts."""
        if self.idle_s <= 0 or self.meter.name == "none":
            return
        task = progress.add_task(f"idle baseline ({self.idle_s:g} s)", total=self.idle_s)
        self.meter.begin("idle")
        t0 = time.perf_counter()
        while (left := self.idle_s - (time.perf_counter() - t0)) > 0:
            time.sleep(min(0.1, left))
            progress.update(task, completed=min(self.idle_s, time.perf_counter() - t0))
        w = self.meter.end("idle")
        if w.energy_j is not None and w.duration_s > 0:
            self.idle_power_w = w.energy_j / w.duration_s
            self.console.print(f"idle power: {self.idle_power_w:.2f} W over {w.duration_s:.1f} s ({w.energy_source})")
        progress.remove_task(task)

    def _run_workload(self, w: Workload, writer: ResultWriter, outcome: RunOutcome, progress, task) -> None:
        steps = len(w.tests) * (w.warmups + w.repetitions)
        progress.update(task, description=f"{w.name}: loading")
        try:
            if w.model.source == "hf":  # before anything downloads or loads: disk and memory
                n = fetch.need(w.kind, w.model, dict(w.params))
                why = fetch.fit_reason(w.kind, n, dict(w.params), self.gpus, float(provenance.ram_gb()))
                if why:
                    outcome.skipped.append((w.name, why))
                    self.console.print(f"[yellow]skipped[/yellow] workload {w.name}: {w.model.label()} will not fit: "
                                       f"{why}")
                    progress.advance(task, steps)
                    return
                fetch.check_disk(n)
                if n.download_bytes:
                    self.console.print(f"{w.name}: downloading {w.model.label()} ({n.download_bytes / 1e9:.2f} GB) "
                                       "into the Hugging Face cache")
            model_path = models.resolve(w.model)
            sha = models.sha256(model_path) if model_path is not None else ""
            backend = create_backend(w, model_path)
            backend.load()
        except ShadowbenchError as e:
            outcome.failures.append((w.name, str(e)))
            outcome.exit_status = max(outcome.exit_status, e.exit_status)
            self.console.print(f"[red]error[/red] workload {w.name}: {e}; skipping it")
            progress.advance(task, steps)
            return
        try:
            settings = backend.settings()
            for test in w.tests:
                self._run_test(w, test, backend, sha, settings, writer, outcome, progress, task)
        finally:
            backend.unload()

    def _run_test(self, w, test, backend, sha, settings, writer, outcome, progress, task) -> None:
        try:
            backend.prepare(test)
            for i in range(w.warmups):
                progress.update(task, description=f"{w.name} {test}: warmup {i + 1}/{w.warmups}")
                backend.run(test)
                progress.advance(task)
        except ShadowbenchError as e:
            outcome.failures.append((f"{w.name}/{test}", str(e)))
            outcome.exit_status = max(outcome.exit_status, e.exit_status)
            self.console.print(f"[red]error[/red] {w.name} {test}: {e}; skipping it")
            progress.advance(task, w.warmups + w.repetitions)
            return
        rows = []
        for rep in range(1, w.repetitions + 1):
            progress.update(task, description=f"{w.name} {test}: repetition {rep}/{w.repetitions}")
            key = f"{w.name}/{test}/{rep}"
            utc = provenance.utc_now()
            self.meter.begin(key)
            try:
                metrics = backend.run(test)
            except ShadowbenchError as e:
                self.meter.end(key)
                outcome.failures.append((f"{w.name}/{test}", str(e)))
                outcome.exit_status = max(outcome.exit_status, e.exit_status)
                self.console.print(f"[red]error[/red] {w.name} {test} repetition {rep}: {e}; skipping the test")
                progress.advance(task, w.repetitions - rep + 1)
                break
            window = self.meter.end(key)
            checks = backend.check(test) if hasattr(backend, "check") else {}  # after the window: not timed
            energy = _window_columns(window)
            if window.energy_j is not None and metrics.get("output_tokens"):
                energy["j_per_output_token"] = window.energy_j / metrics["output_tokens"]
            if self.idle_power_w is not None:
                energy["idle_power_w"] = self.idle_power_w
                if window.energy_j is not None:
                    energy["net_energy_j"] = window.energy_j - self.idle_power_w * window.duration_s
            row = {**self.base, "workload": w.name, "test": test, "kind": w.kind, "backend": backend.name,
                   "model": w.model.label(), "model_sha256": sha, "repetition": rep, "utc_time": utc,
                   "warmups": w.warmups, **settings, **energy, **metrics, **checks}
            writer.write(row)
            rows.append(row)
            outcome.rows.append(row)
            progress.advance(task)
        for metric in CV_METRICS:
            vals = [float(r[metric]) for r in rows if r.get(metric) not in (None, "")]
            c = cv(vals)
            if c is not None and c > w.cv_warn:
                msg = (f"{w.name} {test}: {metric} varies by {c:.1%} (coefficient of variation over {len(vals)} "
                       f"repetitions, above {w.cv_warn:.0%}): the box was busy or throttling; more repetitions help")
                outcome.warnings.append(msg)
                self.console.print(f"[yellow]warning[/yellow] {msg}")


def summary_table(rows: list[dict]) -> Table:
    """Median and spread (min, max, coefficient of variation) per workload, test and metric."""
    table = Table(title="shadowbench summary")
    for col, just in (("workload", "left"), ("test", "left"), ("metric", "left"), ("n", "right"),
                      ("median", "right"), ("min", "right"), ("max", "right"), ("cv", "right")):
        table.add_column(col, justify=just)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["workload"], r["test"]), []).append(r)
    for (wname, test), rs in groups.items():
        first = True
        for m in SUMMARY_METRICS:
            vals = [float(r[m]) for r in rs if r.get(m) not in (None, "")]
            if not vals:
                continue
            c = cv(vals)
            table.add_row(wname if first else "", test if first else "", m, str(len(vals)),
                          f"{statistics.median(vals):.4g}", f"{min(vals):.4g}", f"{max(vals):.4g}",
                          f"{c:.1%}" if c is not None else "")
            first = False
    return table
