"""One pricing frame: `cost`, `cost --json` and `advise` on a one-task mix give the same answer to the same question,
to the cent; decisions count the hardware unless it is owned; over capacity the capped mix is priced."""
import json

import pytest

from analysis import frame
from analysis.advise import advise, render
from bench.errors import ConfigError

from .conftest import FIXTURE_MACHINE, FIXTURE_ROWS, run_cli

# (kind, volume/day, prompt, output, api, build, frame flags)
QUESTIONS = [
    ("llm", 600, 600, 150, "claude-haiku-4-5", "rtx3090", ["--usd-per-kwh", "0.31", "--hours-per-day", "24"]),
    ("llm", 600, 600, 150, "claude-haiku-4-5", "rtx3090", ["--usd-per-kwh", "0.31", "--hours-per-day", "24",
                                                           "--already-own"]),
    ("llm", 1500, 600, 150, "claude-haiku-4-5", "rtx3090", ["--usd-per-kwh", "0.31", "--hours-per-day", "24",
                                                            "--box-on-anyway"]),
    ("llm", 20000, 500, 200, "claude-haiku-4-5", "rtx4060ti", []),  # over capacity: capped
    ("llm", 1000, 500, 200, "gpt-4.1-mini", "rtx4060ti", ["--hardware-usd", "900", "--lifetime-years", "3"]),
    ("llm", 3000, 2000, 400, "gpt-4o", "rtx4090-desktop", ["--tou", "0-7:0.10,7-23:0.31,23-24:0.10",
                                                           "--on-from", "6", "--hours-per-day", "12"]),
    ("llm", 200, 500, 200, "gpt-4o-mini", "rtx3060-pc", ["--idle-w", "20", "--busy-w", "180"]),
    ("stt", 600, 0, 0, "whisper-1", "m1-or-rtx3060-1000", []),
    ("image", 300, 0, 0, "dall-e-3", "rtx4080-desktop", ["--usd-per-kwh", "0.25"]),
    ("tts", 2_000_000, 0, 0, "tts-1", "any-cpu-500", ["--already-own"]),
]


def _mix(tmp_path, kind, n, p, o, api, build) -> str:
    shape = f"prompt_tokens = {p}\noutput_tokens = {o}\n" if kind == "llm" else ""
    f = tmp_path / "one.toml"
    f.write_text(f'[scenario]\ntitle = "one"\nbuild = "{build}"\n[[tasks]]\nname = "t"\nkind = "{kind}"\n'
                 f'api = "{api}"\nunits_per_day = {n}\n{shape}')
    return str(f)


def _options(flags: list[str]) -> frame.Options:
    import argparse

    from analysis.commands import frame_arguments

    ap = argparse.ArgumentParser()
    frame_arguments(ap)
    return frame.Options.from_args(ap.parse_args(flags))


def _cents(v):
    return None if v is None else round(v, 2)


