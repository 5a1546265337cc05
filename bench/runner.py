"""The runner: for each workload load its backend, warm up (not recorded), then measure N repetitions, each one
meter window and one CSV row written as soon as it is measured.

It receives its meter and output folder as arguments; it knows nothing about dollars. A workload that fails (model
missing, backend error) is reported and skipped; the other workloads still run and every row is kept.
"""
from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import columns, fetch, kinds, launcher, models, provenance, signals
from .columns import SCHEMA_VERSION
from .config import Suite, Workload
from .energy import Meter
from .energy.base import Scope
from .errors import BackendError, DeviceUnavailable, GPURequired, ShadowbenchError
from .results import ResultWriter, new_result_path


@dataclass
class RunOutcome:
    path: Path
    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (workload/test, message)
    warnings: list[str] = field(default_factory=list)
    exit_status: int = 0  # the highest exit status of the failures (2: bad input; 1: a backend failed)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (workload, why): will not fit this box
    skews_s: list[float] = field(default_factory=list)  # per row: the parent's span minus the child's window


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (sample stdev / mean); None with fewer than 2 values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean else None


def contained(e: Exception) -> ShadowbenchError:
    """Any exception of a backend as a ShadowbenchError naming what failed and the original error type; a
    ShadowbenchError is kept as it is (its exit status says whether it was bad input)."""
    if isinstance(e, ShadowbenchError):
        return e
    err = BackendError(f"{type(e).__name__}: {e}")
    err.__cause__ = e
    return err


