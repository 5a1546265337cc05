"""Nothing lost, nothing hung: one test per point of the robustness audit (signals in every phase, bounded server
waits, values validated at the boundary, whole files, undecodable inputs named, numbers range-checked, literal
printing, secrets kept out of files). Through the real CLI where the point is about the CLI."""
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from bench.errors import ShadowbenchError
from bench.results import DiskFull, ResultWriter, is_result_file, read_rows

from .conftest import REPO, TINY_LLM_SUITE, run_cli
from .fakes import FakeBackend, SimClock, fake_suite


def _result_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.csv") if is_result_file(p))


# ------------------------------------------------------------------------------------- a server on loopback


class Server(BaseHTTPRequestHandler):
    """An OpenAI-compatible streaming server whose answer the test chooses (``mode``)."""

    protocol_version = "HTTP/1.0"
    mode = "ok"
    count = 0
    lock = threading.Lock()
    seen_paths: list[str] = []

    def log_message(self, *a):
        pass

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Server.seen_paths.append(self.path)
        self._json({"data": [{"id": "m"}]})

    def _chunk(self, obj):
        self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
        self.wfile.flush()

    def do_POST(self):
        Server.seen_paths.append(self.path)
        self.rfile.read(int(self.headers["Content-Length"]))
        if Server.mode == "mixed":  # ok, 429, ok, a stall mid-stream, ...: one kind per request in turn
            with Server.lock:
                Server.count += 1
                turn = ("ok", "http429", "ok", "stall")[(Server.count - 1) % 4]
            if turn == "http429":
                self.send_response(429)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if turn == "stall":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self._chunk({"choices": [{"delta": {"content": "hel"}}]})
                time.sleep(5)  # stalls mid-stream past the request's deadline
                return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        mode = Server.mode
        try:
            if mode == "trickle":  # a token every 0.2 s, forever
                while True:
                    self._chunk({"choices": [{"delta": {"content": "x "}}]})
                    time.sleep(0.2)
            shapes = {"choices_str": {"choices": "oops"}, "content_num": {"choices": [{"delta": {"content": 7}}]},
                      "list": [1, 2]}
            self._chunk({"choices": [{"delta": {"content": "hello "}}]})
            if mode in shapes:
                self._chunk(shapes[mode])
            usage = {"ok": 3, "count_str": "3", "count_negative": -3}.get(mode, 3)
            self._chunk({"choices": [], "usage": {"prompt_tokens": 60, "completion_tokens": usage}})
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    Server.mode, Server.seen_paths, Server.count = "ok", [], 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


EP_SUITE = """
[suite]
name = "ep"
[defaults]
warmups = 0
repetitions = 1
threads = 1
[energy]
idle_s = 0
[[workloads]]
name = "{name}"
kind = "endpoint"
base_url = "{url}"
prompt_tokens = 20
output_tokens = 3
requests_per_step = 2
timeout_s = {timeout}
tests = ["c1"]
"""


def _ep(write_suite, srv, name="server", timeout=20, url=None):
    url = url or f"http://127.0.0.1:{srv.server_address[1]}/v1"
    return write_suite(EP_SUITE.format(name=name, url=url, timeout=timeout))


# ---------------------------------------------------------------------------------- 1. signals during a load


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_model_load_stops_the_run(write_suite, tmp_path, sig):
    """A 131072-token context takes seconds to allocate; the signal arrives while llama.cpp loads (its log callback
    swallows the KeyboardInterrupt): the run still stops with 130, and no row is written after the signal."""
    suite = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]') + """
