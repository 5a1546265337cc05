"""The harness's commands (run, validate, env, pick-suite, pin, columns), registered on the ``shadowbench``
command line by ``register``. Nothing here knows about dollars."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import __version__
from .errors import ShadowbenchError


def cmd_validate(args) -> int:
    from .config import load_suite

    suite = load_suite(args.suite)
    n_tests = sum(len(w.tests) for w in suite.workloads)
    print(f"{args.suite}: ok: suite {suite.name} v{suite.version}, {len(suite.workloads)} workloads, {n_tests} tests")
    return 0


def cmd_run(args) -> int:
    from rich.console import Console

    from .config import load_suite
    from .energy import build_meter
    from . import provenance
    from .config import MAX_IDLE_S
    from .energy.nvml import probe_gpus
    from .errors import ConfigError
    from .provenance import machine_name
    from .runner import Runner, summary_tables

    if args.idle_s is not None and not (args.idle_s == 0 or 1 <= args.idle_s <= MAX_IDLE_S):  # nan fails too
        raise ConfigError("<command line>", "--idle-s", f"0 or a number of seconds from 1 to {MAX_IDLE_S:g}",
                          str(args.idle_s))
    suite = load_suite(args.suite)
    from .powerlimit import restore_pending

    from .powerlimit import PowerLimitError

    try:
        pending = restore_pending()  # a sweep a crash or SIGKILL left at a changed limit (a live one is left alone)
    except PowerLimitError as e:  # said; a sweep in this run stops on the same record before it changes anything
        pending = [f"warning: {e}"]
    for line in pending:
        Console(stderr=True).print(f"power limit: {line}", markup=False, highlight=False)
    gpus, why = probe_gpus()
    machine = args.machine or machine_name([g["name"] for g in gpus])
    err = Console(stderr=True, soft_wrap=True)  # messages are never wrapped mid-path
    err.print(f"shadowbench {__version__}: suite {suite.name} on {machine}", markup=False, highlight=False)
    if any(w.model.source == "hf" for w in suite.workloads):  # the plan first: downloads, fit, disk
        lines, download_gb = plan(Path(args.suite), gpus, why, provenance.ram_gib())
        for line in lines:
            if ": SKIPPED: " not in line:  # the run reports those itself, once
                err.print(f"  plan: {line}", markup=False, highlight=False)
        if download_gb > ASK_ABOVE_GB and not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError("<command line>", "--yes", f"--yes to download {download_gb:.1f} GB of models "
                                  f"(more than {ASK_ABOVE_GB:g} GB)", "<not given>")
            if input(f"download {download_gb:.1f} GB of models? [y/N] ").strip().lower() not in ("y", "yes"):
                err.print("nothing downloaded; `shadowbench plan` shows what each workload needs", markup=False)
                return 2
    from .energy.wall import configured_url

    wall, wall_from = configured_url(args.wall)
    meter, report = build_meter(args.meter or suite.energy.meter, suite.energy.cpu_w_per_core, suite.energy.sample_hz,
                                wall=wall)
    if wall:
        report.append(f"wall plug from {wall_from}")
    runner = Runner(suite, meter, Path(args.results_dir), machine, gpus, console=err,
                    show_progress=not args.no_progress, idle_s=args.idle_s, launcher=args.launcher)
    for line in report:
        err.print(f"  meter {line}", markup=False, highlight=False)
    try:
        outcome = runner.run()
    except KeyboardInterrupt:
        err.print(f"interrupted: every completed row is kept in {runner.path}" if runner.path else
                  "interrupted before any row was written: no file was left", markup=False, highlight=False)
        return 130
    finally:
        meter.close()
        for part in getattr(meter, "parts", []):  # a plug that failed during the run is said once, with its last error
            if (line := getattr(part, "trouble", lambda: None)()) is not None:
                err.print(line, markup=False, highlight=False)
    out = Console(**({} if sys.stdout.isatty() else {"width": 80}))
    for table in summary_tables(outcome.rows):
        out.print(table)
    if outcome.rows:
        print(f"{len(outcome.rows)} rows written to {outcome.path}")
        workloads = sorted({r["workload"] for r in outcome.rows if r["kind"] == "llm"})
        hint = f" --workload {workloads[0]}" if len(workloads) > 1 else ""
        print(f"next: shadowbench report --results-dir {args.results_dir}; shadowbench cost --machine {machine}{hint} "
              "--build BUILD --api gpt-4o-mini --requests-per-day 1000 (BUILD: your box in "
              "analysis/data/builds.toml; map this machine under [machines] to use its rows by default)")
    else:
        print("no row was written: the empty result file was removed")
    if outcome.failures:  # each was printed where it happened
        err.print(f"{len(outcome.failures)} failed: {', '.join(w for w, _ in outcome.failures)} (see above)",
                  markup=False, highlight=False)
        return outcome.exit_status or 1
    return 0


def cmd_env(args) -> int:
    from . import provenance
    from .energy.nvml import probe_gpus

    gpus, why = probe_gpus()
    info = provenance.collect(gpus)
    print(f"machine: {args.machine or provenance.machine_name([g['name'] for g in gpus])}")
    print(f"cpu: {info['cpu_model']} ({info['cpu_count']} logical cores)")
    print(f"ram: {info['ram_gib']} GiB")
    if gpus:
        for g in gpus:
            pl = f", power limit {g['power_limit_w']:.0f} W" if g.get("power_limit_w") else ""
            print(f"gpu: {g['name']} ({g['memory_total_gb']:.1f} GB, driver {g['driver']}{pl})")
    else:
        print(f"gpu: none ({why})")
    print(f"os: {info['os']}; python {info['python']}")
    print(f"git: {info['git_sha'] or 'not a git checkout'}{' (dirty)' if info['git_dirty'] == 'true' else ''}")
    print("packages: " + ", ".join(info["packages"].split(";")))
    from .energy import build_meter
    from .energy.wall import configured_url

    wall, wall_from = configured_url(args.wall)
    meter, report = build_meter("auto", wall=wall)
    try:
        for line in report:
            print(f"meter {line}")
        part = next((p for p in getattr(meter, "parts", []) if p.domain == "wall"), None)
        if wall and part is not None:
            part.poll()
            live = part.power_w()
            print(f"wall: {part.protocol.describe()} (from {wall_from}): " + (f"{live:.1f} W now" if live is not None
                  else "no reading: " + "; ".join(part.errors[-1:])))
        elif not wall:
            print("wall: no smart plug configured (--wall URL, SHADOWBENCH_WALL, or [energy] wall in "
                  "~/.config/shadowbench/machine.toml)")
    finally:
        meter.close()
    return 0


SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


def pick_suite(gpus: list[dict], full: bool = False) -> Path:
    """The suite for this box. A first run on a GPU is one model (Llama-3.1-8B Q4_K_M, 4.9 GB); with ``full`` the
    card's whole suite (rtx3090.toml for 24 GB, about 52 GB of downloads; rtx4060ti.toml for 16 GB). Without a GPU
    the CPU quick suite."""
    mem = sum(g["memory_total_gb"] for g in gpus)
    if mem >= 8 and not full:
        return SUITES_DIR / "gpu-llama3.1-8b.toml"
    if mem >= 22:  # 24 GB cards (RTX 3090, 4090)
        return SUITES_DIR / "rtx3090.toml"
    if mem >= 15:  # 16 GB cards (RTX 4060 Ti 16GB, 4080)
        return SUITES_DIR / "rtx4060ti.toml"
    return SUITES_DIR / "quick.toml"


def cmd_pick_suite(args) -> int:
    from .energy.nvml import probe_gpus

    gpus, why = probe_gpus()
    path = pick_suite(gpus, full=args.full)
    try:
        print(path.relative_to(Path.cwd()))
    except ValueError:
        print(path)
    print(f"picked for: {', '.join(g['name'] for g in gpus) or 'no GPU (' + why + ')'}", file=sys.stderr)
    return 0


class HubUnreachable(ShadowbenchError):
    """The Hugging Face hub could not be asked (offline, no network, unknown repo)."""


def pin_suite(path: Path, resolve, write: bool) -> list[tuple[str, str, str]]:
    """(workload, repo, commit) for each hub model without a revision; with ``write``, the suite file edited as
    TOML (comments, order and table style kept) with ``revision`` added to each such model table. ``resolve``
    (repo id) -> commit sha."""
    import tomllib

    import tomlkit

    from .config import load_suite

    suite = load_suite(path, check_models=False)
    text = Path(path).read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    pinned = []
    for i, w in enumerate(suite.workloads):
        ref = w.model
        if ref.source != "hf" or ref.revision:
            continue
        sha = resolve(ref.name)
        doc["workloads"][i]["model"]["revision"] = sha  # an inline table or a [workloads.model] table alike
        pinned.append((w.name, ref.name, sha))
    if write and pinned:
        new = tomlkit.dumps(doc)
        data = tomllib.loads(new)  # refuse to write anything that is not TOML, or that lost a pin
        for i, w in enumerate(suite.workloads):
            if any(name == w.name for name, _, _ in pinned) and not data["workloads"][i]["model"].get("revision"):
                raise ShadowbenchError(f"{path}: could not add the revision to workload {w.name}; the file is "
                                       "unchanged")
        Path(path).write_text(new, encoding="utf-8")
        load_suite(path, check_models=False)
    return pinned


def cmd_pin(args) -> int:
    """Resolve each hub model's current commit and pin it (needs network)."""
    def resolve(repo: str) -> str:
        from huggingface_hub import HfApi

        try:
            return HfApi().model_info(repo).sha
        except Exception as e:  # noqa: BLE001 - offline, no network, unknown repo: one clear line
            raise HubUnreachable(f"could not ask the Hugging Face hub for {repo} ({type(e).__name__}); pinning "
                                 "needs network access (HF_HUB_OFFLINE unset)") from None

    pinned = pin_suite(Path(args.suite), resolve, args.write)
    for name, repo, sha in pinned:
        print(f"{name}: {repo} revision = {sha}")
    if not pinned:
        print(f"{args.suite}: every hub model is pinned already (or there are none)")
    elif args.write:
        print(f"wrote {args.suite}")
    return 0