class Runner:
    """Runs a suite. ``create_backend`` (workload, model path) -> backend is the kinds' registry by default; tests
    pass a fake. ``launcher``: "process" runs each workload's backend in its own child process (bench/launcher.py;
    the factory must then be importable by name), "inline" in this one."""

    def __init__(self, suite: Suite, meter: Meter, results_dir: Path, machine: str, gpus: list[dict],
                 console: Console | None = None, show_progress: bool = True, idle_s: float | None = None,
                 create_backend=kinds.create_backend, nvml_module=None, launcher: str = launcher.DEFAULT_MODE):
        self.suite, self.meter, self.machine, self.gpus = suite, meter, machine, gpus
        self.create_backend = create_backend
        if launcher not in launcher_modes():
            raise ValueError(f"launcher: one of {', '.join(launcher_modes())}, not {launcher!r}")
        self.launcher = launcher
        self._refused: set[str] = set()
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
        self.nvml_module = nvml_module
        # (each card's limit W, the rows' power-limit columns) per pass: one pass at no set limit outside a sweep
        self._limits: list[tuple[tuple[float, ...] | None, dict]] = [(None, {})]
        self._nvml = None
        self._cards: list = []
        self.wall_idle_power_w: float | None = None

    def _open_sweep(self) -> None:
        """The sweep's limits per card, from NVML: before anything is measured (bad limits stop the run here)."""
        from . import powerlimit
        from .energy.nvml import NVML

        self._nvml = NVML.open(self.nvml_module)
        self._cards = powerlimit.cards(self._nvml)
        sw = self.suite.sweep
        per_card = [powerlimit.resolve(sw.power_limit_w, sw.power_limit_pct, c) for c in self._cards]
        c0 = self._cards[0]
        self._limits = [(watts, {"power_limit_w": watts[0], "power_limit_min_w": c0.min_w,
                                 "power_limit_default_w": c0.default_w, "power_limit_max_w": c0.max_w})
                        for watts in zip(*per_card)]
        self.console.print(f"power-limit sweep on {c0.name}: " + ", ".join(f"{w[0]:g} W" for w, _ in self._limits)
                           + f" (allowed {c0.min_w:g}–{c0.max_w:g} W, default {c0.default_w:g} W, now "
                           f"{c0.current_w:g} W: put back at the end)", highlight=False)

    def _set_limit(self, watts: tuple[float, ...], progress, task) -> None:
        from . import powerlimit

        for card, w in zip(self._cards, watts):
            powerlimit.set_limit(self._nvml, card, w, self._cards)
        settle = self.suite.sweep.settle_s
        t0 = time.perf_counter()
        progress.update(task, description=f"settling at {watts[0]:g} W ({settle:g} s)")
        while time.perf_counter() - t0 < settle:
            time.sleep(min(0.1, settle))
            signals.check()

    def _close_sweep(self) -> None:
        from . import powerlimit

        if self._nvml is None:
            return
        try:
            for line in powerlimit.restore(self._nvml, mine=True):
                self.console.print(line, highlight=False)
        finally:
            self._nvml.close()
            self._nvml = None

    def run(self) -> RunOutcome:
        try:
            if self.suite.sweep is not None:
                self._open_sweep()
            return self._run()
        finally:
            self._close_sweep()  # normal end, a failed workload, Ctrl-C, SIGTERM: the original limit goes back

    def _run(self) -> RunOutcome:
        total = sum(kinds.steps(w) for w in self.suite.workloads) * len(self._limits)
        writer = ResultWriter(self.path)
        self.path = writer.path  # the file actually created (a same-second run gets ~2)
        try:
            with writer:
                self.console.print(f"rows go to {escape(str(writer.path))}", highlight=False)
                outcome = RunOutcome(writer.path)
                if hasattr(self.meter, "start"):  # the sampler and the run's power series
                    self.meter.start(writer.path.with_suffix(".power.csv"))
                progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                                    disable=not self.show_progress, transient=False)
                with progress:
                    self._preflight(outcome)  # unreachable servers are found before the idle baseline
                    if len(self._refused) < len(self.suite.workloads):  # something is left to measure
                        self._measure_idle(progress)
                    task = progress.add_task(f"{self.suite.name}", total=total)
                    for workload in self.suite.workloads:
                        if workload.name in self._refused:
                            progress.advance(task, kinds.steps(workload) * len(self._limits))
                            continue
                        self._run_workload(workload, writer, outcome, progress, task)
        finally:
            if writer.rows == 0:  # a run that measured nothing (or was stopped first) leaves no file behind
                self._remove_empty(writer.path)
                self.path = None
        return outcome

    def _remove_empty(self, path: Path) -> None:
        if hasattr(self.meter, "close_log"):
            self.meter.close_log()
        for p in (path, path.with_suffix(".power.csv")):
            p.unlink(missing_ok=True)

    def _preflight(self, outcome: RunOutcome) -> None:
        """A kind's checks that need no model loaded (an endpoint's server answers), before anything is measured."""
        for w in self.suite.workloads:
            check = getattr(kinds.get(w.kind), "preflight", None)
            if check is None:
                continue
            try:
                check(w)
            except ShadowbenchError as e:
                self._refused.add(w.name)
                self._fail(outcome, w.name, e, "skipping the workload")

    def _measure_idle(self, progress) -> None:
        """Idle baseline before the suite: rows carry gross energy, idle-subtracted net energy and these watts."""
        if self.idle_s <= 0 or self.meter.name == "none":
            return
        task = progress.add_task(f"idle baseline ({self.idle_s:g} s)", total=self.idle_s)
        self.meter.begin("idle")
        t0 = time.perf_counter()
        while (left := self.idle_s - (time.perf_counter() - t0)) > 0:
            time.sleep(min(0.1, left))
            signals.check()
            progress.update(task, completed=min(self.idle_s, time.perf_counter() - t0))
        w = self.meter.end("idle")
        wall_j = w.extra.get("wall_energy_j")
        if wall_j is not None and w.duration_s > 0:
            self.wall_idle_power_w = wall_j / w.duration_s
            self.console.print(f"idle power at the wall: {self.wall_idle_power_w:.2f} W ({w.extra.get('wall_source')})")
        if w.energy_j is not None and w.duration_s > 0:
            self.idle_power_w = w.energy_j / w.duration_s
            self.console.print(f"idle power: {self.idle_power_w:.2f} W over {w.duration_s:.1f} s ({w.energy_source})")
        progress.remove_task(task)

    def _fail(self, outcome: RunOutcome, what: str, e: Exception, consequence: str) -> None:
        err = contained(e)
        outcome.failures.append((what, str(err)))
        outcome.exit_status = max(outcome.exit_status, err.exit_status)
        self.console.print(f"[red]error[/red] {escape(what)}: {escape(str(err))}; {consequence}", highlight=False)

    def _run_workload(self, w: Workload, writer: ResultWriter, outcome: RunOutcome, progress, task) -> None:
        steps = kinds.steps(w) * len(self._limits)
        progress.update(task, description=f"{escape(w.name)}: loading")
        backend = None
        try:
            if w.require_gpu:  # before anything downloads or loads: a GPU suite never runs on the CPU by surprise
                from . import doctor

                if why := doctor.gpu_refusal(w.kind, dict(w.params)):
                    raise GPURequired(f"require_gpu, but it would run on the CPU: {why}")
            if fetch.sized(w.model):  # before anything downloads, is generated or loads: disk and memory
                n = fetch.need(w.kind, w.model, dict(w.params))
                why = fetch.fit_reason(w.kind, n, dict(w.params), self.gpus, provenance.ram_gib())
                if why:
                    outcome.skipped.append((w.name, why))
                    self.console.print(f"[yellow]skipped[/yellow] workload {escape(w.name)}: {escape(w.model.label())} "
                                       "will not fit: "
                                       f"{why}")
                    progress.advance(task, steps)
                    return
                fetch.check_disk(n)
                if n.download_bytes:
                    self.console.print(f"{escape(w.name)}: downloading {escape(w.model.label())} "
                                       f"({n.download_bytes / 1e9:.2f} GB) "
                                       "into the Hugging Face cache")
            model_path = models.resolve(w.model)
            sha = models.sha256(model_path) if model_path is not None else ""
            size = model_path.stat().st_size if model_path is not None and model_path.is_file() else None
            split: dict = {}
            if w.params.get("n_gpu_layers") == "fit":  # partial offload: the layers that fit, from the file
                w, split = self._fit_layers(w, model_path)
            backend = (launcher.ChildBackend(self.create_backend, w, model_path) if self.launcher == "process"
                       else self.create_backend(w, model_path))
            self.console.print(f"{escape(w.name)}: loading {escape(w.model.label())}", highlight=False)
            backend.load()
            signals.check()  # a Ctrl-C during a load inside C code may have been swallowed there
            settings = backend.settings()
            if w.require_gpu and settings.get("device", "cuda") != "cuda":
                raise GPURequired(f"require_gpu, but {w.name} loaded on {settings.get('device')}")
            if hasattr(backend, "energy_scope") and hasattr(self.meter, "track"):
                self.meter.track(backend.energy_scope())  # a local server's work counts; a remote one's is not here
        except Exception as e:  # noqa: BLE001 - any backend failure is contained; Ctrl-C is not an Exception
            self._fail(outcome, w.name, e, "skipping the workload")
            progress.advance(task, steps)
            self._unload(w, backend, outcome)
            return
        settings = {**settings, "model_bytes": size, **split}
        try:
            for watts, limit_cols in self._limits:
                if watts is not None:
                    self._set_limit(watts, progress, task)
                for i, test in enumerate(w.tests):
                    if not self._run_test(w, test, backend, sha, {**settings, **limit_cols}, writer, outcome,
                                          progress, task):  # the engine's process died: nothing left to ask it
                        progress.advance(task, sum(sum(kinds.runs(w, t)) for t in w.tests[i + 1:]))
                        return
        finally:
            self._unload(w, backend, outcome)

    def _fit_layers(self, w: Workload, model_path: Path) -> tuple[Workload, dict]:
        """n_gpu_layers = "fit": the top layers that fit in the GPU memory free now with their KV cache, from the
        GGUF's own tensor table; the rest must fit in RAM. No GPU: every layer on the CPU (0)."""
        if not self.gpus:
            return replace(w, params=MappingProxyType({**w.params, "n_gpu_layers": 0})), {}
        s = fetch.file_split(model_path, w.params.get("arch") or {}, w.params.get("n_ctx", 2048),
                             fetch.gpu_free_bytes(self.gpus))
        if why := fetch.split_ram_reason(s, provenance.ram_gib() * 2**30):
            raise DeviceUnavailable(why)
        self.console.print(f"{escape(w.name)}: {s.detail}", highlight=False)
        return (replace(w, params=MappingProxyType({**w.params, "n_gpu_layers": s.n_gpu_layers})),
                {"gpu_bytes": s.gpu_bytes, "ram_bytes": s.ram_bytes, "layers_on_gpu": s.layers_on_gpu,
                 "n_layers": s.n_layers})

    def _unload(self, w: Workload, backend, outcome: RunOutcome) -> None:
        if hasattr(self.meter, "track"):
            self.meter.track(Scope())
        if backend is None:
            return
        try:
            backend.unload()
        except Exception as e:  # noqa: BLE001
            self._fail(outcome, f"{w.name} (unload)", e, "going on with the next workload")

    def _run_test(self, w, test, backend, sha, settings, writer, outcome, progress, task) -> bool:
        """One test's warm-ups and repetitions; False when the engine's process died (the workload is over)."""
        what = f"{w.name}/{test}"
        warmups, repetitions = kinds.runs(w, test)
        try:
            _phase(backend, f"preparing test {test}")
            backend.prepare(test)
            signals.check()
            for i in range(warmups):
                progress.update(task, description=f"{escape(w.name)} {escape(test)}: warmup {i + 1}/{warmups}")
                _phase(backend, f"running test {test} warmup {i + 1}")
                backend.run(test)
                signals.check()
                progress.advance(task)
        except Exception as e:  # noqa: BLE001
            dead = isinstance(e, launcher.ChildDied)
            self._fail(outcome, what, e, "skipping the rest of the workload" if dead else "skipping the test")
            progress.advance(task, warmups + repetitions)
            return not dead
        rows = []
        alive = True
        for rep in range(1, repetitions + 1):
            progress.update(task, description=f"{escape(w.name)} {escape(test)}: repetition {rep}/{repetitions}")
            key = f"{w.name}/{test}/{rep}"
            utc = provenance.utc_now()
            _phase(backend, f"running test {test} repetition {rep}")
            self.meter.begin(key)
            try:
                metrics = backend.run(test)
            except Exception as e:  # noqa: BLE001
                self.meter.end(key)  # the window is closed; its energy belongs to no row
                alive = not isinstance(e, launcher.ChildDied)
                self._fail(outcome, f"{what} repetition {rep}", e,
                           "skipping the rest of the test" if alive else "skipping the rest of the workload")
                progress.advance(task, repetitions - rep + 1)
                break
            edges = getattr(backend, "last_edges", None)  # a child's exact window on the meter's clock
            window = self.meter.end(key, edges) if edges is not None else self.meter.end(key)
            if window.skew_s is not None:
                outcome.skews_s.append(window.skew_s)
            signals.check()  # before the row is written: a row after a stop signal is never written
            checks, check_error = {}, None
            if hasattr(backend, "check"):  # after the window: not timed
                try:
                    _phase(backend, f"checking test {test} repetition {rep}")
                    checks = backend.check(test)
                except Exception as e:  # noqa: BLE001 - the measurement stands; the check is named as failed
                    check_error = e
                signals.check()
            row = {**self.base, "workload": w.name, "test": test, "kind": w.kind, "backend": backend.name,
                   "model": w.model.label(), "model_sha256": sha, "repetition": rep, "utc_time": utc,
                   "warmups": warmups, "idle_power_w": self.idle_power_w,
                   "wall_idle_power_w": self.wall_idle_power_w, **settings, **window.columns(),
                   **metrics, **checks}
            row = columns.derive(row)
            writer.write(row)
            rows.append(row)
            outcome.rows.append(row)
            progress.advance(task)
            problem = getattr(kinds.get(w.kind), "problem", None)
            if problem is not None and (why := problem(metrics)):
                self._fail(outcome, f"{what} repetition {rep}", BackendError(why), "the row is kept")
            if check_error is not None:
                alive = not isinstance(check_error, launcher.ChildDied)
                self._fail(outcome, f"{what} repetition {rep} (check)", check_error,
                           "the row is kept without it; skipping the rest of the "
                           + ("test" if alive else "workload"))
                progress.advance(task, repetitions - rep)
                break
        for metric in columns.spread():
            vals = [float(r[metric]) for r in rows if r.get(metric) not in (None, "")]
            c = cv(vals)
            if c is not None and c > w.cv_warn:
                msg = (f"{w.name} {test}: {metric} varies by {c:.1%} (coefficient of variation over {len(vals)} "
                       f"repetitions, above {w.cv_warn:.0%}): the box was busy or throttling; more repetitions help")
                outcome.warnings.append(msg)
                self.console.print(f"[yellow]warning[/yellow] {escape(msg)}")
        return alive