[[workloads]]
name = "big"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 131072
tests = ["tg4"]
""")
    res = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "shadowbench", "run", str(suite), "--results-dir", str(res),
                             "--no-progress", "--idle-s", "0"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    loading = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("big: loading"):
                loading.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert loading.wait(120), "".join(lines)
        time.sleep(1.0)  # inside the allocation of the KV cache
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(lines)
    assert stopped_after < 30
    [path] = _result_files(res)
    assert [r["workload"] for r in read_rows(path)] == ["smol"]  # nothing after the signal
    assert any("interrupted: every completed row is kept in" in x and str(path) in x for x in lines)


# ------------------------------------------------------------------------------ 2. a trickling server is bounded


def test_a_server_that_trickles_forever_fails_the_request_at_its_deadline(write_suite, tmp_path, server):
    Server.mode = "trickle"
    t0 = time.monotonic()
    r = run_cli("run", _ep(write_suite, server, timeout=0.6), "--results-dir", tmp_path, "--no-progress",
                timeout=60)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1, r.stderr  # every request of the step failed: the run says so
    [row] = read_rows(_result_files(tmp_path)[0])
    assert row["failures"] == "deadline:2" and row["completed"] == "0"
    assert "every request of the step failed (deadline:2)" in r.stderr


# --------------------------------------------------------------------------- 3. values checked at the boundary


@pytest.mark.parametrize("mode, kind", [("choices_str", "bad_shape"), ("content_num", "bad_shape"),
                                        ("list", "bad_shape"), ("count_str", "bad_usage"),
                                        ("count_negative", "bad_usage")])
def test_wrong_shaped_answers_are_failures_of_a_named_kind(write_suite, tmp_path, server, mode, kind):
    Server.mode = mode
    r = run_cli("run", _ep(write_suite, server), "--results-dir", tmp_path, "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    [row] = read_rows(_result_files(tmp_path)[0])
    assert row["failures"] == f"{kind}:2" and row["agg_tokens_per_s"] == ""  # never a negative throughput


def test_429s_and_stalls_are_counted_and_latency_is_over_completed_requests(write_suite, tmp_path, server):
    Server.mode = "mixed"
    suite = _ep(write_suite, server, timeout=1.0).read_text().replace("requests_per_step = 2", "requests_per_step = 8")
    path = write_suite(suite, "mixed.toml")
    r = run_cli("run", path, "--results-dir", tmp_path, "--no-progress", timeout=120)
    assert r.returncode == 0, r.stderr  # some requests completed: the step measured something
    [row] = read_rows(_result_files(tmp_path)[0])
    assert (row["requests"], row["completed"], row["failed"]) == ("8", "4", "4")
    assert row["failures"] == "deadline:2;http_429:2" and float(row["failure_rate"]) == 0.5
    assert float(row["ttft_p99_s"]) < 1.0  # the stalled requests are not in the latency percentiles
    assert row["output_tokens"] == "12"  # 4 completed × 3 tokens


def test_a_good_server_still_passes(write_suite, tmp_path, server):
    r = run_cli("run", _ep(write_suite, server), "--results-dir", tmp_path, "--no-progress")
    assert r.returncode == 0, r.stderr
    [row] = read_rows(_result_files(tmp_path)[0])
    assert row["completed"] == "2" and row["output_tokens"] == "6" and row["failure_rate"] == "0"


# ---------------------------------------------------------------------- 4. undecodable results files are named


def _committed_copy(tmp_path) -> Path:
    from .conftest import copy_fixture_rows

    return copy_fixture_rows(tmp_path / "results")


def test_undecodable_results_files_are_named_and_the_rest_used(tmp_path):
    res = _committed_copy(tmp_path)
    box = next(p for p in res.iterdir() if p.is_dir())
    good = _result_files(box)[0]
    (box / "binary.csv").write_bytes(b"\x00\x01\xff\xfe garbage")
    (box / "latin1.csv").write_bytes(good.read_bytes().replace(b"smollm2", b"sm\xf6llm2", 1))
    (box / "folder.csv").mkdir()
    (box / "bom.csv").write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    r = run_cli("report", "--results-dir", res)
    assert r.returncode == 0, r.stderr
    assert "binary.csv: <file>: expected a UTF-8 CSV file" in r.stdout
    assert "latin1.csv: <file>: expected a UTF-8 CSV file" in r.stdout
    assert "folder.csv" not in r.stdout and r.stdout.count("warning: left out") == 2
    assert len(read_rows(box / "bom.csv")) == len(read_rows(good))  # a byte-order mark is not a missing column
    r = run_cli("cost", "--requests-per-day", "100", "--api", "gpt-4o-mini", "--build", "ci-cpu-vm",
                "--results-dir", res)
    assert r.returncode == 0 and "skipped a results file" in r.stdout, r.stderr


# ------------------------------------------------------------------------------- 5. disk full: whole rows only


@pytest.fixture
def small_disk(tmp_path):
    """A 24 KiB tmpfs where the test may mount one (root), else None."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mnt)], capture_output=True)
    if ok.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _run_until_full(folder: Path, tmp_path: Path):
    from bench.energy import NullMeter
    from bench.runner import Runner

    clock = SimClock()
    suite = fake_suite(tmp_path, reps=200, tests='["tg4"]')
    runner = Runner(suite, NullMeter(clock), folder, "box", [], show_progress=False, idle_s=0,
                    console=Console(file=open(tmp_path / "out.txt", "w")),
                    create_backend=lambda w, p: FakeBackend(w, clock), launcher="inline")
    with pytest.raises(DiskFull, match="is the disk full"):
        runner.run()
    return runner.path


