"""The report on committed results, `shadowbench cost` and `prices` from the command line, bad results files."""

import json

import matplotlib.image as mpimg

import pytest

from analysis.report import write_report

from .conftest import GOLDEN_REPORT, run_cli


def test_report_on_committed_results_writes_images_with_sources(committed_results):
    out, problems = write_report(committed_results)
    assert problems == []
    text = out.read_text()
    figs = sorted((out.parent / "figures").glob("*.png"))
    assert {f.name for f in figs} >= {"throughput.png", "energy.png", "usd_per_1k_requests.png",
                                      "cumulative_cost.png", "routing.png", "serving.png"}
    for f in figs:
        img = mpimg.imread(f)  # opens as an image
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert f"figures/{f.name}" in text
    # each figure is followed by a caption naming its rows or catalog entries
    for block in text.split("![")[1:]:
        caption = block.split("\n\n", 2)[1]
        assert caption.startswith("*Figure") and ("results/" in caption or "Rows:" in caption
                                                   or "Catalog entries" in caption or "measured rows" in caption)
    assert "ESTIMATED" in text  # this box's energy is an estimate and says so
    assert "genai-prices 0.2.3" in text and "2025-10" in text  # the prices' dates
    # healthcare: one basis (the build's catalog figures, as cost and advise price it), the guide's flat power beside
    assert "**5.5 months** | 5.9 months ($20.00/month)" in text
    assert "**over capacity** (needs 30.9 busy hours a day; the box is on 8)" in text  # GPT-4.1-mini at 10,000/day
    assert "(years of 365.25 days" in text or "years of 365.25 days" in text


def test_golden_report_from_the_fixture_rows(committed_results):
    """tests/data/REPORT.md is what `shadowbench report` makes of the fixture rows and the catalogs today (all but its
    timestamp line): a change that alters the report regenerates it (`make golden`) and shows the change in review.
    (Whether results/REPORT.md matches the repository's own rows is `make report-check`, which CI runs after the
    tests: a user's committed run never fails `make test`.)"""
    out, problems = write_report(committed_results, plots=False)
    assert problems == []

    def body(text):
        return [line for line in text.splitlines() if not line.startswith("Generated ")]

    assert body(out.read_text()) == body(GOLDEN_REPORT.read_text()), (
        "tests/data/REPORT.md is stale: run `make golden`, read the difference and commit it")


def test_endpoint_rows_appear_per_step(committed_results):
    out, _ = write_report(committed_results, plots=False)
    text = out.read_text()
    section = text.split("## Serving")[1].split("\n## ")[0]
    for step in ("| c1 |", "| c2 |", "| c4 |"):
        line = next(x for x in section.splitlines() if step in x)
        cells = [c.strip() for c in line.split("|")]
        agg, ttft, jpt = cells[7], cells[9], cells[12]
        assert float(agg) > 0 and len(ttft.split(" / ")) == 3 and "ESTIMATED" in jpt and float(jpt.split()[0]) > 0
    assert "figures/serving.png" in text


def test_bad_results_files_are_named_and_the_rest_used(committed_results):
    good = next(p for p in committed_results.rglob("*.csv") if not p.name.endswith(".power.csv"))
    lines = good.read_text().splitlines()
    (good.parent / "corrupt.csv").write_text("\n".join(lines[:2] + [lines[2][:40]]) + "\n")
    (good.parent / "future.csv").write_text("\n".join([lines[0], "9" + lines[1][1:]]) + "\n")
    header = lines[0].split(",")
    i = header.index("energy_source")
    drop = lambda line: ",".join(v for k, v in enumerate(line.split(",")) if k != i)  # noqa: E731
    (good.parent / "missing.csv").write_text("\n".join(drop(x) for x in lines[:3]) + "\n")
    out, problems = write_report(committed_results)
    text = " | ".join(problems)
    assert "corrupt.csv: line 3" in text
    assert "future.csv: line 2: schema_version" in text
    assert "missing.csv: line 1" in text and "energy_source" in text
    assert len(problems) == 3
    assert good.name in out.read_text()  # the good file is still used
    r = run_cli("report", "--results-dir", committed_results)
    assert r.returncode == 0 and r.stdout.count("warning: left out") == 3