DOWNLOAD_MB_PER_S = 50.0  # assumption for the time estimate of downloads
ASK_ABOVE_GB = 20.0  # a run asks before downloading more than this


def plan(suite_path: Path, gpus: list[dict], why_no_gpu: str, ram_gib: float) -> tuple[list[str], float]:
    """Per workload of a suite: what it downloads (or "in cache"), what it needs, whether that fits in the GPU
    memory free now (who holds the rest), and the disk and time the downloads take. Nothing is downloaded."""
    from . import fetch
    from .config import load_suite
    from .errors import ShadowbenchError

    suite = load_suite(suite_path, check_models=False)
    out = []
    if gpus:
        for g in gpus:
            free = g.get("memory_free_gb")
            out.append(f"GPU {g['name']}: {g['memory_total_gb']:.1f} GB"
                       + (f", {free:.1f} GB free" if free is not None else ""))
        held = fetch.holders(gpus)
        if held:
            out.append(f"  {held}")
    else:
        out.append(f"GPU: none ({why_no_gpu}); models run on the CPU in {ram_gib:.1f} GiB of RAM")
    total_download = 0
    for w in suite.workloads:
        head = f"{w.name} ({w.kind}, {w.model.label()}):"
        if w.model.source == "quantize":
            out.append(f"{head} made once from {w.model.base.label()} by llama.cpp's quantizer, cached (its size "
                       "depends on the type)")
            continue
        if not fetch.sized(w.model):
            out.append(f"{head} local model, nothing to download")
            continue
        try:
            n = fetch.need(w.kind, w.model, dict(w.params))
        except ShadowbenchError as e:
            out.append(f"{head} SKIPPED: {e}")
            continue
        total_download += n.download_bytes
        dl = "in cache" if n.download_bytes == 0 else f"download {n.download_bytes / 1e9:.2f} GB"
        if w.model.source == "synthetic":
            from .synthllm import cached_path

            dl = (f"generated here, {n.model_bytes / 1e9:.2f} GB, no download"
                  + (" (in cache)" if cached_path(w.model.name).is_file() else ""))
        why = fetch.fit_reason(w.kind, n, dict(w.params), gpus, ram_gib)
        fits = "fits"
        if not why and gpus and w.params.get("n_gpu_layers") == "fit" and w.params.get("arch"):
            s = fetch.estimated_split(n.model_bytes, w.params["arch"], w.params.get("n_ctx", 2048),
                                      fetch.gpu_free_bytes(gpus))
            fits = f"fits split by layer: {s.detail}"
        out.append(f"{head} {dl}; needs {n.memory_bytes / 1e9:.2f} GB; "
                   + (f"DOES NOT FIT: {why}" if why else fits))
    if total_download:
        import shutil

        where = fetch.hub_cache_dir()
        probe = where
        while not probe.exists():
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        minutes = total_download / (DOWNLOAD_MB_PER_S * 1e6) / 60
        out.append(f"downloads: {total_download / 1e9:.2f} GB into {where} ({free / 1e9:.1f} GB free), about "
                   f"{minutes:.0f} min at {DOWNLOAD_MB_PER_S:g} MB/s (assumption)")
    else:
        unsized = sum(": SKIPPED: " in line for line in out)
        out.append("downloads: none" if not unsized else
                   f"downloads: unknown: {unsized} workload(s) could not be sized (see SKIPPED above)")
    return out, total_download / 1e9


