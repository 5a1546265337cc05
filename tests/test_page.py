"""The report page (results/report.html) in a real browser: Debian's Chromium driven by Playwright, the file opened
from disk. Its calculator must give `shadowbench cost --json`'s numbers for many questions (the two cost models are
pinned together here), load with no network and no console error, react to its inputs and refuse bad ones."""
import json
import math
import random
import shutil
import time

import pytest

from analysis.report import write_report

from .conftest import copy_fixture_rows, cost_json

pytestmark = pytest.mark.slow


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is not installed: `make browser` installs Debian's package"
    return exe


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    results = copy_fixture_rows(tmp_path_factory.mktemp("site") / "results")
    write_report(results, plots=False)
    return results


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, site):
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    pg.requests, pg.problems = [], []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("console", lambda m: pg.problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    pg.goto((site / "report.html").as_uri())
    pg.wait_for_function("window.sbResult !== undefined")
    yield pg
    pg.close()


def ask(pg, q: dict) -> dict | None:
    """Put a question into the page's form the way a person would, and read the page's answer."""
    pg.select_option("#kind", q["kind"])
    pg.select_option("#basis", q["basis"])
    pg.select_option("#build", q["build"])
    pg.select_option("#api", q["api"])
    fields = {"tasks": q["n"], "hours": q["hours"], "hardware": q["hardware"], "lifetime": q["lifetime"],
              "tou": q.get("tou", ""), "onfrom": q.get("on_from", 0), "kwh": q.get("kwh", 0.12)}
    if q["kind"] == "llm":
        fields |= {"prompt": q["prompt"], "output": q["output"]}
    for fid, v in fields.items():
        pg.fill(f"#{fid}", str(v))
    pg.set_checked("#owned", bool(q.get("own")))
    pg.set_checked("#anyway", bool(q.get("anyway")))
    return pg.evaluate("window.sbResult")


def cli_args(q: dict) -> list[str]:
    a = ["--kind", q["kind"], "--requests-per-day", str(q["n"]), "--api", q["api"], "--build", q["build"],
         "--hours-per-day", str(q["hours"]), "--hardware-usd", str(q["hardware"]),
         "--lifetime-years", str(q["lifetime"])]
    if q["kind"] == "llm":
        a += ["--prompt-tokens", str(q["prompt"]), "--output-tokens", str(q["output"])]
    a += ["--tou", q["tou"], "--on-from", str(q["on_from"])] if q.get("tou") else ["--usd-per-kwh", str(q["kwh"])]
    a += ["--already-own"] * bool(q.get("own")) + ["--box-on-anyway"] * bool(q.get("anyway"))
    if q["basis"] == "anchor":
        a += ["--local-power", "anchor"]
    else:
        machine, workload, _ = q["basis"].split("|")
        a += ["--local-power", "measured", "--machine", machine, "--workload", workload]
    return a


def questions(data: dict, count: int) -> list[dict]:
    """Questions over every kind, basis and API the page offers: zero volumes, volumes beyond capacity, "never",
    time-of-use tariffs, long prompts past an API's price tier."""
    rng = random.Random(20261125)
    out = []
    for i in range(count):
        kind = ["llm", "llm", "stt", "tts", "image", "embed"][i % 6]
        builds_ = [b for b, v in data["builds"].items() if kind in v["anchors"]]
        measured = [o["id"] for o in data["local"] if o["price_kind"] == kind]
        basis = rng.choice(["anchor"] * bool(builds_) + measured * 2)
        build = rng.choice(builds_) if basis == "anchor" else rng.choice(list(data["builds"]))
        if basis != "anchor" and not data["builds"][build]["busy_wall_w"]:
            pass  # measured rows carry energy: a build without wall power is fine for them
        unit_n = {"llm": [0, 50, 700, 2000, 30000, 2_000_000], "stt": [0, 30, 600, 50_000],
                  "tts": [0, 20_000, 2_000_000, 5e8], "image": [0, 10, 500, 100_000],
                  "embed": [0, 100_000, 5_000_000, 5e9]}[kind]
        q = {"kind": kind, "basis": basis, "build": build, "api": rng.choice(sorted(data["apis"][kind])),
             "n": rng.choice(unit_n), "hours": rng.choice([1, 4, 8, 12.5, 24]),
             "hardware": rng.choice([0, 740, 1310, 2500.5]), "lifetime": rng.choice([1, 3, 4, 6.5]),
             "prompt": rng.choice([0, 100, 500, 4000, 250_000]), "output": rng.choice([1, 50, 200, 1000])}
        if i % 4 == 3:
            q["tou"], q["on_from"] = rng.choice(["0-7:0.10,7-23:0.31,23-24:0.10", "0-24:0.2",
                                                  "0-6:0.05,6-18:0.4,18-24:0.25"]), rng.choice([0, 8, 20.5])
        else:
            q["kwh"] = rng.choice([0, 0.12, 0.31, 5])
        # the framing toggles, on a fixed share of the questions (the random stream above stays as it was)
        q["own"] = i % 5 == 1
        q["anyway"] = i % 3 == 2 and data["builds"][build]["device_idle_w"] is not None
        out.append(q)
    return out


NUMBERS = ["api_per_task_usd", "api_monthly_usd", "usd_per_kwh", "breakeven_months", "capacity_per_day",
           "busy_hours_per_day", "idle_wall_w", "served_per_day", "overflow_per_day", "overflow_api_usd",
           "running_usd", "all_in_usd", "crossover_per_day", "payback_per_day"]


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_calculator_gives_shadowbench_costs_numbers(page, site):
    data = json.loads(page.eval_on_selector("#sb-data", "e => e.textContent"))
    qs = questions(data, 60)
    kinds_seen, over, never, zero = set(), 0, 0, 0
    for q in qs:
        got = ask(page, q)
        want = cost_json(site, cli_args(q))
        assert got is not None, (q, page.inner_text("#outputs"))
        for k in NUMBERS:
            assert _same(got[k], want[k]), (k, got[k], want[k], q)
        for part in ("per_task", "monthly"):
            for k, v in want[part].items():
                assert _same(got[part][k], v), (part, k, got[part][k], v, q)
        assert got["over_capacity"] == want["over_capacity"] and got["estimated"] == want["estimated"], q
        assert got["decision"] == want["decision"] and got["already_own"] == want["already_own"], q
        # what the page shows: monthly figures to the cent, per task to 3 significant figures
        for key, v in [("api_monthly_usd", want["api_monthly_usd"])] + [
                (f"monthly.{k}", v) for k, v in want["monthly"].items()]:
            shown = page.inner_text(f'#outputs td[data-key="{key}"]')
            assert (shown == "") == (v is None), (key, shown, v, q)
            if v is not None:  # to the cent (a half cent may round either way)
                assert shown.startswith("$") and abs(float(shown[1:].replace(",", "")) - v) <= 0.005 + 1e-9, (
                    key, shown, v, q)
        for k, v in want["per_task"].items():
            shown = page.inner_text(f'#outputs td[data-key="per_task.{k}"]').lstrip("$")
            scale = data["pricing"][q["kind"]]["display_scale"]
            assert (shown == "") == (v is None) and (v is None or v == 0 or
                                                     float(shown) == pytest.approx(v * scale, rel=5e-3)), (k, shown, v)
        kinds_seen.add(q["kind"])
        over += want["over_capacity"]
        never += want["breakeven_months"] is None and not want["over_capacity"]
        zero += q["n"] == 0
    assert kinds_seen == {"llm", "stt", "tts", "image", "embed"}
    assert sum(q["own"] for q in qs) >= 10 and sum(q["anyway"] for q in qs) >= 3
    assert over >= 3 and never >= 3 and zero >= 3, (over, never, zero)
    assert page.problems == []


def test_page_is_one_file_with_no_network_and_draws_its_charts(page, site, tmp_path):
    assert page.requests == [(site / "report.html").as_uri()]
    assert page.problems == []
    assert page.locator("#report table").count() >= 5  # the report's tables
    assert page.locator("#report .figure .panel .main-svg").count() >= 6  # its charts, drawn by plotly
    assert page.locator("#cumulative .main-svg").count() >= 1
    text = page.inner_text("#report")
    assert "ESTIMATED" in text and "What a quantization costs in quality" in text
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    from PIL import Image, ImageStat

    img = Image.open(shot).convert("L")
    assert img.size == (1280, 900)
    assert ImageStat.Stat(img).stddev[0] > 20  # not a blank page


def test_a_shared_link_reproduces_the_answer(page, browser, site):
    q = {"kind": "llm", "basis": "anchor", "build": "rtx4060ti", "api": "claude-haiku-4-5", "n": 20000,
         "hours": 12, "hardware": 900, "lifetime": 3, "prompt": 600, "output": 150, "kwh": 0.31, "own": False,
         "anyway": True}
    want = ask(page, q)
    link = page.url
    assert "#" in link and "tasks=20000" in link and "anyway=1" in link
    other = browser.new_page()
    try:
        other.goto(link)
        other.wait_for_function("window.sbResult !== undefined && window.sbResult !== null")
        got = other.evaluate("window.sbResult")
        assert got == want
        assert other.inner_text("#verdict") == page.inner_text("#verdict")
    finally:
        other.close()


def test_thousands_separators_and_a_long_life_draw_at_most_a_few_hundred_points(page):
    page.fill("#tasks", "1,500")
    assert page.evaluate("window.sbResult")["tasks_per_day"] == 1500
    page.fill("#lifetime", "100")
    n = page.evaluate("document.getElementById('cumulative').data[0].x.length")
    assert n <= 601


def test_moving_an_input_moves_the_answer(page):
    before = page.evaluate("window.sbResult")
    verdict = page.inner_text("#verdict")
    page.fill("#kwh", "0.45")
    assert page.inner_text("#verdict") != verdict
    assert page.evaluate("window.sbResult")["monthly"]["energy_usd"] > before["monthly"]["energy_usd"]
    page.fill("#tasks", str(before["tasks_per_day"] * 10))
    after = page.evaluate("window.sbResult")
    assert after["api_monthly_usd"] == pytest.approx(before["api_monthly_usd"] * 10)
    assert after["over_capacity"] and "OVER CAPACITY" in page.inner_text("#verdict")
    assert "go to the API" in page.inner_text("#verdict") and "priced capped" in page.inner_text("#verdict")


def test_the_750_a_day_3090_question_is_not_green_and_names_its_payback_volume(page, site):
    """The audit's question: local is cheaper to run, but not all-in within the box's 4-year life."""
    page.select_option("#kind", "llm")
    page.select_option("#basis", "anchor")
    page.select_option("#build", "rtx3090")
    page.select_option("#api", "claude-haiku-4-5")
    for fid, v in {"tasks": "750", "prompt": "600", "output": "150", "hours": "24", "kwh": "0.31",
                   "hardware": "1310", "lifetime": "4"}.items():
        page.fill(f"#{fid}", v)
    r = page.evaluate("window.sbResult")
    want = cost_json(site, ["--requests-per-day", "750", "--prompt-tokens", "600", "--output-tokens", "150", "--api",
                            "claude-haiku-4-5", "--build", "rtx3090", "--usd-per-kwh", "0.31", "--hours-per-day",
                            "24", "--local-power", "anchor"])
    assert r["decision"] == want["decision"] == "API"
    verdict = page.inner_text("#verdict")
    assert "bad" in page.get_attribute("#verdict", "class") and verdict.startswith("the API is cheaper")
    assert f"from {math.ceil(want['payback_per_day']):,} requests/day" in verdict
    assert "to run: local saves" in page.inner_text("#running")


@pytest.mark.parametrize("fid, value, message", [
    ("tasks", "-5", "0 or more"), ("hours", "30", "at most 24"), ("hours", "0", "more than 0"),
    ("lifetime", "", "required"), ("kwh", "abc", "a number"), ("prompt", "12.5", "whole number"),
    ("tou", "0-7:0.1,8-24:0.2", "covering 0-24"),
    # bounded as the command line bounds them (analysis/frame.py): no freeze, no 300-digit dollars
    ("lifetime", "1e6", "at most 100 years"), ("lifetime", "1e9", "at most 100 years"),
    ("tasks", "1e300", "at most 1,000,000,000,000"), ("kwh", "500", "at most $100"),
])
def test_bad_input_is_named_beside_its_field_never_nan(page, fid, value, message):
    t = time.perf_counter()
    page.fill(f"#{fid}", value)
    assert time.perf_counter() - t < 1.0  # answered at once, never a freeze
    assert message in page.inner_text(f"#err-{fid}")
    assert page.evaluate("window.sbResult") is None
    out = page.inner_text("#outputs")
    assert "fix the marked fields" in out and "NaN" not in out and "NaN" not in page.inner_text("#calculator")


def test_a_case_study_task_loads_into_the_calculator_and_prices_as_cost_does(page, site):
    data = json.loads(page.eval_on_selector("#sb-data", "e => e.textContent"))
    loaded = priced = 0
    for i, m in enumerate(data["mixes"]):
        for j, t in enumerate(m["tasks"]):
            page.fill("#tou", "")
            page.select_option("#mix", f"{i}:{j}")
            assert page.input_value("#kind") == t["kind"] and page.input_value("#build") == m["build"]
            assert page.input_value("#api") == t["api"]
            loaded += 1
            got = page.evaluate("window.sbResult")
            b = data["builds"][m["build"]]
            args = ["--kind", t["kind"], "--requests-per-day", repr(t["per_day"]), "--api", t["api"], "--build",
                    m["build"], "--prompt-tokens", str(t["prompt_tokens"]), "--output-tokens", str(t["output_tokens"]),
                    "--local-power", "anchor", "--hours-per-day", str(b["hours_per_day"]),
                    "--lifetime-years", str(b["lifetime_years"]),
                    "--hardware-usd", str(b["hardware_usd"] if b["hardware_usd"] is not None else 0)]
            if t["kind"] not in b["anchors"]:  # no speed figure for this kind on the mix's build: both say so
                assert got is None and "has no" in page.inner_text("#outputs")
                continue
            want = cost_json(site, args)
            assert math.isclose(got["api_monthly_usd"], want["api_monthly_usd"], rel_tol=1e-8)
            assert math.isclose(got["monthly"]["running_usd"], want["monthly"]["running_usd"], rel_tol=1e-8)
            priced += 1
    assert loaded >= 10 and priced >= 3
    assert page.problems == []


HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> a|b'


def test_a_hostile_workload_name_is_text_in_the_page(browser, tmp_path):
    """A results file can name anything: a workload called <script>... is shown as text, runs nothing and adds no
    element, in the report's tables, captions and the calculator's lists."""
    import csv

    res = copy_fixture_rows(tmp_path / "results")
    for f in res.rglob("*-quick.csv"):
        rows = list(csv.DictReader(open(f, newline="")))
        for r in rows:
            r["workload"] = HOSTILE
        with open(f, "w", newline="") as out:
            w = csv.DictWriter(out, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    write_report(res, plots=False)
    import re

    html = (res / "report.html").read_text()
    # outside the data blocks (JSON inside <script type="application/json">, where "</" is written "<\\/"), the name is
    # escaped wherever the report shows it
    shown = re.sub(r'<script id="sb-[a-z]+" type="application/json">.*?</script>', "", html, flags=re.S)
    assert "<script>window.__xss" not in shown and "<img src=x" not in shown and "&lt;script&gt;window.__xss" in shown
    pg = browser.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto((res / "report.html").as_uri())
    pg.wait_for_function("window.sbResult !== undefined")
    assert pg.evaluate("window.__xss") is None and errors == []
    pg.wait_for_timeout(500)  # the charts drawn, the calculator answered
    assert pg.evaluate("window.__xss") is None
    assert pg.evaluate("document.querySelectorAll('img, svg image, iframe, object').length") == 0
    assert pg.evaluate("[...document.scripts].filter(s => s.type !== 'application/json' "
                       "&& s.textContent.includes('__xss=1')).length") == 0
    # and the name is there, as text, in the report's tables
    assert pg.evaluate(f"document.getElementById('report').innerText.includes({HOSTILE!r})")
    pg.close()


def test_a_phone_sees_the_verdict_first_and_nothing_wider_than_its_screen(browser, site):
    pg = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    try:
        pg.goto((site / "report.html").as_uri())
        pg.wait_for_function("window.sbResult !== undefined")
        pg.select_option("#mix", index=1)  # a case study's task: the long option texts that once widened the form
        form = pg.eval_on_selector("#inputs", "e => e.getBoundingClientRect().width")
        assert form <= 400
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390  # no horizontal scroll
        pg.goto((site / "report.html").as_uri())  # the default question, answered
        pg.wait_for_function("window.sbResult !== undefined && window.sbResult !== null")
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        pg.eval_on_selector("#calculator", "e => e.scrollIntoView()")
        top = pg.eval_on_selector("#verdict", "e => e.getBoundingClientRect()")
        assert 0 <= top["y"] and top["y"] + top["height"] <= 844 and top["x"] + top["width"] <= 390
    finally:
        pg.close()


def phone_screenshot(report_html, out) -> None:
    """results/figures/calculator-phone.png: the calculator at 390x844 (`make phone-screenshot`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        pg = b.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        pg.goto(report_html.resolve().as_uri())
        pg.wait_for_function("window.sbResult !== undefined")
        pg.eval_on_selector("#calculator", "e => e.scrollIntoView()")
        pg.screenshot(path=str(out))
        b.close()
