"""OpenAI-compatible endpoint suite: llama-cpp-python's server spawned on 127.0.0.1 with SmolLM2, and a
misbehaving server on loopback for the failure paths."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from bench.config import load_suite
from bench.energy import build_meter
from bench.results import read_rows
from bench.runner import Runner

from .conftest import run_cli

pytestmark = pytest.mark.slow  # end-to-end: real inference

SUITE = """
[suite]
name = "ep"
[defaults]
warmups = {warmups}
repetitions = 1
threads = 2
[energy]
idle_s = 0

[[workloads]]
name = "server"
kind = "endpoint"
{where}
prompt_tokens = 60
output_tokens = 12
requests_per_step = 4
timeout_s = 20
tests = {tests}
"""


def _servers():
    return [p for p in psutil.Process().children(recursive=True)
            if "llama_cpp.server" in " ".join(p.cmdline())]


def test_spawned_server_concurrency_sweep(write_suite, tmp_path):
    suite = load_suite(write_suite(SUITE.format(warmups=1, where='spawn = true\nmodel = "bundled:smollm2"',
                                                tests='["c1", "c2", "c4"]')))
    meter, _ = build_meter("auto")
    try:
        out = Runner(suite, meter, tmp_path, "box", [], show_progress=False).run()
    finally:
        meter.close()
    assert not out.failures
    rows = read_rows(out.path)
    assert [r["test"] for r in rows] == ["c1", "c2", "c4"]
    assert [r["concurrency"] for r in rows] == ["1", "2", "4"]
    for r in rows:
        assert (r["requests"], r["completed"], r["failed"]) == ("4", "4", "0")
        # 4 requests x 12 tokens, counted by re-tokenizing the streamed text with the model's tokenizer (the server
        # reports no usage when streaming); a re-tokenization can merge a few tokens, never count chunks
        assert abs(int(r["output_tokens"]) - 48) <= 4
        assert r["token_count_source"] == "tokenizer"
        assert float(r["agg_tokens_per_s"]) > 0 and float(r["tpot_s"]) > 0
        for q in ("ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p50_s", "itl_p95_s", "itl_p99_s"):
            assert float(r[q]) > 0, q
        assert float(r["ttft_p50_s"]) <= float(r["ttft_p95_s"]) <= float(r["ttft_p99_s"])
        assert float(r["j_per_output_token"]) == pytest.approx(float(r["energy_j"]) / int(r["output_tokens"]), rel=1e-4)
        assert r["backend_build"].startswith("spawned llama_cpp.server http://127.0.0.1:")
    # a serial server: queueing shows as time to first token growing with concurrency
    assert float(rows[2]["ttft_p95_s"]) > float(rows[0]["ttft_p95_s"])
    assert _servers() == []  # the server is gone afterwards


class Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    behaviours = ["ok", "http500", "cut", "badjson"]
    count = 0
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with Misbehaving.lock:
            kind = self.behaviours[Misbehaving.count % len(self.behaviours)]
            Misbehaving.count += 1
        if kind == "http500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(3):
            self.wfile.write(f'data: {json.dumps({"choices": [{"delta": {"content": f"w{i} "}}]})}\n\n'.encode())
        if kind == "badjson":
            self.wfile.write(b"data: {not json\n\n")
        if kind in ("cut", "badjson"):
            return  # connection closes without [DONE]
        usage = {"choices": [], "usage": {"prompt_tokens": 60, "completion_tokens": 3}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def bad_server():
    Misbehaving.count = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_failed_requests_are_counted_per_step_and_the_run_goes_on(write_suite, tmp_path, bad_server):
    url = f"http://127.0.0.1:{bad_server.server_address[1]}/v1"
    path = write_suite(SUITE.format(warmups=0, where=f'base_url = "{url}"', tests='["c1", "c2"]'))
    r = run_cli("run", path, "--results-dir", tmp_path, "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = read_rows(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))
    assert len(rows) == 2
    for row in rows:
        assert (row["requests"], row["completed"], row["failed"]) == ("4", "1", "3")
        assert row["failures"] == "bad_json:1;http_500:1;stream_cut:1"
        assert row["token_count_source"] == "usage" and row["output_tokens"] == "3"


def test_connection_refused_mid_run_is_counted(write_suite, tmp_path, bad_server):
    from bench.backends.endpoint import EndpointBackend

    url = f"http://127.0.0.1:{bad_server.server_address[1]}/v1"
    w = load_suite(write_suite(SUITE.format(warmups=0, where=f'base_url = "{url}"', tests='["c2"]'))).workloads[0]
    b = EndpointBackend(w, None)
    b.load()
    bad_server.shutdown()
    bad_server.server_close()  # the server goes away after the run started
    out = b.run("c2")
    assert (out["completed"], out["failed"], out["failures"]) == (0, 4, "connect:4")


def test_unreachable_base_url_exit_2_naming_it(write_suite, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}/v1"
    r = run_cli("run", write_suite(SUITE.format(warmups=0, where=f'base_url = "{url}"', tests='["c1"]')),
                "--results-dir", tmp_path, "--no-progress")
    assert r.returncode == 2
    assert url in r.stderr and "unreachable" in r.stderr


def test_api_key_comes_from_the_environment_and_is_not_written(write_suite, tmp_path, bad_server, monkeypatch):
    url = f"http://127.0.0.1:{bad_server.server_address[1]}/v1"
    path = write_suite(SUITE.format(warmups=0, where=f'base_url = "{url}"\napi_key_env = "SB_TEST_KEY"',
                                    tests='["c1"]'))
    r = run_cli("run", path, "--results-dir", tmp_path, "--no-progress", env={"SB_TEST_KEY": "sk-secret-123"})
    assert r.returncode == 0, r.stderr
    for f in tmp_path.rglob("*.csv"):
        assert "sk-secret-123" not in f.read_text()


def test_external_local_inference_server_is_counted_by_the_estimate(write_suite, tmp_path):
    """A real inference server the test starts, not the harness (llama-cpp-python's: CI does not build llama-server):
    at concurrency 1 the labeled estimate is at least the server's CPU time × the estimate's watts per busy thread,
    and the row names the server's pid."""
    import subprocess
    import sys

    from bench import models
    from bench.servers import answers, free_port

    port = free_port()
    model = models.resolve(models.ModelRef("bundled", "smollm2"))
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port",
           str(port), "--n_ctx", "1024", "--n_threads", "2", "--verbose", "false", "--model_alias", "local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert answers(f"http://127.0.0.1:{port}/v1", 60, alive=lambda: proc.poll() is None)
        server = psutil.Process(proc.pid)
        before = sum(server.cpu_times()[:2])
        suite = write_suite(SUITE.format(warmups=0, where=f'base_url = "http://127.0.0.1:{port}/v1"', tests='["c1"]')
                            .replace("[energy]\nidle_s = 0", '[energy]\nidle_s = 0\nmeter = "estimate"\n'
                                                              "cpu_w_per_core = 10"))
        r = run_cli("run", suite, "--results-dir", tmp_path, "--no-progress")
        server_cpu_s = sum(server.cpu_times()[:2]) - before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert r.returncode == 0, r.stderr
    [row] = read_rows(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))
    assert f"local server (pid {proc.pid})" in row["energy_note"]
    assert server_cpu_s > 0.5 and float(row["energy_j"]) >= 0.95 * server_cpu_s * 10
