"""Golden tests of the cost model against the guides, computed by hand here (months of 30 days, years of 365.25
days), the catalogs, and every bad input of `shadowbench cost`."""

import pytest

from analysis import catalog, cost, scenarios
from analysis.catalog import UnknownName

from .conftest import run_cli

HAIKU = catalog.llm_price("claude-3-5-haiku")


def test_haiku_prices_from_genai_prices_match_the_guide():
    assert (HAIKU.usd_per_mtok_in, HAIKU.usd_per_mtok_out) == (0.80, 4.00)
    assert HAIKU.source.startswith("genai-prices")
    g = catalog.llm_price("guide:claude-3-5-haiku")
    assert (g.usd_per_mtok_in, g.usd_per_mtok_out) == (0.80, 4.00)


def test_haiku_50_requests_per_day_token_weighted():
    per_day = HAIKU.request_usd(500, 200) * 50
    assert per_day == pytest.approx(0.060)
    # the guide's $0.084 averages the two prices over all 700 tokens
    assert cost.guide_blended_daily(HAIKU, 50, 500, 200) == pytest.approx(0.084)


def test_haiku_50_never_breaks_even_on_the_4060ti_box():
    b = catalog.build("rtx4060ti")
    assert b.hardware_usd == 740 and b.guide_power_usd_per_month == 9
    api = cost.api_llm_monthly(HAIKU, 50, 500, 200)
    assert api == pytest.approx(1.80)
    assert cost.breakeven_months(740, api, 9) is None
    assert cost.fmt_months(None) == "never"


def test_haiku_2000_requests_per_day():
    api = cost.api_llm_monthly(HAIKU, 2000, 500, 200)
    assert api == pytest.approx(72.0)
    assert round(cost.breakeven_months(740, api, 9), 1) == 11.7
    assert cost.guide_breakeven_months(740, api) == pytest.approx(10.28, abs=0.01)


def test_healthcare_case_study():
    [r] = scenarios.compute(scenarios.SCENARIOS / "case-healthcare.toml")
    # transcription 100 × 30 × 15 min × $0.006 = $270.00; notes 3,000 × 500 tokens at GPT-4.1-mini's real $1.60/1M
    # output = $2.40 (the guide's $0.56 used a blend of gpt-4o-mini's prices)
    assert r.api_monthly == pytest.approx(270.00 + 2.40)
    assert r.local.total_usd == 20
    assert round(r.breakeven, 1) == 5.9  # 1,500 ÷ (272.40 − 20) = 5.94
    # with the guide's own $270.56 it is 6.0 months (1,500 ÷ 250.56 = 5.99): the price correction moves it 0.05
    assert round(cost.breakeven_months(1500, 270.5625, 20), 1) == 6.0
    assert r.guide["breakeven"] == "5.5 months" and r.guide["monthly_usd"] == 270.56
    assert round(r.guide_style_breakeven, 1) == 5.5
    assert "GPT-4.1-mini" in r.why() and "running cost is left out" in r.why()


def test_case_studies_at_real_prices_and_30_day_months():
    [agency] = scenarios.compute(scenarios.SCENARIOS / "case-content-agency.toml")
    # posts 3,000 × 200 × $1.60/1M = $0.96; 300 audio min/week × 30/7 × $0.006 = $7.714; 20 images/week × 30/7 × $0.02
    assert agency.api_monthly == pytest.approx(0.96 + 300 * 30 / 7 * 0.006 + 20 * 30 / 7 * 0.02)
    assert "4 weeks" in agency.why()
    [indie] = scenarios.compute(scenarios.SCENARIOS / "case-indie-game.toml")
    # 10 × 30 × $0.02 + 50/week × 30/7 × 100 tokens × $1.60/1M + 20,000 chars × $15/1M
    assert indie.api_monthly == pytest.approx(6.00 + 50 * 30 / 7 * 100 * 1.6e-6 + 0.30) and indie.breakeven is None
    haiku = scenarios.compute(scenarios.SCENARIOS / "haiku-breakeven.toml")
    assert [r.breakeven is None for r in haiku] == [True, False]
    assert "retired" in haiku[0].why() and "averaged" in haiku[0].why()


