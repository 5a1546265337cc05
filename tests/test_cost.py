"""Golden tests of the cost model against the guides (months of 30 days, as the guides count), and the catalogs."""
import pytest

from analysis import catalog, cost, scenarios
from analysis.catalog import UnknownName

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


def test_healthcare_case_study_breaks_even_in_6_months():
    [r] = scenarios.compute(scenarios.SCENARIOS / "case-healthcare.toml")
    assert r.api_monthly == pytest.approx(270.5625)
    assert r.local.total_usd == 20
    assert round(r.breakeven, 1) == 6.0
    assert r.guide["breakeven"] == "5.5 months"
    assert round(r.guide_style_breakeven, 1) == 5.5


def test_scenarios_match_the_guides_api_figures():
    [agency] = scenarios.compute(scenarios.SCENARIOS / "case-content-agency.toml")
    assert agency.api_monthly == pytest.approx(9.025)
    [indie] = scenarios.compute(scenarios.SCENARIOS / "case-indie-game.toml")
    assert indie.api_monthly == pytest.approx(6.3075) and indie.breakeven is None
    haiku = scenarios.compute(scenarios.SCENARIOS / "haiku-breakeven.toml")
    assert [r.breakeven is None for r in haiku] == [True, False]


def test_every_scenario_computes():
    for f in scenarios.all_breakeven_files():
        for r in scenarios.compute(f):
            assert r.api_monthly > 0 and r.local.total_usd >= 0


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