def test_disk_full_leaves_only_whole_rows(small_disk, tmp_path, monkeypatch):
    if small_disk is None:  # no mount here: a writer that runs out of space at the file boundary
        import bench.results as results

        real, budget = os.write, [20_000]

        def short_write(fd, data):
            n = min(len(data), budget[0])
            budget[0] -= n
            if n == 0:
                raise OSError(28, "No space left on device")
            return real(fd, data[:n])

        monkeypatch.setattr(results.os, "write", short_write)
        small_disk = tmp_path / "res"
    path = _run_until_full(small_disk, tmp_path)
    monkeypatch.undo()
    text = path.read_text()
    assert text.endswith("\n")
    rows = read_rows(path)  # strict: every line whole
    assert 3 <= len(rows) < 200 and [int(r["repetition"]) for r in rows] == list(range(1, len(rows) + 1))
    from analysis.rows import load

    df, problems = load(path.parent.parent)
    assert problems == [] and len(df) == len(rows)


def test_a_row_cut_inside_its_last_field_is_named_and_the_rest_kept(tmp_path):
    p = tmp_path / "x.csv"
    with ResultWriter(p) as w:
        for i in range(3):
            w.write({"schema_version": 2, "run_id": "r", "repetition": i + 1, "flags": "a;b"})
    p.write_text(p.read_text()[:-3])  # the third row lost its line end and part of its last field
    problems: list[str] = []
    rows = read_rows(p, problems)
    assert len(rows) == 2 and len(problems) == 1 and "x.csv: line 4: expected a whole row" in problems[0]
    with pytest.raises(ShadowbenchError, match="line 4"):
        read_rows(p)


# ------------------------------------------------------------------------------------- 6. pin edits TOML as TOML


PIN_SUITE = r'''
# a comment that must stay
[suite]
name = "pin"
description = "C:\\models\\ and a \"quote\""

[[workloads]]
name = "table"
kind = "llm"
tests = ["tg8"]
[workloads.model]
hf_repo = "org/a-GGUF"
hf_file = "a.gguf"

[[workloads]]
name = "inline"
kind = "llm"
model = {hf_repo="org/b-GGUF",hf_file="b.gguf"}
tests = ["tg8"]

[[workloads]]
name = "done"
kind = "llm"
model = { hf_repo = "org/c-GGUF", hf_file = "c.gguf", revision = "abc" }
tests = ["tg8"]
'''


def test_pin_writes_valid_toml_for_every_table_style(write_suite):
    from bench.commands import pin_suite
    from bench.config import load_suite

    path = write_suite(PIN_SUITE)
    pinned = pin_suite(path, lambda repo: "f" * 40 if repo == "org/a-GGUF" else "e" * 40, write=True)
    assert [(n, r) for n, r, _ in pinned] == [("table", "org/a-GGUF"), ("inline", "org/b-GGUF")]
    suite = load_suite(path, check_models=False)
    assert [w.model.revision for w in suite.workloads] == ["f" * 40, "e" * 40, "abc"]
    text = path.read_text()
    assert "# a comment that must stay" in text and r'"C:\\models\\ and a \"quote\""' in text