def test_gpt41_mini_scenario_at_its_real_price_and_capacity():
    price = catalog.llm_price("gpt-4.1-mini")
    assert (price.usd_per_mtok_in, price.usd_per_mtok_out) == (0.40, 1.60)
    ten, thousand, tenk = scenarios.compute(scenarios.SCENARIOS / "gpt41mini-breakeven.toml")
    # $0.40 × 500 + $1.60 × 500 per 1M = $0.001 per request
    assert ten.api_monthly == pytest.approx(0.30) and ten.breakeven is None  # the box's $20/month is more
    assert thousand.api_monthly == pytest.approx(30.0) and thousand.breakeven == pytest.approx(1500 / 10)
    # 10,000 × 500 tokens at 45 tokens/s is 30.9 busy hours a day: the box cannot serve it, no break-even
    assert tenk.over_capacity and tenk.breakeven is None
    assert tenk.capacity_note == "needs 30.9 busy hours a day; the box is on 8"
    assert "days written where the arithmetic gives years" in tenk.why() and "cannot serve" in tenk.why()


def test_image_breakeven_scenario():
    ten, hundred, thousand = scenarios.compute(scenarios.SCENARIOS / "image-breakeven.toml")
    assert ten.api_monthly == pytest.approx(10 * 30 * 0.02) and thousand.api_monthly == pytest.approx(600)
    b = catalog.build("rtx4080-desktop")
    # 1,000 images × 15 s at 450 W, and 60 W idle for the rest of 8 hours, at $0.12/kWh, 30 days
    busy_h = 1000 * 15 / 3600
    local = (1000 * 15 * 450 / 3.6e6 + 60 * (8 - busy_h) / 1000) * 0.12 * 30
    assert thousand.local.total_usd == pytest.approx(local)
    assert thousand.breakeven == pytest.approx(2000 / (600 - local))
    assert hundred.guide["breakeven"] == "3 years" and b.anchor_image["s_per_image"] == 15


def test_all_in_cost_per_1000_requests_on_the_4060ti_box():
    b = catalog.build("rtx4060ti")
    unit = cost.llm_unit_from_anchor(b, 200)  # 200 tokens at 64 tokens/s = 3.125 s at 250 W
    m = cost.local_monthly(unit, 2000, b, 0.12)
    per = m.per_task()
    energy = 250 * 3.125 / 3.6e6 * 0.12                              # $0.0000260 per request
    idle = 35 * (8 - 2000 * 3.125 / 3600) / 1000 * 0.12 / 2000      # $0.0000132
    amort = 740 / (4 * 365.25 * 2000)                               # $0.0002533
    assert per.energy_usd == pytest.approx(energy) and per.idle_usd == pytest.approx(idle)
    assert per.amortization_usd == pytest.approx(amort)
    assert per.all_in_usd * 1000 == pytest.approx(0.2924, abs=5e-5)  # more than gpt-4o-mini's $0.195
    assert catalog.llm_price("gpt-4o-mini").request_usd(500, 200) * 1000 == pytest.approx(0.195)


def test_one_calendar():
    assert cost.DAYS_PER_MONTH == 30 and cost.DAYS_PER_YEAR == 365.25
    assert cost.fmt_months(92.6) == "92.6 months (7.6 years)"  # 2,778 days is 7.6 years, not 7.7
    assert cost.lifetime_months(catalog.build("rtx4060ti")) == pytest.approx(4 * 365.25 / 30)
    b = catalog.build("rtx4060ti")
    one_a_day = cost.local_monthly(cost.llm_unit_from_anchor(b, 200), 1, b, 0.12).per_task()
    assert one_a_day.amortization_usd == pytest.approx(740 / (4 * 365.25))


def test_tiered_prices_use_the_price_librarys_calculation():
    g = catalog.llm_price("gemini-2.5-pro")
    # 250k prompt tokens are above the 200k tier: $2.50/1M, not the base $1.25/1M
    assert g.request_usd(250_000, 1000) == pytest.approx(250_000 * 2.5e-6 + 1000 * 15e-6)
    assert g.request_usd(1000, 1000) == pytest.approx(1000 * 1.25e-6 + 1000 * 10e-6)


