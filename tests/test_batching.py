"""The guides' batching strategy: the eachN / collectN test grammar, the answer's parsing, the guide's own
arithmetic, and (end-to-end) both tests on the real SmolLM2 priced in the report from their own rows."""
import csv

import pytest

from analysis import batching as ab, catalog
from bench import batching
from bench.kinds.llm import Batch, LLMTest, parse_test, request_test

from .conftest import run_cli


@pytest.mark.parametrize("name,expected", [
    ("each20", Batch(False, 20)), ("collect50", Batch(True, 50)), ("collect1", Batch(True, 1)),
    ("each0", None), ("collect201", None), ("each", None), ("collect020", None), ("each20x2", None),
])
def test_batch_test_names(name, expected):
    assert parse_test(name) == expected


def test_only_pp_tg_tests_are_priced_as_requests():
    assert isinstance(parse_test("pp500+tg200"), LLMTest) and request_test("pp500+tg200")
    assert not request_test("each20") and not request_test("collect20") and not request_test("ppl")


def test_collect_answer_parses_back_by_number_and_skips_what_is_not_a_label():
    text = "2: spam\n1: billing\n3: weather\n5: sales\n9: spam\nnonsense"
    assert batching.parse_collect(text, 5) == ["billing", "spam", None, None, "sales"]
    assert batching.parse_each(" Technical\n") == "technical" and batching.parse_each("refund") is None


def test_grammars_hold_the_answer_to_numbered_labels():
    g = batching.collect_grammar(3)
    assert g.startswith('root ::= "1: " label "\\n" "2: " label "\\n" "3: " label "\\n"\n')
    assert all(f'"{x}"' in g for x in batching.LABELS) and batching.each_grammar().count("|") == 4


def test_items_have_every_label_equally_and_cycle():
    labels = [label for label, _ in batching.ITEMS]
    assert len(labels) == 20 and all(labels.count(x) == 4 for x in batching.LABELS)
    assert batching.items(25)[20] == batching.ITEMS[0]


def test_the_guides_arithmetic_recomputed_from_its_own_figures():
    g = ab.guide_check()
    assert g["naive_usd"] == pytest.approx(0.0375) and g["batched_usd"] == pytest.approx(0.00375)
    assert g["saving"] == pytest.approx(0.90) == g["saving_printed"]
    assert g["naive_usd_printed"] / g["naive_usd"] == pytest.approx(10.13, rel=1e-3)  # printed ten times too high
    assert g["batched_tokens_per_email"] == 10


def test_api_cost_of_a_mode_is_each_requests_tokens_at_the_token_prices():
    price = catalog.LLMPrice("x", usd_per_mtok_in=1.0, usd_per_mtok_out=10.0, source="test", as_of="2026-11")
    each = ab.Mode("each20", 20, 20, in_tokens=100, out_tokens=2, seconds=0.1, device_j=1.0, accuracy=1.0,
                   answered=1.0, estimated=False, rows="")
    collect = ab.Mode("collect20", 20, 1, in_tokens=40, out_tokens=6, seconds=0.1, device_j=1.0, accuracy=1.0,
                      answered=1.0, estimated=False, rows="")
    assert each.api_usd(price, 1000) == pytest.approx(1000 * (100 * 1 + 2 * 10) / 1e6)
    assert collect.api_usd(price, 1000) == pytest.approx(1000 * (40 * 1 + 6 * 10) / 1e6)
    assert ab.saving(120.0, 100.0) == pytest.approx(1 / 6) and ab.saving(100.0, 150.0) == pytest.approx(-0.5)


SUITE = """
[suite]
name = "batching"
[defaults]
warmups = 0
repetitions = 2
threads = 2
[energy]
idle_s = 0
meter = "estimate"
[[workloads]]
name = "smol"
kind = "llm"
model = "bundled:smollm2"
n_ctx = 2048
tests = ["each10", "collect10"]
"""


@pytest.mark.slow
def test_each_and_collect_on_smollm2_are_measured_and_priced_in_the_report(write_suite, tmp_path):
    res = tmp_path / "res"
    r = run_cli("run", write_suite(SUITE), "--results-dir", res, "--no-progress", "--machine", "batchbox")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(next(p for p in res.rglob("*.csv") if not p.name.endswith(".power.csv")))))
    by = {t: [x for x in rows if x["test"] == t] for t in ("each10", "collect10")}
    assert len(by["each10"]) == len(by["collect10"]) == 2
    for x in by["each10"]:
        assert x["requests"] == "10" and x["items"] == "10" and x["items_answered"] == "10"
    for x in by["collect10"]:
        assert x["requests"] == "1" and x["items_answered"] == "10"  # the grammar: every line parses back
    e, c = by["each10"][0], by["collect10"][0]
    # ten copies of the instructions against one: the batch sends fewer input tokens, each answer line its number
    assert int(e["prompt_tokens"]) > 1.5 * int(c["prompt_tokens"]) and int(c["output_tokens"]) > int(e["output_tokens"])
    assert 0 <= float(e["label_accuracy"]) <= 1 and float(e["s_per_item"]) > 0 and float(c["j_per_item"]) > 0
    # greedy and seeded: the same answer every repetition
    assert by["collect10"][0]["label_accuracy"] == by["collect10"][1]["label_accuracy"]

    r = run_cli("report", "--results-dir", res)
    assert r.returncode == 0, r.stderr
    text = (res / "REPORT.md").read_text()
    sec = text.split("## Batching")[1].split("\n## ")[0]
    price = catalog.llm_price("gpt-4o-mini")
    for t, x in (("each10", e), ("collect10", c)):
        med = lambda col: sorted(float(y[col]) for y in by[t])[0] / 2 + sorted(float(y[col]) for y in by[t])[1] / 2  # noqa: E731
        per_request = price.request_usd(med("prompt_tokens") / int(x["requests"]),
                                        med("output_tokens") / int(x["requests"]))
        usd = per_request * int(x["requests"]) / 10 * 1000
        assert f"| batchbox / smol | {t} | {int(x['requests']) * 100:,} |" in sec
        assert f"${usd:.3g}" in sec
    assert "ESTIMATED" in sec and "The guide: a 90% saving" in sec and "printed $0.38" in sec