def test_cost_cli_golden_and_rows_used(committed_results):
    r = run_cli("cost", "--kind", "llm", "--requests-per-day", 2000, "--prompt-tokens", 500, "--output-tokens", 200,
                "--api", "claude-3-5-haiku", "--build", "rtx4060ti", "--local-power", "guide")
    assert r.returncode == 0, r.stderr
    verdict = r.stdout.splitlines()[0]
    # all-in: $9 flat power + $740 over 4 years ($15.20/month) = $24.20 against $72.00; 740 / 63 = 11.7 months
    assert verdict == ("verdict: local is cheaper all-in: $24.20/month against the API's $72.00 at 2,000 requests/day "
                       "($15.20 of hardware a month included); break-even 11.7 months for $740 of hardware, within its "
                       "4-year life [the guide's flat $9/month power figure, as asked: not a measurement of this box]")
    assert r.stdout.splitlines()[1].startswith("to run: local saves $63.00/month (API $72.00 vs local running $9.00)")
    assert r.stdout.splitlines()[2].startswith("frame: the guide's flat power figure; rtx4060ti, $740 of hardware")
    assert "note: claude-3-5-haiku is retired 2026-02-19, successor claude-haiku-4-5" in r.stdout
    assert "capacity: 9,216 requests/day in 8 h" in r.stdout  # the guide mode checks capacity with the speed figure
    r = run_cli("cost", "--requests-per-day", 50, "--api", "claude-3-5-haiku", "--build", "rtx4060ti",
                "--local-power", "guide")
    assert "the API is cheaper: $1.80/month against local all-in $24.20" in r.stdout and "break-even never" in r.stdout
    # measured rows of this box: named in the output, labeled as estimated energy
    r = run_cli("cost", "--requests-per-day", 2000, "--api", "claude-3-5-haiku", "--build", "ci-cpu-vm",
                "--results-dir", committed_results, "--workload", "smollm2-135m-q4_1")
    assert r.returncode == 0, r.stderr
    assert "rows used: " in r.stdout and "pp500+tg200" in r.stdout and "ESTIMATED" in r.stdout
    # the rows' measured idle baseline is the idle figure, and it says so
    assert "idle at the wall: 0.1" in r.stdout and "[the rows' measured idle baseline ÷ PSU efficiency (ESTIMATED)]" \
        in r.stdout
    # two in-process LLM workloads with as many rows (one run of each): the user names one
    for later in sorted(committed_results.rglob("*-quick.csv"))[1:]:
        later.unlink()
    r = run_cli("cost", "--requests-per-day", 2000, "--api", "claude-3-5-haiku", "--build", "ci-cpu-vm",
                "--results-dir", committed_results)
    assert r.returncode == 2 and "have as many rows each: name one with --workload" in r.stderr
    assert "in-process-parallel-smollm2" in r.stderr and "smollm2-135m-q4_1" in r.stderr