def test_retired_models_are_flagged_with_dates_and_successors():
    r = catalog.retirement("claude-3-5-haiku")
    assert (r.status, r.date, r.successor) == ("retired", "2026-02-19", "claude-haiku-4-5")
    assert catalog.retirement("guide:claude-3-5-haiku").id == "claude-3-5-haiku"
    assert catalog.retirement("guide:dall-e-2").date == "2026-05-12"
    assert catalog.retirement("claude-haiku-4-5") is None


def test_crossover_volume_is_rounded_up():
    assert cost.fmt_volume(22.01) == "23" and cost.fmt_volume(250.0) == "250"


def test_dollar_signs_survive_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.text import Text

    from analysis.render import _t

    label = "rtx4060ti: $740 + $9.00/month (guide's flat power)"
    assert Text(text=_t(label))._preprocess_math(_t(label)) == (label, False)


def test_every_scenario_computes():
    for f in scenarios.all_breakeven_files():
        for r in scenarios.compute(f):
            assert r.api_monthly > 0 and r.local.total_usd >= 0


def test_tts_and_whisper_scenarios_by_hand():
    """Each case's figures written out: 30-day months, $0.12/kWh, the box on 8 h a day, idle watts for the rest."""
    kwh = 0.12 * 30 / 3.6e6  # $ per J-a-day over a month
    # Piper on any modern CPU ($500; 120 W busy, 30 W idle): 15 characters a second of speech at RTF 0.03
    small, big = scenarios.compute(scenarios.SCENARIOS / "tts-breakeven.toml")
    for r, chars in ((small, 10_000), (big, 1_000_000)):
        busy_s = chars / 15 * 0.03                      # 20 s a day; 2,000 s a day
        energy, idle = 120 * busy_s * kwh, 30 * (8 * 3600 - busy_s) * kwh
        assert r.api_monthly == pytest.approx(chars * 30 * 15 / 1e6)  # $15 per 1M characters: $4.50; $450
        assert (r.local.energy_usd, r.local.idle_usd) == (pytest.approx(energy), pytest.approx(idle))
        assert r.breakeven == pytest.approx(500 / (r.api_monthly - energy - idle))
    assert (round(small.local.total_usd, 4), round(small.breakeven, 1)) == (0.8658, 137.6)  # 500 / 3.6342
    assert (round(big.local.total_usd, 3), round(big.breakeven, 2)) == (1.044, 1.11)     # 500 / 448.956
    # Whisper on an M1 Mac or RTX 3060 ($1,000; 200 W busy, 40 W idle) at RTF 0.1
    one, eight, forty = scenarios.compute(scenarios.SCENARIOS / "whisper-breakeven.toml")
    for r, hours, local in ((one, 1, 0.072 + 1.1376), (eight, 8, 0.576 + 1.0368), (forty, 40, 2.88 + 0.576)):
        busy_s = hours * 3600 * 0.1                     # 360 s; 2,880 s; 14,400 s (4 h of the 8)
        assert r.api_monthly == pytest.approx(hours * 60 * 30 * 0.006)  # $10.80; $86.40; $432
        assert r.local.energy_usd == pytest.approx(200 * busy_s * kwh)
        assert r.local.idle_usd == pytest.approx(40 * (8 * 3600 - busy_s) * kwh)
        assert r.local.total_usd == pytest.approx(local)
        assert r.breakeven == pytest.approx(1000 / (r.api_monthly - local))
    assert [round(r.breakeven, 1) for r in (one, eight, forty)] == [104.3, 11.8, 2.3]


def test_content_agency_and_indie_game_by_hand():
    [agency] = scenarios.compute(scenarios.SCENARIOS / "case-content-agency.toml")
    api = 0.96 + 300 * 30 / 7 * 0.006 + 20 * 30 / 7 * 0.02  # $10.39 (see the case-study test above)
    assert agency.local.total_usd == 5  # the guide's flat $5/month for the Mac mini
    assert agency.breakeven == pytest.approx(800 / (api - 5))  # 148.5 months: longer than the box lives
    [indie] = scenarios.compute(scenarios.SCENARIOS / "case-indie-game.toml")
    assert indie.local.total_usd == 10 and indie.breakeven is None  # $10/month of power against $6.33 of API


