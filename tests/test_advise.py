"""`shadowbench advise`: per task verdicts from the one cost model, agreeing with `shadowbench cost` task by task."""
import pytest

from analysis import catalog, cost
from analysis.advise import advise, load_mix
from analysis.scenarios import SCENARIOS

from .conftest import FIXTURE_MACHINE, FIXTURE_ROWS, cost_json, run_cli

MIXES = sorted(SCENARIOS.glob("case-*.toml")) + [SCENARIOS / "routing-homelab.toml"]
MACHINE = FIXTURE_MACHINE


def task_args(t, a) -> list[str]:
    args = ["--kind", t.kind, "--requests-per-day", repr(t.per_day), "--api", t.api, "--build", a.build.id,
            "--prompt-tokens", str(t.prompt_tokens), "--output-tokens", str(t.output_tokens)]
    if a.machine:
        workload = next(ln for ln in a.lines if ln.task is t).basis.split(" / ")[1].split(" (")[0]
        return args + ["--local-power", "measured", "--machine", a.machine, "--workload", workload]
    return args + ["--local-power", "anchor"]


@pytest.mark.parametrize("mix", MIXES, ids=lambda p: p.stem)
@pytest.mark.parametrize("machine", [None, MACHINE])
def test_advice_agrees_with_cost_task_by_task_and_sums(mix, machine):
    a = advise(mix, machine=machine, results_dir=FIXTURE_ROWS)
    days = cost.DAYS_PER_MONTH
    energy = busy_h = 0.0
    for ln in a.lines:
        if ln.unit is None:
            continue
        c = cost_json(FIXTURE_ROWS, task_args(ln.task, a))
        assert ln.api_monthly == pytest.approx(c["api_monthly_usd"], rel=1e-12)
        assert ln.alone.total_usd == pytest.approx(c["monthly"]["running_usd"], rel=1e-12)
        assert ln.alone.over_capacity == c["over_capacity"]
        energy += c["monthly"]["energy_usd"] * ln.local_share
        busy_h += c["busy_hours_per_day"] * ln.local_share
    rec = a.recommended
    # the totals are those task lines summed, with the box's idle hours and hardware counted once
    assert a.all_api.all_in_usd == pytest.approx(sum(ln.api_monthly for ln in a.lines))
    uncounted = sum(ln.api_monthly for ln in a.lines if ln.task.private and ln.unit is None)
    assert rec.api_usd == pytest.approx(sum(ln.api_monthly * (1 - ln.local_share) for ln in a.lines) - uncounted)
    if rec.local is None:
        assert energy == 0 and rec.amortization_usd == 0
        return
    kwh = catalog.tariff_usd_per_kwh()
    assert rec.local.energy_usd == pytest.approx(energy, rel=1e-9)
    idle_w = a.build.idle_wall_w or 0.0
    assert rec.local.idle_usd == pytest.approx(idle_w * max(0.0, a.build.hours_per_day - busy_h) / 1000 * kwh * days)
    assert rec.amortization_usd == pytest.approx(cost.amortization_monthly(a.build) or 0.0)
    if a.build.hardware_usd is not None:
        assert a.breakeven_months == cost.breakeven_months(a.build.hardware_usd, a.all_api.api_usd, rec.running_usd)


def _mix(write_suite, tasks: str, build="rtx3090") -> str:
    return write_suite(f'[scenario]\ntitle = "t"\nbuild = "{build}"\n' + tasks, name="mix.toml")


def test_private_is_local_even_where_the_api_is_cheaper(write_suite):
    a = advise(_mix(write_suite, '[[tasks]]\nname = "legal notes"\nkind = "llm"\napi = "gpt-4o-mini"\n'
                                 'units_per_day = 5\nprompt_tokens = 500\noutput_tokens = 200\nprivate = true\n'))
    [ln] = a.lines
    assert ln.alone.total_usd > ln.api_monthly  # the box costs more than the API for this
    assert ln.verdict == "local" and ln.extra_usd == pytest.approx(ln.alone.total_usd - ln.api_monthly)
    assert "private: local is mandatory" in ln.reason and "more than gpt-4o-mini" in ln.reason
    assert a.recommended.api_usd == 0 and a.recommended.local is not None


def test_frontier_is_api_even_where_local_is_cheaper(write_suite):
    a = advise(_mix(write_suite, '[[tasks]]\nname = "agents"\nkind = "llm"\napi = "claude-sonnet-4-5"\n'
                                 'units_per_day = 3000\nprompt_tokens = 500\noutput_tokens = 200\n'
                                 'needs = "frontier"\n'))
    [ln] = a.lines
    assert ln.alone.total_usd < ln.api_monthly and ln.task.per_day > ln.crossover  # local would be cheaper
    assert ln.verdict == "API" and "frontier" in ln.reason and ln.local_share == 0
    assert a.recommended.local is None and a.recommended.all_in_usd == pytest.approx(ln.api_monthly)


def test_over_capacity_is_hybrid_with_the_overflow_share(write_suite):
    a = advise(_mix(write_suite, '[[tasks]]\nname = "bulk"\nkind = "llm"\napi = "claude-haiku-4-5"\n'
                                 'units_per_day = 50000\nprompt_tokens = 500\noutput_tokens = 200\n'))
    [ln] = a.lines
    capacity = 8 * 3600 / (200 / 115)  # rtx3090's catalog decode speed, 8 h on
    assert ln.verdict == "hybrid" and ln.local_share == pytest.approx(capacity / 50000)
    assert "overflows to the API" in ln.reason and not a.recommended.local.over_capacity
    assert a.recommended.api_usd == pytest.approx(ln.api_monthly * (1 - capacity / 50000))


