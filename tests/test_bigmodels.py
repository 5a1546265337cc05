"""The report's big-model section: the guides' 70B speeds against the split each card allows and its bandwidth
bound, recomputed here from the catalog's own figures."""
import pandas as pd
import pytest

from analysis import bigmodels, catalog
from bench import fetch


def test_70b_bound_on_the_4090_is_a_few_tokens_per_second():
    claims = {c.build: c for c in bigmodels.llm_claims(pd.DataFrame())}
    c = claims["rtx4090-desktop"]
    size, n = int(42.52e9), 80
    per = size // n
    k = c.split.layers_on_gpu
    assert k == 42 and c.guide_tok_s == 60
    bound = 1 / (k * per / 1008e9 + (size - k * per) / 64e9)
    assert c.bound_tok_s == pytest.approx(bound, rel=1e-3) and 2.5 < c.bound_tok_s < 3.5
    assert c.measured_tok_s is None and c.measured_rows == ""


def test_a_mac_whose_unified_memory_cannot_hold_the_file_gets_no_bound():
    c = {c.build: c for c in bigmodels.llm_claims(pd.DataFrame())}["m2-max-32gb"]
    assert c.fits_ram is False and c.bound_tok_s is None


def test_measured_rows_of_a_70b_workload_are_shown(tmp_path):
    df = pd.DataFrame([{"kind": "llm", "workload": "llama3.3-70b-q4_k_m-split", "tg_tokens_per_s": 2.4,
                        "file": "results/x/a.csv", "run_id": "r", "test": "tg128"}])
    c = {c.build: c for c in bigmodels.llm_claims(df)}["rtx4090-desktop"]
    assert c.measured_tok_s == 2.4 and "llama3.3-70b-q4_k_m-split/tg128" in c.measured_rows


def test_flux_download_sums_the_published_files():
    f = bigmodels.flux_download()
    assert f["total_gb"] == pytest.approx(23.8 + 9.52 + 0.25 + 0.17)
    assert f["gguf_total_gb"] == pytest.approx(12.7 + 9.52 + 0.25 + 0.17)
    assert catalog.gpu_bandwidth_gb_s("Apple M2 Max")[0] == 400 and fetch.GB == 1e9