def launcher_modes() -> tuple[str, ...]:
    return launcher.MODES


def _phase(backend, text: str) -> None:
    """What the backend is doing now, for the message if its process dies there (a child backend only)."""
    if isinstance(backend, launcher.ChildBackend):
        backend.phase = text


def _energy_parts(rs: list[dict]) -> list[tuple[str, list[float], bool]]:
    """(GPU/CPU, values, estimated) where the rows' energy has both parts and only some are estimated."""
    out = []
    for d in ("gpu", "cpu"):
        vals = [float(r[f"{d}_energy_j"]) for r in rs if r.get(f"{d}_energy_j") not in (None, "")]
        if vals:
            out.append((d.upper(), vals, any("estimated" in str(r.get(f"{d}_energy_source", "")) for r in rs)))
    return out if len(out) == 2 and len({est for _, _, est in out}) == 2 else []


def summary_tables(rows: list[dict]) -> list[Table]:
    """Per workload: median and spread (min, max, coefficient of variation) per test and summarised metric, with
    its unit; estimated energy tagged. Narrow enough for 80 columns."""
    by_workload: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_workload.setdefault(r["workload"], {}).setdefault(r["test"], []).append(r)
    reg = columns.registry()
    tables = []
    for wname, tests in by_workload.items():
        n = max(len(rs) for rs in tests.values())
        table = Table(title=f"{escape(wname)} ({n} repetitions)", title_justify="left")
        for col, just in (("test", "left"), ("metric", "left"), ("unit", "left"), ("median", "right"),
                          ("min", "right"), ("max", "right"), ("cv", "right")):
            table.add_column(col, justify=just)
        for test, rs in tests.items():
            first = True
            for m in columns.summary():
                vals = [float(r[m]) for r in rs if r.get(m) not in (None, "")]
                if not vals:
                    continue
                c = cv(vals)
                unit = reg[m].unit
                parts = _energy_parts(rs) if m == "energy_j" else []
                if m == "energy_j" and not parts and any("estimated" in str(r.get("energy_source", "")) for r in rs):
                    unit += " ESTIMATED"
                table.add_row(escape(test) if first else "", m, unit, f"{statistics.median(vals):.4g}",
                              f"{min(vals):.4g}", f"{max(vals):.4g}", f"{c:.1%}" if c is not None else "")
                for label, pvals, est in parts:  # a measured GPU beside an estimated CPU: each part says which
                    pc = cv(pvals)
                    table.add_row("", f"  {label} part", unit + (" ESTIMATED" if est else " measured"),
                                  f"{statistics.median(pvals):.4g}", f"{min(pvals):.4g}", f"{max(pvals):.4g}",
                                  f"{pc:.1%}" if pc is not None else "")
                first = False
            table.add_section()
        tables.append(table)
    return tables