def cmd_plan(args) -> int:
    from . import provenance
    from .energy.nvml import probe_gpus

    gpus, why = probe_gpus()
    lines = plan(Path(args.suite), gpus, why, provenance.ram_gib())[0]
    for line in lines:
        print(line)
    # a plan that could not size a workload (the hub unreachable, a file gone) is not a plan: exit 1
    return 1 if any(": SKIPPED: " in line for line in lines) else 0


def cmd_restore_power_limit(args) -> int:
    from .powerlimit import record_path, restore_pending

    said = restore_pending()
    print("\n".join(said) if said else f"nothing to restore: no record at {record_path()}")
    return 0 if not any(s.startswith(("could not", "a power-limit record", "a power-limit sweep is running"))
                        or " is not visible now" in s for s in said) else 1


def cmd_doctor(args) -> int:
    """The GPU setup and each engine's verdict; exit 0 when every engine uses the GPU, 1 otherwise (on a box
    without a GPU too: it says what that means)."""
    from . import doctor

    text, all_gpu = doctor.report()
    print(text)
    return 0 if all_gpu else 1


def cmd_columns(args) -> int:
    import re

    from . import columns

    if not args.write:
        print(columns.markdown_table())
        return 0
    doc = Path(__file__).resolve().parent.parent / "docs" / "result-columns.md"
    text = re.sub(r"(<!-- columns:start -->\n)(.*?)(\n<!-- columns:end -->)",
                  lambda m: m.group(1) + columns.markdown_table() + m.group(3), doc.read_text(), flags=re.S)
    doc.write_text(text)
    print(f"wrote the column table into {doc}")
    return 0