def test_cost_cli_over_capacity_prices_the_capped_mix_with_its_break_even():
    r = run_cli("cost", "--requests-per-day", 20000, "--api", "claude-haiku-4-5", "--build", "rtx4060ti",
                "--local-power", "anchor")
    assert r.returncode == 0, r.stderr
    verdict = r.stdout.splitlines()[0]
    # 20,000 × 3.125 s is 17.4 busy hours; the box serves 8 × 3600 / 3.125 = 9,216 a day, the other 10,784 go to
    # the API at $0.0015 (500+200 tokens at $1/$5 per 1M): $485.28/month. The box at capacity: 8 h at 250 W busy
    # is 2 kWh a day, $7.20/month at $0.12; no idle hours left. Running: $492.48 against $900.00 all-API.
    assert verdict.startswith("verdict: OVER CAPACITY: the box serves 9,216 requests/day in 8 h; 10,784/day go to "
                              "the API ($485.28/month); priced capped: local is cheaper all-in")
    j = json.loads(run_cli("cost", "--requests-per-day", 20000, "--api", "claude-haiku-4-5", "--build", "rtx4060ti",
                           "--local-power", "anchor", "--json").stdout)
    assert j["served_per_day"] == pytest.approx(9216) and j["overflow_per_day"] == pytest.approx(10784)
    assert j["overflow_api_usd"] == pytest.approx(10784 * 0.0015 * 30)
    assert j["monthly"]["idle_usd"] == pytest.approx(0, abs=1e-9)
    running = 10784 * 0.0015 * 30 + 8 * 250 / 1000 * 0.12 * 30
    assert j["running_usd"] == pytest.approx(running) and running == pytest.approx(492.48)
    assert j["breakeven_months"] == pytest.approx(740 / (900 - running))  # about 1.8 months
    assert j["decision"] == "hybrid" and f"break-even {j['breakeven_months']:.1f} months" in verdict
    # with the guide's flat power, capacity still comes from the build's speed figure
    r = run_cli("cost", "--requests-per-day", 20000, "--api", "claude-haiku-4-5", "--build", "rtx4060ti",
                "--local-power", "guide")
    assert "OVER CAPACITY" in r.stdout.splitlines()[0]


def test_cost_cli_all_in_components():
    r = run_cli("cost", "--requests-per-day", 2000, "--api", "gpt-4o-mini", "--build", "rtx4060ti",
                "--local-power", "anchor")
    assert r.returncode == 0, r.stderr
    lines = {x.split("  ")[0]: x for x in r.stdout.splitlines()}
    assert "$0.000292" in lines["local all-in"] and "$17.55" in lines["local all-in"]
    assert "$0.000195" in lines["API"]
    assert "hardware amortization" in lines and "$740 over 4 years" in lines["hardware amortization"]


@pytest.mark.parametrize("args, flag", [
    (["--requests-per-day", "-5"], "--requests-per-day"),
    (["--requests-per-day", "nan"], "--requests-per-day"),
    (["--requests-per-day", "10", "--output-tokens", "-1"], "--output-tokens"),
    (["--requests-per-day", "10", "--hours-per-day", "25"], "--hours-per-day"),
    (["--requests-per-day", "10", "--hours-per-day", "0"], "--hours-per-day"),
    (["--requests-per-day", "10", "--usd-per-kwh", "-0.1"], "--usd-per-kwh"),
])
def test_cost_cli_bad_numbers_exit_2(args, flag):
    r = run_cli("cost", *args, "--api", "gpt-4o-mini", "--build", "rtx4060ti")
    assert r.returncode == 2, r.stdout
    [line] = r.stderr.strip().splitlines()
    assert flag in line


def test_cost_cli_api_of_the_wrong_kind():
    # without --kind, the kind is the --api id's own; a --kind that contradicts it is refused, naming the right one
    r = run_cli("cost", "--requests-per-day", 10, "--api", "whisper-1", "--build", "rtx4060ti")
    assert r.returncode == 0 and "10 audio minutes/day" in r.stdout
    r = run_cli("cost", "--kind", "llm", "--requests-per-day", 10, "--api", "whisper-1", "--build", "rtx4060ti")
    assert r.returncode == 2 and "whisper-1 is a stt price: use --kind stt" in r.stderr
    r = run_cli("cost", "--kind", "stt", "--requests-per-day", 10, "--api", "gpt-4o-mini", "--build", "rtx4060ti")
    assert r.returncode == 2
    assert "gpt-4o-mini is priced per token as an LLM model in the catalog (--kind llm" in r.stderr


def test_cost_cli_speech_and_images_from_build_speed_figures():
    r = run_cli("cost", "--kind", "image", "--requests-per-day", 100, "--api", "gpt-image-1-medium", "--build",
                "rtx4080-desktop", "--local-power", "anchor")
    assert r.returncode == 0, r.stderr
    assert "15 s busy per image" in r.stdout and "capacity: 1,920 images/day in 8 h" in r.stdout