def test_local_running_cost_counts_psu_platform_and_idle():
    b = catalog.build("rtx3090")
    # 1,000 tasks/day of 2 s and 500 J at the device
    unit = cost.LocalUnit(seconds=2.0, device_energy_j=500.0, basis="measured")
    m = cost.local_monthly(unit, 1000, b, usd_per_kwh=0.12, days=30)
    wall_j = 500 / b.psu_efficiency + b.platform_busy_w * 2
    assert m.energy_usd == pytest.approx(1000 * wall_j / 3.6e6 * 0.12 * 30)
    busy_h = 1000 * 2 / 3600
    assert m.idle_usd == pytest.approx(b.idle_wall_w * (b.hours_per_day - busy_h) / 1000 * 0.12 * 30)
    assert m.capacity_per_day == pytest.approx(b.hours_per_day * 3600 / 2)
    assert not m.over_capacity
    assert cost.local_monthly(unit, 20000, b, 0.12).over_capacity


def test_routing_saves_against_all_api_within_capacity():
    r = scenarios.routing(scenarios.SCENARIOS / "routing-homelab.toml")
    assert r.all_api_monthly > r.hybrid_monthly
    assert 0 < r.savings < 1
    # at a volume beyond the box's hours, local routes overflow to the API
    big = scenarios.routing(scenarios.SCENARIOS / "routing-homelab.toml", requests_per_day=200000)
    assert big.overflow_share > 0
    assert big.savings < r.savings


def test_unknown_names_list_close_matches():
    with pytest.raises(UnknownName, match="close matches: .*claude-3-5-haiku"):
        catalog.llm_price("claude-3-5-haikoo")
    with pytest.raises(UnknownName, match="close matches: rtx4060ti"):
        catalog.build("rtx4060")
    with pytest.raises(UnknownName, match="whisper-1"):
        catalog.unit_price("stt", "whisper1")


def test_unit_prices_are_dated_and_sourced():
    for kind in ("stt", "tts", "image"):
        for p in catalog.unit_prices(kind).values():
            assert p.usd_per_unit > 0 and p.source and p.as_of[:2] == "20"
    assert catalog.unit_price("tts", "tts-1").usd_per_unit == pytest.approx(15e-6)


def test_volume_sweep_and_crossover_volumes():
    b = catalog.build("rtx4060ti")
    per_request = HAIKU.request_usd(500, 200)
    # with the guide's flat $9/month: the API costs more than the power from 250 requests/day ($0.0012 × 30 × 250)
    assert cost.crossover_volume(per_request, None, b, 0.12, flat_local_monthly=9) == pytest.approx(250, rel=1e-6)
    # and pays $740 back within the 4-year life from 678.2 requests/day: 740 / (0.036 n − 9) = 48
    life = cost.crossover_volume(per_request, None, b, 0.12, flat_local_monthly=9, within_months=48)
    assert life == pytest.approx((740 / 48 + 9) / 0.036, rel=1e-6)
    api, local, be, over = cost.breakeven_at(50, per_request, None, b, 0.12, flat_local_monthly=9)
    assert (api, local, be, over) == (pytest.approx(1.8), 9, None, False)
    # modeled running cost: past the box's capacity no break-even is claimed
    unit = cost.llm_unit_from_anchor(b, 200)
    assert cost.breakeven_at(50_000, per_request, unit, b, 0.12)[3] is True
    assert cost.crossover_volume(1e-9, unit, b, 0.12) is None  # an API cheaper than the electricity: never