def test_pin_offline_is_one_clear_line(write_suite):
    path = write_suite(PIN_SUITE)
    before = path.read_text()
    r = run_cli("pin", path, "--write", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "could not ask the Hugging Face hub for org/a-GGUF" in line and "needs network access" in line
    assert path.read_text() == before


# ---------------------------------------------------- 7. names printed literally; 8. the file written is named


def test_names_with_markup_are_printed_literally_and_the_collision_file_is_named(write_suite, tmp_path, server):
    res = tmp_path / "[b]res[/x]"
    now = datetime.now(timezone.utc)
    box = res / "box"
    box.mkdir(parents=True)
    for dt in range(0, 8):  # the next seconds' file names are taken: this run gets ~2
        stamp = (now + timedelta(seconds=dt)).strftime("%Y%m%dT%H%M%SZ")
        (box / f"{stamp}-ep.csv").write_text("taken\n")
    r = run_cli("run", _ep(write_suite, server, name="a[/x]b [b]c[/b]"), "--results-dir", res, "--machine", "box",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("rows go to ")]
    written = Path(line.removeprefix("rows go to "))
    assert written.name.endswith("~2.csv") and "[b]res[/x]" in str(written)
    assert [row["workload"] for row in read_rows(written)] == ["a[/x]b [b]c[/b]"]
    assert "a[/x]b [b]c[/b]" in r.stderr + r.stdout


# --------------------------------------------------------------------------------------- 9. folder problems


def test_results_folder_problems_are_one_line_errors(write_suite, tmp_path, server):
    suite = _ep(write_suite, server)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for where in (a_file, a_file / "sub"):
        r = run_cli("run", suite, "--results-dir", where, "--no-progress")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "--results-dir: expected a folder" in r.stderr
    r = run_cli("report", "--results-dir", tmp_path / "absent")
    assert r.returncode == 2 and "expected an existing folder of result files, got <no such folder>" in r.stderr
    assert not (tmp_path / "absent").exists()


def test_read_only_results_folder(write_suite, tmp_path, server):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only filesystem here (and root ignores file modes)")
    try:
        r = run_cli("run", _ep(write_suite, server), "--results-dir", ro, "--no-progress")
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--results-dir: expected a folder shadowbench may write in" in r.stderr


# ------------------------------------------------------------------- 10. a suite named like a power series


def test_a_suite_named_x_power_is_read_as_results(tmp_path):
    from analysis.rows import result_files

    box = tmp_path / "res" / "box"
    box.mkdir(parents=True)
    with ResultWriter(box / "20260101T000000Z-nightly.power.csv") as w:
        w.write({"schema_version": 2, "run_id": "r"})
    (box / "20260101T000000Z-nightly.power.power.csv").write_text("t_s,domain,source,power_w\n0.1,cpu,rapl,5\n")
    assert [p.name for p in result_files(tmp_path / "res")] == ["20260101T000000Z-nightly.power.csv"]


# -------------------------------------------------------------------------------- 11. numbers range-checked


@pytest.mark.parametrize("old, new, key", [
    ("[[workloads]]", "[energy]\nidle_s = inf\n[[workloads]]", "energy.idle_s"),
    ("[[workloads]]", "[energy]\nidle_s = nan\n[[workloads]]", "energy.idle_s"),
    ("[[workloads]]", "[energy]\nidle_s = 0.5\n[[workloads]]", "energy.idle_s"),
    ("[[workloads]]", "[energy]\ncpu_w_per_core = inf\n[[workloads]]", "energy.cpu_w_per_core"),
    ("threads = 2", "threads = 4294967298", "defaults.threads"),
    ("n_ctx = 512", "n_ctx = 4294967296", "workloads[0].n_ctx"),
    ("n_ctx = 512", "n_ctx = 512\nn_batch = 4294967296", "workloads[0].n_batch"),
])
def test_out_of_range_numbers_are_refused(write_suite, old, new, key):
    text = TINY_LLM_SUITE.format(reps=1, tests='["tg4"]')
    assert old in text
    r = run_cli("validate", write_suite(text.replace(old, new, 1)))
    assert r.returncode == 2, r.stdout
    [line] = r.stderr.strip().splitlines()
    assert key in line


@pytest.mark.parametrize("value", ["nan", "1e-9", "inf", "-1"])
def test_idle_flag_is_range_checked(write_suite, tmp_path, value):
    r = run_cli("run", write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]')), "--idle-s", value,
                "--results-dir", tmp_path / "res")
    assert r.returncode == 2 and "--idle-s: expected 0 or a number of seconds from 1 to 3600" in r.stderr
    assert not (tmp_path / "res").exists()