def test_impossible_rows_are_named_and_left_out(committed_results):
    good = next(p for p in committed_results.rglob("*-quick.csv"))
    lines = good.read_text().splitlines()
    header = lines[0].split(",")
    wall, energy, audio = header.index("wall_s"), header.index("energy_j"), header.index("audio_s")

    def edit(line, i, v):
        cells = next(__import__("csv").reader([line]))
        cells[i] = v
        import io
        buf = io.StringIO()
        __import__("csv").writer(buf, lineterminator="").writerow(cells)
        return buf.getvalue()

    asr = next(i for i, x in enumerate(lines) if ",asr," in x)
    bad = [lines[0], edit(lines[1], wall, "0"), edit(lines[2], energy, "-5"), edit(lines[asr], audio, "0")]
    (good.parent / "impossible.csv").write_text("\n".join(bad) + "\n")
    out, problems = write_report(committed_results, plots=False)
    text = " | ".join(problems)
    assert "impossible.csv: line 2: wall_s: expected a window > 0 s" in text
    assert "impossible.csv: line 3: energy_j: expected >= 0 J" in text
    assert "impossible.csv: line 4: expected some work done (audio minutes > 0)" in text
    assert "inf" not in out.read_text() and "nan" not in out.read_text().lower().replace("nano", "")