def _served_rows(folder, steps, gpu_share=None):
    """A results folder with endpoint rows of machine cpu-amd-epyc-2c-24g (build ci-cpu-vm): per step, three
    repetitions of 16 requests of 128 output tokens."""
    from bench.results import ResultWriter

    box = folder / "cpu-amd-epyc-2c-24g"
    box.mkdir(parents=True)
    with ResultWriter(box / "20260101T000000Z-serve.csv") as w:
        for test, conc, agg, ttft, itl, jpt in steps:
            for rep in (1, 2, 3):
                out = 16 * 128
                wall = out / agg
                w.write({"schema_version": 2, "run_id": "r", "machine": "cpu-amd-epyc-2c-24g", "suite": "serve",
                         "suite_version": 1, "workload": "srv", "test": test, "kind": "endpoint", "backend": "x",
                         "model": "m", "model_sha256": "", "repetition": rep, "utc_time": "t", "wall_s": wall,
                         "energy_j": jpt * out, "energy_source": "rapl", "concurrency": conc, "requests": 16,
                         "completed": 16, "failed": 0, "agg_tokens_per_s": agg, "ttft_p95_s": ttft,
                         "itl_p95_s": itl, "output_tokens": out, "j_per_output_token": jpt,
                         **({} if gpu_share is None else {
                             "energy_source": "nvml_counter+estimated", "gpu_energy_j": gpu_share * jpt * out,
                             "gpu_energy_source": "nvml_counter", "cpu_energy_j": (1 - gpu_share) * jpt * out,
                             "cpu_energy_source": "estimated"})})
    return folder


STEPS = [("c1", 1, 100.0, 0.5, 0.010, 0.30), ("c4", 4, 300.0, 1.5, 0.030, 0.12), ("c8", 8, 400.0, 3.0, 0.050, 0.10)]


def test_a_latency_target_picks_the_fastest_step_that_meets_it(tmp_path):
    from analysis import rows

    df, problems = rows.load(_served_rows(tmp_path / "res", STEPS))
    assert problems == []
    unit, why = rows.serving_unit(df, ttft_p95_s=2.0, itl_p95_s=0.2)
    # c4: 16 × 128 tokens at 300 tokens/s = 6.83 s for 16 requests = 0.4267 s busy per request, 0.12 J × 128 each
    assert unit.seconds == pytest.approx(128 / 300) and unit.device_energy_j == pytest.approx(0.12 * 128)
    assert why.startswith("served at step c4") and "steps c8 miss it" in why
    unit, why = rows.serving_unit(df, ttft_p95_s=5.0, itl_p95_s=0.2)
    assert why.startswith("served at step c8") and unit.seconds == pytest.approx(128 / 400)
    unit, why = rows.serving_unit(df, ttft_p95_s=5.0, itl_p95_s=0.2, output_tokens=256)
    assert unit.seconds == pytest.approx(256 / 400) and "scaled from the measured 128-token answers to 256" in why
    with pytest.raises(LookupError, match="no measured step meets TTFT p95 ≤ 0.1 s"):
        rows.serving_unit(df, ttft_p95_s=0.1, itl_p95_s=0.2)


def test_cost_with_a_latency_target_answers_from_the_measured_curve(tmp_path):
    from .conftest import run_cli

    res = _served_rows(tmp_path / "res", STEPS)
    # 1,000 requests/day: one in flight carries them (8 h of 1.28 s requests = 22,500 a day), priced at c1's energy
    r = run_cli("cost", "--requests-per-day", 1000, "--output-tokens", 128, "--api", "gpt-4o-mini", "--build",
                "ci-cpu-vm", "--results-dir", res, "--ttft-p95", "2")
    assert r.returncode == 0, r.stderr
    assert "note: served at step c1: the fewest requests in flight that carry 1,000 requests/day" in r.stdout
    assert "capacity: 22,500 requests/day in 8 h" in r.stdout
    # 50,000 a day need 4 in flight (8 h of 0.4267 s = 67,500 a day); c8 would miss the 2 s TTFT target
    r = run_cli("cost", "--requests-per-day", 50000, "--output-tokens", 128, "--api", "gpt-4o-mini", "--build",
                "ci-cpu-vm", "--results-dir", res, "--ttft-p95", "2")
    assert "note: served at step c4" in r.stdout and "capacity: 67,500 requests/day in 8 h" in r.stdout
    assert "steps c8 miss it" in r.stdout
    r = run_cli("cost", "--requests-per-day", 1000, "--api", "gpt-4o-mini", "--build", "ci-cpu-vm",
                "--results-dir", res, "--ttft-p95", "0.1")
    assert r.returncode == 2 and "no measured step meets" in r.stderr