def test_a_kind_that_is_not_a_string(write_suite):
    r = run_cli("validate", write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]').replace(
        'kind = "llm"', 'kind = ["llm"]')))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "workloads[0].kind: expected one of asr, embed, endpoint, image, llm, tts" in line


# ------------------------------------------------------------------------------- 12. no secrets in any output


def test_credentials_in_base_url_never_reach_a_file_or_the_screen(write_suite, tmp_path, server):
    port = server.server_address[1]
    url = f"http://alice:hunter2@127.0.0.1:{port}/v1?api-key=SECRET123"
    r = run_cli("run", _ep(write_suite, server, url=url), "--results-dir", tmp_path / "res", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "/v1/models?api-key=SECRET123" in Server.seen_paths  # the query still reaches the server
    assert "/v1/chat/completions?api-key=SECRET123" in Server.seen_paths
    everything = r.stdout + r.stderr + "".join(p.read_text() for p in (tmp_path / "res").rglob("*.csv"))
    for secret in ("hunter2", "alice", "SECRET123", "api-key"):
        assert secret not in everything
    [row] = read_rows(_result_files(tmp_path / "res")[0])
    assert row["backend_build"] == f"external server http://127.0.0.1:{port}/v1"
    # unreachable: the error names the server without its secrets
    r = run_cli("run", _ep(write_suite, server, url="http://bob:pw@127.0.0.1:9/v1?key=K9"), "--results-dir",
                tmp_path / "res2", "--no-progress")
    assert r.returncode == 2 and "http://127.0.0.1:9/v1: unreachable" in r.stderr
    assert "pw" not in r.stderr and "K9" not in r.stderr


# --------------------------------------------------------------------------------------- 13. exit statuses


def test_exit_status_table_in_readme_matches_the_code(write_suite, tmp_path, server):
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Exit status")[1].split("\n## ")[0]
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert code in table
    assert run_cli("run", _ep(write_suite, server), "--results-dir", tmp_path / "a", "--no-progress").returncode == 0
    Server.mode = "list"
    assert run_cli("run", _ep(write_suite, server), "--results-dir", tmp_path / "b", "--no-progress").returncode == 1
    missing = write_suite(TINY_LLM_SUITE.format(reps=1, tests='["tg4"]').replace(
        '"bundled:smollm2"', f'"{tmp_path / "gone.gguf"}"'), "m.toml")
    assert run_cli("validate", missing).returncode == 2


def test_power_series_is_fsynced(tmp_path, monkeypatch):
    from bench.energy.composite import PowerLog

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log = PowerLog(tmp_path / "p.power.csv")
    for i in range(PowerLog.FLUSH_EVERY):
        log.write([i * 0.1, "cpu", "rapl", 5.0, None, None, None, None, None])
    assert synced, "flushed samples are fsynced"
    log.close()
    assert len(list(csv.reader(open(tmp_path / "p.power.csv")))) == PowerLog.FLUSH_EVERY + 1


# ------------------------------------------------------------------- whose energy an endpoint window counts

BURNER = r'''
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = b'{"data": [{"id": "m"}]}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        t = time.process_time()
        x = 0
        while time.process_time() - t < 0.4:  # 0.4 s of CPU per request: the server's own work
            x += 1
        self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
        for chunk in ({"choices": [{"delta": {"content": "hi "}}]},
                      {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 3}}):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
'''


def test_estimate_counts_an_external_local_servers_cpu_time(write_suite, tmp_path):
    """A server this machine runs but the harness did not start: its CPU time is found by the port it listens on
    and counted in the labeled estimate (at least its CPU seconds × the estimate's watts per busy thread)."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        server = psutil.Process(proc.pid)
        before = sum(server.cpu_times()[:2])
        suite = write_suite(EP_SUITE.format(name="external", url=f"http://127.0.0.1:{port}/v1", timeout=20).replace(
            "[energy]\nidle_s = 0", '[energy]\nidle_s = 0\nmeter = "estimate"\ncpu_w_per_core = 10'))
        r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress")
        server_cpu_s = sum(server.cpu_times()[:2]) - before
    finally:
        proc.kill()
    assert r.returncode == 0, r.stderr
    [row] = read_rows(_result_files(tmp_path / "res")[0])
    assert f"includes the CPU time of the local server (pid {proc.pid}) listening on port {port}" in row["energy_note"]
    assert server_cpu_s >= 0.7  # two requests of 0.4 s of CPU each
    assert float(row["energy_j"]) >= 0.9 * server_cpu_s * 10


def test_a_remote_server_gets_no_energy_and_says_so():
    from bench.backends.endpoint import EndpointBackend, _is_this_machine
    from bench.config import Workload
    from bench.energy import EnergyMeter
    from bench.energy.base import Part, Scope
    from bench.models import ModelRef

    assert _is_this_machine("127.0.0.1") and _is_this_machine("localhost") and not _is_this_machine("10.255.255.1")
    w = Workload("w", "endpoint", ModelRef("remote", "m"), ("c1",), 0, 1, 1, 0.1,
                 {"spawn": False, "base_url": "http://10.255.255.1:8080/v1"})
    b = EndpointBackend(w, None)
    b.base_url, b.shown_url = "http://u:p@10.255.255.1:8080/v1", "http://10.255.255.1:8080/v1"
    scope = b.energy_scope()
    assert scope.kind == "remote" and "runs on another machine" in scope.note and "u:p" not in scope.note

    clock = SimClock()

    class Counter(Part):
        source = "rapl"

        def counter_j(self):
            return clock() * 50

    m = EnergyMeter([Counter(clock)], clock=clock)
    m.track(scope)
    m.begin("x")
    clock.sleep(1.0)
    w1 = m.end("x")
    assert w1.energy_j is None and w1.energy_source == "none" and "another machine" in w1.extra["energy_note"]
    m.track(Scope())
    m.begin("y")
    clock.sleep(1.0)
    assert m.end("y").energy_j == pytest.approx(50.0)


def test_unreachable_server_is_found_before_the_idle_baseline_and_no_empty_file_is_left(write_suite, tmp_path):
    suite = write_suite(EP_SUITE.format(name="gone", url="http://127.0.0.1:9/v1", timeout=5).replace(
        "idle_s = 0", "idle_s = 30"))
    t0 = time.monotonic()
    r = run_cli("run", suite, "--results-dir", tmp_path / "res", "--no-progress")
    # no 30 s idle baseline was measured for nothing (a bound no loaded machine comes near, unlike a few seconds)
    assert time.monotonic() - t0 < 30
    assert r.returncode == 2 and "http://127.0.0.1:9/v1: unreachable" in r.stderr
    assert r.stderr.count("unreachable (ConnectError)") == 1  # each error printed once
    assert "idle power" not in r.stderr
    assert not any((tmp_path / "res").rglob("*.csv")) and "no row was written" in r.stdout


def test_run_summary_has_units_tags_estimates_fits_80_columns_and_says_what_next(write_suite, tmp_path, server):
    suite = _ep(write_suite, server).read_text().replace("[energy]\nidle_s = 0", '[energy]\nidle_s = 0\nmeter = '
                                                         '"estimate"')
    r = run_cli("run", write_suite(suite, "s.toml"), "--results-dir", tmp_path / "res", "--no-progress",
                "--machine", "box")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines if x.startswith(("│", "┃", "┏", "└", "┡"))) <= 80
    assert any("agg_tokens_per_s" in x and "tokens/s" in x for x in lines)
    assert any("energy_j" in x and "J ESTIMATED" in x for x in lines)
    assert any(x.startswith("next: shadowbench report --results-dir") and "shadowbench cost --machine box" in x
               for x in lines)


def test_every_test_the_readme_promises_exists():
    """The README's exit-status table and promises name their tests: each named test is a test function."""
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Exit status")[1].split("\n## Energy")[0]
    named = []
    for item in re.split(r"\n(?=- |\| )", section):  # a table row or a bullet: a `::test` is of the file named before
        current = "test_robustness.py"
        for m in re.finditer(r"`(?:tests/)?(test_\w+\.py)?(?:::)?(test_\w+)?`", item):
            current = m[1] or current
            if m[2]:
                named.append((current, m[2]))
    assert len(named) > 20
    missing = [f"{f}::{t}" for f, t in named if f"def {t}(" not in (REPO / "tests" / f).read_text()]
    assert missing == []