def test_cost_cli_refuses_to_price_rows_without_energy_at_zero(committed_results):
    import csv as _csv

    for quick in committed_results.rglob("*-quick.csv"):
        rows = list(_csv.DictReader(open(quick)))
        for r in rows:
            r["energy_j"], r["energy_source"] = "", "none"
        with open(quick, "w", newline="") as f:
            w = _csv.DictWriter(f, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    r = run_cli("cost", "--requests-per-day", 100, "--api", "gpt-4o-mini", "--build", "ci-cpu-vm", "--results-dir",
                committed_results, "--workload", "smollm2-135m-q4_1")
    assert r.returncode == 2 and "the rows have no energy and ci-cpu-vm has no busy_wall_w" in r.stderr


def test_cost_cli_says_when_only_synthetic_weights_were_measured(committed_results):
    """SD 1.5's shapes with synthetic weights price SD 1.5's work, said in the verdict line itself; the tiny test
    pipeline never prices anything."""
    r = run_cli("cost", "--kind", "image", "--requests-per-day", 100, "--api", "gpt-image-1-medium", "--build",
                "ci-cpu-vm", "--results-dir", committed_results, "--workload", "sd15-synthetic-512")
    assert r.returncode == 0, r.stderr
    [verdict] = [ln for ln in r.stdout.splitlines() if ln.startswith("verdict:")]
    assert "[synthetic weights: the speed and energy of Stable Diffusion 1.5; its images are noise]" in verdict
    r = run_cli("cost", "--kind", "image", "--requests-per-day", 100, "--api", "gpt-image-1-medium", "--build",
                "ci-cpu-vm", "--results-dir", committed_results, "--workload", "tiny-sd-synthetic")
    assert r.returncode == 2 and "synthetic:tiny is a test shape" in r.stderr and "never prices" in r.stderr


def test_cost_cli_speech_from_measured_rows(committed_results):
    r = run_cli("cost", "--kind", "stt", "--requests-per-day", 600, "--api", "whisper-1", "--build", "ci-cpu-vm",
                "--results-dir", committed_results)
    assert r.returncode == 0, r.stderr
    assert "600 audio minutes/day" in r.stdout and "$108.00" in r.stdout  # 600 × 30 × $0.006
    assert "s busy per audio minute" in r.stdout and "ESTIMATED" in r.stdout
    assert "whisper-tiny.en/transcribe" in r.stdout
    assert "(no hardware price: running cost only)" in r.stdout.splitlines()[0]  # a VM share has no hardware price


def test_cost_cli_unknown_names_exit_2_with_close_matches():
    r = run_cli("cost", "--requests-per-day", 10, "--api", "claude-3-5-haikoo", "--build", "rtx4060ti")
    assert r.returncode == 2 and "claude-3-5-haiku" in r.stderr
    r = run_cli("cost", "--requests-per-day", 10, "--api", "claude-3-5-haiku", "--build", "rtx-3090")
    assert r.returncode == 2 and "close matches: rtx3090" in r.stderr


def test_prices_update_downloads_checks_and_is_used_only_when_named(tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    data = [{"id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
             "model_match": {"starts_with": "gpt-"},
             "models": [{"id": "gpt-4o-mini", "match": {"equals": "gpt-4o-mini"},
                         "prices": {"input_mtok": 0.2, "output_mtok": 0.8}}]}]

    class Prices(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps(data if self.path == "/data.json" else {"not": "prices"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Prices)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    try:
        r = run_cli("prices", "--update", "--url", f"{base}/data.json", env=env)
        assert r.returncode == 0, r.stderr
        [saved] = (tmp_path / "shadowbench" / "prices").glob("genai-prices-*.json")
        r = run_cli("prices", "--update", "--url", f"{base}/other", env=env)
        assert r.returncode == 1 and "did not answer with genai-prices data" in r.stderr
    finally:
        srv.shutdown()
        srv.server_close()
    r = run_cli("prices", "--update", "--url", "http://127.0.0.1:9/x", env=env)
    assert r.returncode == 1 and "the bundled snapshot stays in use" in r.stderr
    # the default stays the bundled snapshot; the file is used only when named, and named in the output
    plain = run_cli("cost", "--requests-per-day", 1000, "--api", "gpt-4o-mini", "--build", "rtx4060ti")
    assert "genai-prices 0.2.3" in plain.stdout and "$0.15/$0.6 per 1M" in plain.stdout
    named = run_cli("cost", "--requests-per-day", 1000, "--api", "gpt-4o-mini", "--build", "rtx4060ti",
                    env={"SHADOWBENCH_PRICE_DATA": str(saved)})
    assert named.returncode == 0, named.stderr
    assert "$0.2/$0.8 per 1M" in named.stdout and f"data file {saved.name}" in named.stdout


def test_prices_lists_dated_catalog():
    r = run_cli("prices")
    assert r.returncode == 0, r.stderr
    for needle in ("claude-3-5-haiku", "genai-prices 0.2.3", "whisper-1", "tts-1-hd", "dall-e-3", "2025-10",
                   "guide:claude-3-5-haiku", "$0.12/kWh", "Retired and deprecated models", "claude-sonnet-4-5",
                   "2026-05-12", "retired 2026-02-19, successor"):
        assert needle in r.stdout, needle


def test_cost_verdict_assumptions_and_framings():
    """A homelab question: 1,500 requests/day of 600+150 tokens on the RTX 3090 box, 24 h on, $0.31/kWh."""
    base = ["cost", "--requests-per-day", 1500, "--prompt-tokens", 600, "--output-tokens", 150, "--api",
            "claude-haiku-4-5", "--build", "rtx3090", "--usd-per-kwh", "0.31", "--hours-per-day", "24",
            "--local-power", "anchor"]
    r = run_cli(*base)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    api = 1500 * 30 * (600 * 1.0 + 150 * 5.0) / 1e6                       # $60.75
    busy_s = 150 / 115                                                    # 1.304 s at 600 W
    energy = 1500 * busy_s * 600 / 3.6e6 * 0.31 * 30                      # $3.03
    idle = 75 * (24 - 1500 * busy_s / 3600) / 1000 * 0.31 * 30            # $16.36
    amort = 1310 / (4 * 365.25 / 30)                                      # $26.90 a month
    be = 1310 / (api - energy - idle)                                     # 31.0 months
    assert out[0] == (f"verdict: local is cheaper all-in: ${energy + idle + amort:,.2f}/month against the API's "
                      f"${api:,.2f} at 1,500 requests/day (${amort:,.2f} of hardware a month included); break-even "
                      f"{be:.1f} months (2.6 years) for $1,310 of hardware, within its 4-year life")
    assert out[1].startswith(f"to run: local saves ${api - energy - idle:,.2f}/month (API ${api:,.2f} vs local "
                             f"running ${energy + idle:,.2f})")
    for line in ("  hardware: $1,310  [builds.toml rtx3090]", "  lifetime: 4 years  [builds.toml rtx3090]",
                 "  hours on: 24 h/day  [--hours-per-day]", "  idle at the wall: 75 W  [builds.toml rtx3090]",
                 "  busy at the wall: 600 W  [builds.toml rtx3090]",
                 # a speed figure's busy wall watts stand for the whole box: PSU and platform are not used
                 "  PSU efficiency: not used (no device energy: the busy wall watts stand for the whole box)  "
                 "[builds.toml rtx3090]",
                 "  rest of the platform while busy: not used (in the busy wall watts)  [builds.toml rtx3090]",
                 "  electricity: $0.31/kWh  [--usd-per-kwh]"):
        assert line in out, line
    assert any(x.startswith("  API price: claude-haiku-4-5 at $1/$5 per 1M") for x in out)
    assert "  API batch price: $0.5/$2.5 per 1M -> $30.38/month (for work that can wait up to a day)" in out
    assert any(x.startswith("quality: local Llama-3-8B Q4_K_M stands in for claude-haiku-4-5") for x in out)
    # the box is on anyway: only the 3090's own 22 W idle is added
    r = run_cli(*base, "--box-on-anyway")
    idle_gpu = 22 * (24 - 1500 * busy_s / 3600) / 1000 * 0.31 * 30
    assert r.stdout.splitlines()[1].startswith(
        f"to run: local saves ${api - energy - idle_gpu:,.2f}/month (API")
    assert f"{1310 / (api - energy - idle_gpu):.1f} months" in r.stdout.splitlines()[0]
    # already owned: the saving from day one, no break-even
    r = run_cli(*base, "--already-own", "--idle-w", "60")
    idle60 = 60 * (24 - 1500 * busy_s / 3600) / 1000 * 0.31 * 30
    assert r.stdout.splitlines()[0] == (f"verdict: the box you own saves ${api - energy - idle60:,.2f}/month from day "
                                        f"one at 1,500 requests/day (API ${api:,.2f} vs local "
                                        f"${energy + idle60:,.2f} running)")
    assert "  idle at the wall: 60 W  [--idle-w]" in r.stdout and "hardware: sunk (--already-own)" in r.stdout
    # and the same answer as JSON: nothing to pay back, so no break-even
    import json

    c = json.loads(run_cli(*base, "--already-own", "--idle-w", "60", "--json").stdout)
    assert c["already_own"] is True and c["breakeven_months"] is None
    assert c["monthly"]["running_usd"] == pytest.approx(energy + idle60) and c["monthly"]["amortization_usd"] is None


def test_cost_named_rows_that_cannot_be_used_exit_2(committed_results):
    r = run_cli("cost", "--requests-per-day", 100, "--api", "gpt-4o-mini", "--build", "rtx3090", "--results-dir",
                committed_results, "--machine", "cpu-amd-epyc-2c-24g", "--workload", "no-such-workload")
    assert r.returncode == 2 and "no-such-workload" in r.stderr and "<no such rows>" in r.stderr
    r = run_cli("cost", "--requests-per-day", 100, "--api", "gpt-4o-mini", "--build", "rtx3090", "--results-dir",
                committed_results, "--machine", "cpu-amd-epyc-2c-24g", "--workload", "smollm2-135m-q4_1")
    assert r.returncode == 0 and "warning: machine cpu-amd-epyc-2c-24g is not mapped to build rtx3090" in r.stdout
    # a 135M model's rows pricing a box whose reference model is an 8B: said, not hidden
    assert ("warning: the rows are of bundled:smollm2 (~0.135B parameters); build rtx3090's reference model is "
            "Llama-3-8B Q4_K_M (8B)") in r.stdout


def test_report_opens_with_the_users_question(committed_results, tmp_path):
    r = run_cli("report", "--results-dir", committed_results, "--out", tmp_path / "R.md", "--requests-per-day", 1500,
                "--api", "claude-haiku-4-5", "--build", "rtx3090", "--local-power", "anchor")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "R.md").read_text()
    assert text.index("## Your question") < text.index("## Measured on the committed boxes")
    question = text.split("## Your question")[1]
    assert "verdict: local is cheaper all-in" in question and "assumptions:" in question
    assert "[builds.toml rtx3090]" in question
    r = run_cli("report", "--results-dir", committed_results, "--requests-per-day", 1500)
    assert r.returncode == 2 and "expected all three for a question" in r.stderr


def test_quantization_table_and_pareto_from_committed_quality_rows(committed_results):
    from analysis import quality, rows
    from analysis.report import choices, shape

    p, o = shape()
    [fam] = quality.families(rows.load(committed_results)[0], p, o, choices()["requests_per_day"])
    by = {q.quant: q for q in fam.quants}
    assert fam.base == "smollm2-f16" and by["F16"].is_base and abs(by["F16"].kld_mean) < 1e-5
    assert by["Q8_0"].kld_mean < by["Q4_0"].kld_mean < by["Q2_K"].kld_mean
    assert by["Q8_0"].same_top_p > by["Q4_0"].same_top_p > by["Q2_K"].same_top_p
    assert by["Q4_1"].base_made_from and by["Q4_1"] not in fam.plotted()  # F16 was dequantized from it
    assert by["Q2_K"].bits_per_weight < by["Q8_0"].bits_per_weight < by["F16"].bits_per_weight
    front = fam.pareto()
    assert by["Q2_K"] in front  # the cheapest is always on the front
    for q in fam.plotted():
        assert (q in front) == (not any(r.usd_per_m_output <= q.usd_per_m_output and r.kld_mean < q.kld_mean
                                        for r in fam.plotted() if r is not q))
    out, _ = write_report(committed_results)
    text = out.read_text()
    sec = text.split("## What a quantization costs in quality")[1].split("\n## ")[0]
    assert "figures/quality_pareto_cpu-amd-epyc-2c-24g_smollm2-f16.png" in sec
    assert "| Q4 (4-bit) | 75% smaller | 5-10% accuracy loss |" in sec and "Q4_K_M: perplexity +2.8%, KLD 0.0313" in sec
    assert "the base was made from this file" in sec and "ESTIMATED" in sec
    assert "pp512 tok/s" in sec and "smollm2-f16/ppl, 1 rows" in sec
    assert "| smollm2-f16 | ppl |" not in text.split("## Measured on the committed boxes")[1].split("\n## ")[0]


def test_names_from_results_files_keep_markdown_tables_whole(committed_results):
    """A workload name with a | or a line break stays in its cell: every table row has its header's columns."""
    import csv

    for f in committed_results.rglob("*-quick.csv"):
        rows = list(csv.DictReader(open(f, newline="")))
        for r in rows:
            r["workload"] = "a|b\nc <script>x</script>"
        with open(f, "w", newline="") as out:
            w = csv.DictWriter(out, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    out, problems = write_report(committed_results, plots=False, page=False)
    text = out.read_text()
    assert "a\\|b c <script>x</script>" in text
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    # per table: the header's cell count equals every body row's
    cells, counts = 0, []
    for t in tokens:
        if t.type == "tr_open":
            cells = 0
        elif t.type in ("th_open", "td_open"):
            cells += 1
        elif t.type == "tr_close":
            counts.append(cells)
        elif t.type == "table_close":
            assert len(set(counts)) == 1, counts
            counts = []