def test_time_of_use_is_the_mean_price_of_the_hours_on():
    from analysis.frame import parse_tou

    table = parse_tou("0-7:0.10,7-23:0.31,23-24:0.10")
    assert table == [(0, 7, 0.10), (7, 23, 0.31), (23, 24, 0.10)]
    assert cost.tou_usd_per_kwh(table, 10, 8) == pytest.approx(0.31)  # 8:00-18:00, all at the day rate
    assert cost.tou_usd_per_kwh(table, 24, 0) == pytest.approx((7 * 0.10 + 16 * 0.31 + 1 * 0.10) / 24)
    # 20:00 for 8 h, past midnight: 3 h at 0.31, then 5 h at 0.10
    assert cost.tou_usd_per_kwh(table, 8, 20) == pytest.approx((3 * 0.31 + 5 * 0.10) / 8)
    assert cost.tou_usd_per_kwh(table, 1.5, 6.5) == pytest.approx((0.5 * 0.10 + 1 * 0.31) / 1.5)


@pytest.mark.parametrize("text", ["0-7:0.1,8-24:0.2", "0-7:0.1", "7-24:0.1", "0-24:-1", "0-24", "0-25:0.1", ""])
def test_bad_time_of_use_tables_are_refused(text):
    from analysis.frame import parse_tou
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="--tou"):
        parse_tou(text)


def test_cost_json_has_every_figure_and_tou_changes_only_the_price():
    import json

    base = ["cost", "--json", "--requests-per-day", "1500", "--api", "claude-haiku-4-5", "--build", "rtx3090",
            "--hours-per-day", "10"]
    flat = json.loads(run_cli(*base, "--usd-per-kwh", "0.31").stdout)
    tou = json.loads(run_cli(*base, "--tou", "0-7:0.10,7-23:0.31,23-24:0.10", "--on-from", "8").stdout)
    assert tou["usd_per_kwh"] == pytest.approx(0.31)
    assert tou["monthly"] == pytest.approx(flat["monthly"]) and tou["per_task"] == pytest.approx(flat["per_task"])
    assert flat["monthly"]["all_in_usd"] == pytest.approx(flat["monthly"]["running_usd"]
                                                          + flat["monthly"]["amortization_usd"])
    assert flat["breakeven_months"] == pytest.approx(1310 / (flat["api_monthly_usd"] - flat["monthly"]["running_usd"]))
    r = run_cli(*base, "--tou", "0-24:0.2", "--usd-per-kwh", "0.1")
    assert r.returncode == 2 and "not both" in r.stderr


def test_energy_by_part_tags_only_the_estimated_part(tmp_path):
    """A GPU box's rows: the NVML counter (measured) plus the CPU estimate. The basis line names each part, and
    ESTIMATED tags the CPU's share only (the run summary does the same)."""
    res = _served_rows(tmp_path / "res", STEPS, gpu_share=0.96)
    r = run_cli("cost", "--requests-per-day", 1000, "--output-tokens", 128, "--api", "gpt-4o-mini", "--build",
                "ci-cpu-vm", "--results-dir", res, "--ttft-p95", "2")
    assert r.returncode == 0, r.stderr
    # c1: 0.30 J a token x 128 = 38.4 J, 96% of it the GPU's counter
    assert "38.4 J at the device (36.86 J GPU (measured) + 1.536 J CPU (ESTIMATED))" in r.stdout
    assert "ESTIMATED energy" not in r.stdout
    from bench.runner import summary_tables
    from rich.console import Console

    rows = [{"workload": "w", "test": "tg4", "energy_j": e, "gpu_energy_j": 0.96 * e, "cpu_energy_j": 0.04 * e,
             "energy_source": "nvml_counter+estimated", "gpu_energy_source": "nvml_counter",
             "cpu_energy_source": "estimated", "wall_s": 1.0} for e in (240.0, 241.0, 242.0)]
    con = Console(width=100, record=True)
    for t in summary_tables(rows):
        con.print(t)
    text = con.export_text()
    assert "│ energy_j   │ J           │    241 │" in text
    assert "GPU part │ J measured  │  231.4" in text and "CPU part │ J ESTIMATED │   9.64" in text