def register(sub) -> None:
    """Add the harness's commands to the ``shadowbench`` command line's subparsers."""
    from .energy import METER_CHOICES

    r = sub.add_parser("run", help="run a suite and write results/<machine>/<utc>-<suite>.csv")
    r.add_argument("suite", help="suite TOML file")
    r.add_argument("--machine", default=os.environ.get("SHADOWBENCH_MACHINE") or None,
                   help="machine name for the results folder (default: derived from the hardware)")
    r.add_argument("--results-dir", default="results", help="folder for result files (default: results)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--meter", choices=METER_CHOICES, default=None,
                   help="energy meter (default: the suite's [energy] meter, auto)")
    r.add_argument("--yes", action="store_true",
                   help=f"download more than {ASK_ABOVE_GB:g} GB of models without asking")
    r.add_argument("--idle-s", type=float, default=None,
                   help="seconds of idle baseline before the suite (default: the suite's [energy] idle_s, 10)")
    r.add_argument("--wall", default=None, metavar="URL",
                   help="the smart plug the box is plugged into: shelly://HOST, tasmota://HOST, "
                        "homeassistant://HOST:8123/sensor.ENTITY, kasa://HOST (default: SHADOWBENCH_WALL, or "
                        "[energy] wall in ~/.config/shadowbench/machine.toml)")
    r.add_argument("--launcher", choices=("process", "inline"), default="process",
                   help="process (default): each workload's engine in its own child process, so a native crash "
                        "fails that workload only and engines never share a process; inline: in the harness "
                        "process (for a debugger)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("restore-power-limit", help="put back the GPU power limits a sweep changed (after a crash or "
                        "SIGKILL; a normal run does it itself)")
    rp.set_defaults(func=cmd_restore_power_limit)

    v = sub.add_parser("validate", help="check a suite file")
    v.add_argument("suite")
    v.set_defaults(func=cmd_validate)

    e = sub.add_parser("env", help="show machine, CPU, RAM, GPU and versions")
    e.add_argument("--machine", default=None)
    e.add_argument("--wall", default=None, metavar="URL", help="a smart plug to read once (see run --wall)")
    e.set_defaults(func=cmd_env)

    ps = sub.add_parser("pick-suite", help="print the suite for this box's GPU (or the CPU quick suite)")
    ps.add_argument("--full", action="store_true", help="the card's whole suite, not the one-model first run")
    ps.set_defaults(func=cmd_pick_suite)

    pn = sub.add_parser("pin", help="resolve the hub models' current commits (needs network) and pin them")
    pn.add_argument("suite")
    pn.add_argument("--write", action="store_true", help="write the revisions into the suite file")
    pn.set_defaults(func=cmd_pin)

    pl = sub.add_parser("plan", help="what a suite would download, whether each model fits the GPU memory free now "
                        "(and who holds the rest), the disk and time it takes; nothing is downloaded")
    pl.add_argument("suite")
    pl.set_defaults(func=cmd_plan)

    d = sub.add_parser("doctor", help="the NVIDIA driver, the cards, and whether llama.cpp, CTranslate2, torch and "
                       "onnxruntime will use the GPU (each no with the reason and the fix)")
    d.set_defaults(func=cmd_doctor)

    c = sub.add_parser("columns", help="print the result columns (unit, kinds, meaning) as a markdown table")
    c.add_argument("--write", action="store_true", help="write the table into docs/result-columns.md")
    c.set_defaults(func=cmd_columns)