def test_advise_on_this_machine_prints_measured_crossovers_beside_the_guides_thresholds():
    r = run_cli("advise", SCENARIOS / "routing-homelab.toml", "--machine", MACHINE)
    assert r.returncode == 0, r.stderr
    assert ("the guide: cloud below 100/day, hybrid to 500/day, local above; measured on this box: local from"
            in r.stdout)
    assert "ESTIMATED energy" in r.stdout and "needs a frontier model" in r.stdout
    assert "the guide's thresholds: <100 calls/day: cloud API; 100–500: hybrid" in r.stdout


@pytest.mark.parametrize("task, key, expected", [
    ('kind = "llm"\napi = "gpt-9-ultra"\nunits_per_day = 5', "tasks[0].api", "close matches"),
    ('kind = "llm"\napi = "gpt-4o-mini"\nunits_per_day = -5', "tasks[0].units_per_day", "a volume >= 0"),
    ('kind = "llm"\napi = "gpt-4o-mini"\nunits_per_day = 5\nprivate = true\nneeds = "frontier"', "tasks[0]",
     "not both"),
    ('kind = "stt"\napi = "gpt-4o-mini"\nunits_per_day = 5', "tasks[0].api", "stt price"),
    ('kind = "llm"\napi = "gpt-4o-mini"\nunits_per_week = 5\nunits_per_day = 1', "tasks[0]", "one of"),
    ('kind = "video"\napi = "x"\nunits_per_day = 1', "tasks[0].kind", "one of llm"),
    ('kind = "llm"\napi = "gpt-4o-mini"\nunits_per_day = 5\ncolour = "red"', "tasks[0].colour", "known keys"),
])
def test_bad_mix_files_are_one_line_errors(write_suite, task, key, expected):
    r = run_cli("advise", _mix(write_suite, "[[tasks]]\n" + task + "\n"))
    assert r.returncode == 2 and r.stdout == ""
    [line] = r.stderr.strip().splitlines()
    assert f"mix.toml: {key}: expected" in line and expected in line


def test_unknown_workload_of_the_machine_is_a_one_line_error(write_suite):
    mix = _mix(write_suite, '[[tasks]]\nkind = "llm"\napi = "gpt-4o-mini"\nunits_per_day = 5\nworkload = "nope"\n')
    r = run_cli("advise", mix, "--machine", MACHINE)
    assert r.returncode == 2 and "workload" in r.stderr and "nope" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_case_studies_load_as_mixes_with_their_constraints():
    h = load_mix(SCENARIOS / "case-healthcare.toml")
    assert all(t.private for t in h.tasks) and "compliance" in h.guide_verdict
    r = load_mix(SCENARIOS / "routing-homelab.toml")
    assert [t.frontier for t in r.tasks] == [False, False, True]
    assert sum(t.per_day for t in r.tasks) == pytest.approx(2000)


def test_one_task_on_the_3090_by_hand(write_suite):
    """Every figure of one task written out: 1,000 requests/day of 500+200 tokens to gpt-4o-mini ($0.15/$0.60 per 1M)
    on the rtx3090 build's catalog figures (115 tokens/s decode, 600 W busy and 75 W idle at the wall, 8 h on,
    $1,310 over 4 years), $0.12/kWh, 30-day months."""
    a = advise(_mix(write_suite, '[[tasks]]\nname = "summaries"\nkind = "llm"\napi = "gpt-4o-mini"\n'
                                 'units_per_day = 1000\nprompt_tokens = 500\noutput_tokens = 200\n'))
    [ln] = a.lines
    assert ln.api_monthly == pytest.approx(1000 * (500 * 0.15 + 200 * 0.60) / 1e6 * 30)  # $5.85
    seconds = 200 / 115                                  # 1.739 s of decode per request
    busy_h = 1000 * seconds / 3600                       # 0.483 h a day
    energy = 1000 * 600 * seconds / 3.6e6 * 0.12 * 30    # $1.0435
    idle = 75 * (8 - busy_h) / 1000 * 0.12 * 30          # $2.0296
    assert ln.alone.busy_hours_per_day == pytest.approx(busy_h)
    assert (ln.alone.energy_usd, ln.alone.idle_usd) == (pytest.approx(energy), pytest.approx(idle))
    assert ln.alone.total_usd == pytest.approx(3.0730, abs=1e-4)
    assert ln.alone.capacity_per_day == pytest.approx(8 * 3600 / seconds)  # 16,560 a day
    assert not ln.alone.over_capacity
    # the running costs meet at n requests/day ($0.12 x 30 / 3.6e6 J = $1e-6 per J-a-day over a month):
    #   API 0.00585 n  =  local 600 W x seconds x n x 1e-6 + 75 W x (8 h x 3600 - seconds x n) x 1e-6
    #                  =  0.000913 n + 2.16     ->  n = 2.16 / 0.004937 = 437.5 requests/day
    assert ln.crossover == pytest.approx(2.16 / (0.00585 - 525 * seconds / 1e6), rel=1e-3)
    amort = 1310 / (4 * 365.25 / 30)  # $26.90 a month over 48.7 months
    assert a.all_local.amortization_usd == pytest.approx(amort)
    # cheaper to run ($3.07 against $5.85), but all-in $29.97: the box never pays back within its life, so the API
    assert a.all_local.all_in_usd == pytest.approx(3.0730 + amort, abs=1e-4)
    assert ln.verdict == "API" and "does not pay back" in ln.reason and a.recommended.local is None
    assert ln.answer.breakeven_months == pytest.approx(1310 / (5.85 - 3.0730), rel=1e-4)  # 471.7 months
    assert ln.answer.decision == "API" and ln.answer.all_in_usd == pytest.approx(3.0730 + amort, abs=1e-4)