@pytest.mark.parametrize("q", QUESTIONS, ids=[f"{q[0]}-{q[1]}-{q[4]}-{q[5]}-{len(q[6])}" for q in QUESTIONS])
def test_cost_json_cost_text_and_advise_agree_to_the_cent(q, tmp_path):
    kind, n, p, o, api, build, flags = q
    args = ["cost", "--kind", kind, "--requests-per-day", n, "--api", api, "--build", build, "--local-power",
            "anchor", *flags] + (["--prompt-tokens", p, "--output-tokens", o] if kind == "llm" else [])
    r = run_cli(*args, "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    text = run_cli(*args).stdout
    a = advise(_mix(tmp_path, kind, n, p, o, api, build), options=_options(flags))
    [ln] = a.lines
    own = "--already-own" in flags
    # the same question: the same API bill, the same box, the same capped mix, the same break-even and decision
    assert _cents(ln.api_monthly) == _cents(j["api_monthly_usd"])
    assert _cents(a.all_local.running_usd) == _cents(j["running_usd"])
    assert _cents(a.all_local.all_in_usd) == _cents(j["all_in_usd"])
    assert _cents(ln.answer.breakeven_months) == _cents(j["breakeven_months"])
    assert ln.answer.decision == j["decision"] and ln.verdict.lower() == j["decision"].lower()
    assert a.frame.words("x").split("; ", 1)[1] == j["frame"].split("; ", 1)[1]  # the same frame, named alike
    # the text says what the JSON says
    assert f"${j['api_monthly_usd']:,.2f}" in text.splitlines()[0]
    assert text.splitlines()[2] == j["frame"]
    if own:
        assert j["breakeven_months"] is None and "from day one" in text.splitlines()[0]
    elif j["decision"] == "API":
        assert text.startswith("verdict: the API is cheaper") or "priced capped: the API is cheaper" in text
    else:
        assert "local is cheaper all-in" in text.splitlines()[0]
        assert j["breakeven_months"] <= 4 * 12.175 or "--lifetime-years" in flags
    # the recommended mix is the decision's: all API, or the box (at capacity, the rest on the API)
    if j["decision"] == "API":
        assert a.recommended.local is None and _cents(a.recommended.all_in_usd) == _cents(j["api_monthly_usd"])
    else:
        assert _cents(a.recommended.all_in_usd) == _cents(j["all_in_usd"])
        assert _cents(a.breakeven_months) == _cents(j["breakeven_months"])


def test_a_3090_at_600_a_day_is_not_local_unless_it_is_owned(tmp_path):
    """The audit's question: 600/day of 600+150 tokens to claude-haiku-4-5 on the rtx3090 build, $0.31/kWh, 24 h.
    Cheaper to run ($17.80 against $24.30) but $44.70 all-in: break-even 16.6 years on a 4-year box."""
    mix = _mix(tmp_path, "llm", 600, 600, 150, "claude-haiku-4-5", "rtx3090")
    a = advise(mix, options=frame.Options(usd_per_kwh=0.31, hours_per_day=24))
    [ln] = a.lines
    assert ln.verdict == "API" and "does not pay back" in ln.reason and "from 1,127/day" in ln.reason
    assert a.recommended.all_in_usd == pytest.approx(24.30, abs=0.005)
    assert a.all_local.all_in_usd == pytest.approx(44.70, abs=0.005)
    owned = advise(mix, options=frame.Options(usd_per_kwh=0.31, hours_per_day=24, already_own=True))
    assert owned.lines[0].verdict == "local" and owned.recommended.all_in_usd == pytest.approx(17.80, abs=0.005)
    assert owned.breakeven_months is None and "already owned" in render(owned)
    # the command line takes the same flags
    r = run_cli("advise", mix, "--usd-per-kwh", "0.31", "--hours-per-day", "24")
    assert r.returncode == 0 and "-> API: cheaper to run locally, but the box does not pay back" in r.stdout
    r = run_cli("advise", mix, "--usd-per-kwh", "0.31", "--hours-per-day", "24", "--already-own")
    assert "-> LOCAL" in r.stdout and "hardware already owned" in r.stdout


def test_a_mix_files_frame_keys_count_and_unknown_keys_are_refused(tmp_path):
    mix = tmp_path / "m.toml"
    body = ('[[tasks]]\nname = "chat"\nkind = "llm"\napi = "claude-haiku-4-5"\nunits_per_day = 600\n'
            'prompt_tokens = 600\noutput_tokens = 150\n')
    mix.write_text('[scenario]\nbuild = "rtx3090"\nusd_per_kwh = 0.31\nhours_per_day = 24\nalready_own = true\n'
                   'idle_w = 60\n' + body)
    a = advise(mix)
    assert a.frame.already_own and a.build.idle_wall_w == 60 and a.usd_per_kwh == 0.31
    assert a.lines[0].verdict == "local"
    # the command line goes on top of the file
    assert advise(mix, options=frame.Options(idle_w=75.0)).build.idle_wall_w == 75
    mix.write_text('[scenario]\nbuild = "rtx3090"\nidle_watts = 60\n' + body)
    with pytest.raises(ConfigError) as e:
        advise(mix)
    assert "scenario.idle_watts" in str(e.value) and "one of the known keys" in str(e.value)
    mix.write_text('[scenario]\nbuild = "rtx3090"\nusd_per_kwh = -1\n' + body)
    with pytest.raises(ConfigError) as e:
        advise(mix)
    assert "scenario.usd_per_kwh" in str(e.value)
    r = run_cli("advise", str(mix))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_an_embed_task_in_a_mix_is_priced_from_measured_rows(tmp_path):
    mix = tmp_path / "m.toml"
    mix.write_text('[[tasks]]\nname = "search index"\nkind = "embed"\napi = "text-embedding-3-small"\n'
                   'units_per_day = 5000000\n')
    a = advise(mix, machine=FIXTURE_MACHINE, results_dir=FIXTURE_ROWS)
    [ln] = a.lines
    assert ln.unit is not None and ln.unit.basis.startswith("measured") and ln.answer is not None
    assert ln.api_monthly == pytest.approx(5e6 * 0.02 / 1e6 * 30)  # $0.02 per 1M tokens
    r = run_cli("advise", str(mix), "--machine", FIXTURE_MACHINE, "--results-dir", FIXTURE_ROWS)
    assert r.returncode == 0, r.stderr
    assert "5e+06 tokens/day" in r.stdout or "5,000,000 tokens/day" in r.stdout


def test_rows_of_an_unmapped_machine_never_price_the_builds_idle(tmp_path):
    """One CPU run under another machine's name must not become the 3090's idle watts: `cost` and `advise` both
    keep the build's idle figure and say why."""
    mix = tmp_path / "m.toml"
    mix.write_text('[[tasks]]\nname = "chat"\nkind = "llm"\napi = "gpt-4o-mini"\nunits_per_day = 1000\n'
                   'prompt_tokens = 500\noutput_tokens = 128\n')
    a = advise(mix, machine=FIXTURE_MACHINE, build="rtx3090", results_dir=FIXTURE_ROWS)
    assert a.build.idle_wall_w == 75  # builds.toml rtx3090, not the CPU box's measured baseline
    assert any("not mapped to build rtx3090" in n for n in a.notes)
    r = run_cli("advise", str(mix), "--machine", FIXTURE_MACHINE, "--build", "rtx3090", "--results-dir", FIXTURE_ROWS)
    assert "warning: machine cpu-amd-epyc-2c-24g is not mapped to build rtx3090" in r.stdout
    j = json.loads(run_cli("cost", "--requests-per-day", 1000, "--output-tokens", 128, "--api", "gpt-4o-mini",
                           "--build", "rtx3090", "--machine", FIXTURE_MACHINE, "--results-dir", FIXTURE_ROWS,
                           "--json").stdout)
    assert j["idle_wall_w"] == 75 and any("not mapped to build rtx3090" in w for w in j["warnings"])


def test_volumes_per_week_and_the_kind_found_from_the_api():
    day = json.loads(run_cli("cost", "--requests-per-day", 50 / 7, "--api", "gpt-image-1-medium", "--build",
                             "rtx4080-desktop", "--json").stdout)
    week = run_cli("cost", "--requests-per-day", 50, "--per", "week", "--api", "gpt-image-1-medium", "--build",
                   "rtx4080-desktop", "--json")
    assert week.returncode == 0, week.stderr
    w = json.loads(week.stdout)
    assert w["kind"] == "image" and w["tasks_per_day"] == pytest.approx(50 / 7)
    assert w["api_monthly_usd"] == pytest.approx(day["api_monthly_usd"]) and w["all_in_usd"] == pytest.approx(
        day["all_in_usd"])
    text = run_cli("cost", "--requests-per-day", 50, "--per", "week", "--api", "gpt-image-1-medium", "--build",
                   "rtx4080-desktop").stdout
    assert "7.14286 images/day (50 per week)" in text
    # an image model priced per token is not an image price: the error names the image prices it may mean
    r = run_cli("cost", "--kind", "image", "--requests-per-day", 50, "--api", "gpt-image-1", "--build",
                "rtx4080-desktop")
    assert r.returncode == 2 and "an image price (gpt-image-1-medium" in r.stderr


def test_prices_lists_entries_older_than_six_months_as_stale():
    import datetime as dt

    from analysis import catalog

    today = dt.date(2026, 12, 5)
    assert catalog.stale("2026-06", today) == ""  # 6 months: still fresh
    assert catalog.stale("2025-10", today) == "as of 2025-10: 14 months old, re-check its source"
    assert catalog.stale("2026-05-31", today).startswith("as of 2026-05-31: 7 months old")
    r = run_cli("prices")
    assert r.returncode == 0
    dated = [p.as_of for k in catalog.UNIT_KINDS for p in catalog.unit_prices(k).values()]
    assert ("STALE" in r.stdout) == any(catalog.stale(d) for d in dated)


def test_the_reports_break_even_table_is_costs_answer():
    """Every one-task case of the guides' break-even examples: the report's figures (one basis, the build's catalog
    figures) are what `cost --local-power anchor --json` answers for the same question, over capacity capped."""
    from analysis import cost, scenarios

    asked = 0
    for f in scenarios.all_breakeven_files():
        for r in scenarios.compute(f, power="model"):
            if len(r.lines) != 1:
                continue
            [t] = r.lines
            per_day = t.units_per_month / cost.DAYS_PER_MONTH
            task = next(x for x in scenarios.load(f)["tasks"])
            args = ["cost", "--kind", t.kind, "--requests-per-day", per_day, "--api", t.price_id, "--build",
                    r.build.id, "--local-power", "anchor", "--json"]
            if t.kind == "llm":
                args += ["--prompt-tokens", task["prompt_tokens"], "--output-tokens", task["output_tokens"]]
            j = json.loads(run_cli(*args).stdout)
            assert _cents(j["api_monthly_usd"]) == _cents(r.api_monthly), (f.name, r.label)
            if r.over_capacity:
                c = scenarios.capped(r)
                assert j["over_capacity"] and _cents(j["breakeven_months"]) == _cents(c.breakeven_months)
            else:
                assert _cents(j["running_usd"]) == _cents(r.local.total_usd), (f.name, r.label)
                assert _cents(j["breakeven_months"]) == _cents(r.breakeven), (f.name, r.label)
            asked += 1
    assert asked >= 10


def test_one_request_is_priced_at_one_sequences_rate_not_the_batchs_aggregate():
    """The in-process parallel run decodes 1, 4 and 8 sequences together: one request is priced from the rows of one
    sequence (tg 164.6 tokens/s), never from the 4-sequence aggregate (201.6)."""
    from analysis import rows

    df, _ = rows.load(FIXTURE_ROWS)
    g = rows.newest(df[(df["machine"] == FIXTURE_MACHINE) & (df["workload"] == "in-process-parallel-smollm2")])
    assert {"pp100+tg128", "pp100+tg128x4"} <= set(g["test"])
    r = rows.llm_rates(g)
    one = g[g["test"] == "pp100+tg128"]
    assert r["tg_tokens_per_s"] == pytest.approx(one["tg_tokens_per_s"].median())
    u = rows.llm_unit(g, 100, 256)  # not a measured shape: from the one-sequence rates
    assert u.seconds == pytest.approx(100 / one["pp_tokens_per_s"].median() + 256 / one["tg_tokens_per_s"].median())


def test_the_cpu_meters_watts_are_not_added_twice_with_the_platform():
    """A GPU row's energy is the GPU counter plus the CPU meter: the build's platform watts (CPU, board, fans) add
    only what the CPU meter did not already count."""
    from dataclasses import replace

    from analysis import catalog, cost

    b = replace(catalog.build("rtx3090"), psu_efficiency=0.8, platform_busy_w=60.0)
    # 10 s at 400 W of device energy, a quarter of it the CPU meter's (10 W): 50 W of platform beyond it
    u = cost.LocalUnit(seconds=10.0, device_energy_j=4000.0, basis="measured", cpu_share=0.025)
    assert cost.wall_energy_j(u, b) == pytest.approx(4000 / 0.8 + 50 * 10)
    # a CPU meter above the platform figure: nothing more is added (never a negative platform)
    hot = replace(u, cpu_share=0.5)
    assert cost.wall_energy_j(hot, b) == pytest.approx(4000 / 0.8)
    # no CPU part in the rows: the whole platform figure
    assert cost.wall_energy_j(replace(u, cpu_share=0.0), b) == pytest.approx(4000 / 0.8 + 60 * 10)


def test_the_text_table_prints_every_component_per_request_and_per_month():
    args = ["cost", "--requests-per-day", 2000, "--prompt-tokens", 500, "--output-tokens", 200, "--api",
            "claude-haiku-4-5", "--build", "rtx4060ti", "--local-power", "anchor"]
    j = json.loads(run_cli(*args, "--json").stdout)
    row = next(x for x in run_cli(*args).stdout.splitlines() if x.startswith("hardware amortization"))
    per, month = row.split()[2:4]
    assert per == f"${j['per_task']['amortization_usd']:,.6f}" and month == f"${j['monthly']['amortization_usd']:,.2f}"


def test_a_zero_on_the_command_line_is_a_given_figure(tmp_path):
    """--usd-per-kwh 0 or --idle-w 0 are answers (free power, a box that idles at nothing), not "not given"."""
    mix = _mix(tmp_path, "llm", 600, 600, 150, "claude-haiku-4-5", "rtx3090")
    a = advise(mix, options=_options(["--usd-per-kwh", "0", "--idle-w", "0"]))
    assert a.usd_per_kwh == 0 and a.build.idle_wall_w == 0
    assert a.all_local.running_usd == 0
