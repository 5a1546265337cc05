/* shadowbench report page: the report's interactive charts and the cost calculator.
 *
 * The calculator is `shadowbench cost` in the browser. Its figures come from the JSON the report embedded
 * (analysis/page.py); the functions under "the cost model" are analysis/cost.py's, one for one, with the same
 * names in camelCase, and tests/test_page.py checks in Chromium that this page and `shadowbench cost --json` give
 * the same numbers for many questions. Change a formula in one place and that test fails until the other follows.
 */
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("sb-data").textContent);
  const FIGS = JSON.parse(document.getElementById("sb-figures").textContent);
  const CAL = D.calendar;
  const PLOT_CONFIG = {displaylogo: false, responsive: true, typesetMath: false};

  // ------------------------------------------------------------------ the cost model (analysis/cost.py)
  const MONTHS_PER_YEAR = CAL.days_per_year / CAL.days_per_month;

  function lifetimeMonths(b) { return b.lifetime_years * MONTHS_PER_YEAR; }

  function platformBeyondCpuW(unit, b) {  // cost.platform_beyond_cpu_w
    const cpuW = unit.device_energy_j && unit.seconds > 0 ? (unit.cpu_share || 0) * unit.device_energy_j / unit.seconds
      : 0;
    return Math.max(0, b.platform_busy_w - cpuW);
  }

  function wallEnergyJ(unit, b) {
    if (unit.device_energy_j === null) return b.busy_wall_w * unit.seconds;
    return unit.device_energy_j / b.psu_efficiency + platformBeyondCpuW(unit, b) * unit.seconds;
  }

  function amortizationMonthly(b) {
    return b.hardware_usd === null ? null : b.hardware_usd / lifetimeMonths(b);
  }

  function capacityPerDay(secondsPerTask, hoursOn) {
    return secondsPerTask > 0 ? hoursOn * 3600 / secondsPerTask : null;
  }

  function localMonthly(unit, tasksPerDay, b, usdPerKwh, days, hoursOn) {
    const busyH = tasksPerDay * unit.seconds / 3600;
    const energyKwh = tasksPerDay * wallEnergyJ(unit, b) / CAL.j_per_kwh;
    const idleKwh = (b.idle_wall_w === null ? 0 : b.idle_wall_w) * Math.max(0, hoursOn - busyH) / 1000;
    return {energy_usd: energyKwh * usdPerKwh * days, idle_usd: idleKwh * usdPerKwh * days,
            busy_hours_per_day: busyH, capacity_per_day: capacityPerDay(unit.seconds, hoursOn),
            over_capacity: busyH > hoursOn, amortization_usd: amortizationMonthly(b), tasks_per_day: tasksPerDay};
  }

  function totalUsd(m) { return m.energy_usd + m.idle_usd; }  // LocalMonthly.total_usd: the running cost

  function perTask(m) {  // LocalMonthly.per_task and TaskCost
    const n = m.tasks_per_day * CAL.days_per_month;
    const per = v => (n > 0 && v !== null) ? v / n : null;
    const t = {energy_usd: per(m.energy_usd), idle_usd: per(m.idle_usd), amortization_usd: per(m.amortization_usd)};
    t.running_usd = t.energy_usd === null ? null : t.energy_usd + (t.idle_usd || 0);
    t.all_in_usd = (t.running_usd === null || t.amortization_usd === null) ? null : t.running_usd + t.amortization_usd;
    return t;
  }

  function breakevenMonths(hardwareUsd, apiMonthly, localMonthlyUsd) {
    if (hardwareUsd === null) return null;
    const saving = apiMonthly - localMonthlyUsd;
    return saving <= 0 ? null : hardwareUsd / saving;
  }

  function touUsdPerKwh(table, hoursOn, onFrom) {
    let total = 0, t = onFrom;
    const end = onFrom + hoursOn;
    while (t < end - 1e-9) {
      const h = t % 24;
      const row = table.find(r => r[0] <= h && h < r[1]);
      const step = Math.min(end - t, row[1] - h);
      total += row[2] * step;
      t += step;
    }
    return total / hoursOn;
  }

  // cost.crossover_volume: the smallest daily volume from which local costs less to run (or, with withinMonths,
  // pays the hardware back within them); null if no volume the box can serve does
  function crossoverVolume(apiPerTask, unit, b, usdPerKwh, days, hoursOn, withinMonths) {
    const ok = n => {
      const m = localMonthly(unit, n, b, usdPerKwh, days, hoursOn);
      if (m.over_capacity) return null;
      const api = apiPerTask * n * days;
      if (withinMonths === null) return api > totalUsd(m);
      const be = breakevenMonths(b.hardware_usd, api, totalUsd(m));
      return be !== null && be <= withinMonths;
    };
    let hi = 1;
    for (;;) {
      const r = ok(hi);
      if (r === null) return null;
      if (r) break;
      hi *= 2;
      if (hi > 1e9) return null;
    }
    let lo = 0;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (ok(mid)) hi = mid; else lo = mid;
    }
    return hi;
  }

  function fmtVolume(v) {  // cost.fmt_volume
    if (v === null) return "no volume the box can serve";
    return v >= 10 ? Math.ceil(v).toLocaleString("en-US") : String(+(Math.ceil(v * 100) / 100).toPrecision(2));
  }

  function unitFromAnchor(b, kind, outputTokens) {  // cost.unit_from_anchor
    const a = b.anchors[kind];
    if (!a) return null;
    let seconds;
    if (kind === "llm") seconds = outputTokens / a.tg_tokens_per_s;
    else if (kind === "stt") seconds = 60 * a.rtf;
    else if (kind === "tts") seconds = a.rtf / a.chars_per_audio_s;
    else seconds = a.s_per_image;
    return {seconds: seconds, device_energy_j: null, estimated: false, basis: "anchor"};
  }

  // rows.llm_unit on the rows' figures (rows.llm_rates): an exactly measured shape, else pp and tg rates
  function llmUnit(r, promptTokens, outputTokens) {
    const e = r.exact.find(x => x.prompt_tokens === promptTokens && x.output_tokens === outputTokens);
    if (e) return {seconds: e.seconds, device_energy_j: e.energy_j, rows: e.rows};
    if (r.tg_tokens_per_s === null || (promptTokens && r.pp_tokens_per_s === null)) return null;
    const seconds = (promptTokens ? promptTokens / r.pp_tokens_per_s : 0) + outputTokens / r.tg_tokens_per_s;
    return {seconds: seconds, device_energy_j: r.power_w === null ? null : r.power_w * seconds, rows: r.rows};
  }

  function tierPrice(t, inputTokens) {  // genai-prices' "cliff" tiers, by the request's input tokens
    for (let i = t.tiers.length - 1; i >= 0; i--) if (inputTokens > t.tiers[i][0]) return t.tiers[i][1];
    return t.base;
  }

  function requestUsd(api, promptTokens, outputTokens) {  // catalog.LLMPrice.request_usd
    return (promptTokens * tierPrice(api.in, promptTokens) + outputTokens * tierPrice(api.out, promptTokens)) / 1e6;
  }

  // `shadowbench cost --json` for one question (analysis/commands.py cmd_cost)
  function answer(q) {
    const b = Object.assign({}, D.builds[q.build], {hardware_usd: q.hardware_usd, lifetime_years: q.lifetime_years,
                                                     hours_per_day: q.hours_per_day});
    if (q.box_on_anyway) {  // frame.build_frame: only the device's own idle is charged
      if (b.device_idle_w === null) {
        return {error: `build ${q.build} has no figure for the device's own idle draw: untick "on anyway"`};
      }
      b.idle_wall_w = b.device_idle_w;
    }
    const hours = b.hours_per_day, days = CAL.days_per_month, n = q.tasks_per_day;
    const kwh = q.tou ? touUsdPerKwh(q.tou, hours, q.on_from) : q.usd_per_kwh;
    const api = D.apis[q.kind][q.api];
    const apiPerTask = q.kind === "llm" ? requestUsd(api, q.prompt_tokens, q.output_tokens) : api.usd_per_unit;
    const apiMonthly = apiPerTask * n * days;
    let unit, opt = null;
    if (q.basis === "anchor") {
      unit = unitFromAnchor(b, q.kind, q.output_tokens);
      if (!unit) return {error: `build ${q.build} has no ${q.kind} speed figure: pick measured rows or another build`};
    } else {
      opt = D.local.find(o => o.id === q.basis);
      unit = q.kind === "llm" ? llmUnit(opt.llm, q.prompt_tokens, q.output_tokens)
        : {seconds: opt.unit.seconds, device_energy_j: opt.unit.energy_j, rows: opt.rows};
      if (!unit) return {error: "the rows lack the pp or tg rate this request needs"};
      unit.cpu_share = opt.cpu_share || 0;
      // frame.with_rows: only rows of a machine mapped to this build price its idle
      if (opt.idle_device_w !== null && D.machines[opt.machine] === q.build && !q.box_on_anyway) {
        b.idle_wall_w = opt.idle_device_w / b.psu_efficiency;
      }
    }
    if (unit.device_energy_j === null && !b.busy_wall_w) {
      return {error: `the rows have no energy and build ${q.build} has no busy wall-power figure`};
    }
    // frame.answer: over capacity, the box at its capacity and the rest on the API (the capped mix)
    const cap = capacityPerDay(unit.seconds, hours);
    const served = cap === null ? n : Math.min(n, cap);
    const local = localMonthly(unit, served, b, kwh, days, hours);
    const tc = perTask(local);
    const overflowApi = apiPerTask * (n - served) * days;
    const running = totalUsd(local) + overflowApi;
    const own = q.already_own;  // owned: nothing to pay back, decided on running cost
    const allIn = own ? running : local.amortization_usd === null ? null : running + local.amortization_usd;
    const be = own ? null : breakevenMonths(b.hardware_usd, apiMonthly, running);
    const wins = own || allIn === null ? running < apiMonthly : allIn < apiMonthly;
    return {
      served_per_day: served, overflow_per_day: n - served, overflow_api_usd: overflowApi, running_usd: running,
      all_in_usd: allIn, decision: !wins || served <= 0 ? "API" : served < n ? "hybrid" : "local",
      crossover_per_day: crossoverVolume(apiPerTask, unit, b, kwh, days, hours, null),
      payback_per_day: b.hardware_usd === null ? null
        : crossoverVolume(apiPerTask, unit, b, kwh, days, hours, lifetimeMonths(b)),
      kind: q.kind, tasks_per_day: n, api: q.api, build: q.build, usd_per_kwh: kwh, hours_per_day: hours,
      api_per_task_usd: apiPerTask, api_monthly_usd: apiMonthly, local_basis: q.basis === "anchor" ? "anchor" : "measured",
      estimated: !!(opt && opt.estimated), synthetic: !!(opt && opt.synthetic),
      already_own: own,
      per_task: Object.assign({}, tc, own ? {amortization_usd: null, all_in_usd: tc.running_usd} : {}),
      monthly: {energy_usd: local.energy_usd, idle_usd: local.idle_usd, running_usd: totalUsd(local),
                amortization_usd: own ? null : local.amortization_usd,
                all_in_usd: own ? totalUsd(local) : local.amortization_usd === null ? null
                  : totalUsd(local) + local.amortization_usd},
      breakeven_months: be, over_capacity: served < n, capacity_per_day: local.capacity_per_day,
      busy_hours_per_day: local.busy_hours_per_day, idle_wall_w: b.idle_wall_w,
      rows: unit.rows || (b.anchors[q.kind] ? `builds.toml ${q.build}: ${b.anchors[q.kind].model || ""} (` +
        `${b.anchors[q.kind].source || ""}), ${b.busy_wall_w} W at the wall while busy` : ""),
      lifetime_months: lifetimeMonths(b), lifetime_years: b.lifetime_years, hardware_usd: b.hardware_usd,
    };
  }

  // ------------------------------------------------------------------ the form
  const KIND_LABEL = {llm: "LLM requests", stt: "speech-to-text (audio minutes)", tts: "text-to-speech (characters)",
                      image: "images", embed: "embeddings (tokens)"};
  const form = document.getElementById("inputs");
  const outputs = document.getElementById("outputs");

  function field(id, label, html, help) {
    const w = document.createElement("div");
    w.className = "field";
    w.innerHTML = `<label for="${id}">${label}</label>${html}<span class="err" id="err-${id}" role="alert"></span>` +
      (help ? `<span class="help">${help}</span>` : "");
    form.appendChild(w);
    return w;
  }
  const num = (id, label, value, help) =>
    field(id, label, `<input id="${id}" name="${id}" type="text" inputmode="decimal" value="${value}">`, help);
  const sel = (id, label, help) => field(id, label, `<select id="${id}" name="${id}"></select>`, help);
  const $ = id => document.getElementById(id);
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

  function options(select, items, keep) {
    const old = select.value;
    select.innerHTML = items.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join("");
    if (keep && items.some(([v]) => v === old)) select.value = old;
  }

  sel("mix", "Load a task of a case study (optional)", "the guides' case studies and routing pattern " +
      "(shadowbench advise prices the whole mix)");
  sel("kind", "What to price");
  sel("basis", "Local speed and energy from", "measured rows of a committed box, or a build's catalog speed");
  sel("build", "Build (wall power, PSU, price)", "analysis/data/builds.toml");
  num("tasks", "Volume per day", D.defaults.requests_per_day);
  num("prompt", "Prompt tokens per request", D.defaults.prompt_tokens);
  num("output", "Output tokens per request", D.defaults.output_tokens);
  sel("api", "API to compare with");
  num("kwh", "Electricity, $ per kWh", D.tariff.usd_per_kwh, D.tariff.source);
  field("tou", "Time-of-use tariff (optional)",
        `<input id="tou" name="tou" type="text" placeholder="0-7:0.10,7-23:0.31,23-24:0.10">`,
        "hours from-to: $/kWh covering the day; replaces the flat price");
  num("onfrom", "Box switched on at hour", 0, "with a time-of-use tariff");
  num("hours", "Hours on per day", 8);
  num("hardware", "Hardware price, $", 0, "what the box costs (a box you have: tick the next box)");
  num("lifetime", "Lifetime, years", 4);
  const check = (id, label, help) => field(id, label, `<input id="${id}" name="${id}" type="checkbox">`, help);
  check("owned", "I already own the box", "the hardware is paid for: the answer is the saving from day one " +
        "(cost --already-own)");
  check("anyway", "The box is on anyway", "only the device's own idle draw is charged (cost --box-on-anyway)");

  $("mix").innerHTML = '<option value="">—</option>' + D.mixes.map((m, i) =>
    `<optgroup label="${esc(m.title)}">` + m.tasks.map((t, j) => `<option value="${i}:${j}">${esc(t.name)}` +
      (t.private ? " (private: local is mandatory)" : t.frontier ? " (needs a frontier model: API)" : "") +
      "</option>").join("") + "</optgroup>").join("");
  options($("kind"), Object.keys(KIND_LABEL).filter(k => D.apis[k] && Object.keys(D.apis[k]).length)
    .map(k => [k, KIND_LABEL[k]]));
  options($("build"), Object.entries(D.builds).map(([id, b]) => [id, `${id}: ${b.label}`]));

  function buildDefaults() {
    const b = D.builds[$("build").value];
    $("hours").value = b.hours_per_day;
    $("hardware").value = b.hardware_usd === null ? 0 : b.hardware_usd;  // no price in the catalog: yours, or 0
    $("lifetime").value = b.lifetime_years;
  }

  function kindChanged() {
    const kind = $("kind").value;
    const measured = D.local.filter(o => o.price_kind === kind).map(o => [o.id,
      `measured: ${o.machine} / ${o.workload}` + (o.estimated ? " (ESTIMATED energy)" : "") +
      (o.synthetic ? " (synthetic weights)" : "")]);
    options($("basis"), [["anchor", "catalog speed figure of the build below"], ...measured], true);
    const apis = Object.entries(D.apis[kind]).map(([id, a]) => [id, id + (a.note ? ` (${a.note})` : "")]);
    options($("api"), apis, true);
    if (kind === "llm" && D.apis.llm[D.defaults.api] && !apis.some(([v]) => v === $("api").dataset.user)) {
      $("api").value = D.defaults.api;
    }
    for (const id of ["prompt", "output"]) $(id).closest(".field").hidden = kind !== "llm";
    $("tasks").closest(".field").querySelector("label").textContent =
      {llm: "Requests per day", stt: "Audio minutes per day", tts: "Characters per day", image: "Images per day",
       embed: "Tokens embedded per day"}[kind];
  }

  function basisChanged() {
    const opt = D.local.find(o => o.id === $("basis").value);
    if (opt && D.machines[opt.machine] && D.builds[D.machines[opt.machine]]) {
      $("build").value = D.machines[opt.machine];
      buildDefaults();
    }
  }

  // ------------------------------------------------------------------ reading and checking the inputs
  function parseTou(text) {
    const rows = [];
    let at = 0;
    for (const part of text.split(",")) {
      const m = part.trim().match(/^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$/);
      if (!m) return null;
      const [a, b, r] = [Number(m[1]), Number(m[2]), Number(m[3])];
      if (a !== at || !(a < b && b <= 24)) return null;
      rows.push([a, b, r]);
      at = b;
    }
    return at === 24 ? rows : null;
  }

  function read() {
    const errors = {};
    const kind = $("kind").value;
    function number(id, ok, msg, integer) {
      let raw = $(id).value.trim();
      if (raw === "") { errors[id] = "required"; return null; }
      if (/^\d{1,3}(,\d{3})+(\.\d+)?$/.test(raw)) raw = raw.replace(/,/g, "");  // 1,500 is 1500
      const v = Number(raw);
      if (!Number.isFinite(v)) { errors[id] = "a number, please"; return null; }
      if (integer && !Number.isInteger(v)) { errors[id] = "a whole number"; return null; }
      if (!ok(v)) { errors[id] = msg; return null; }
      return v;
    }
    const q = {kind: kind, basis: $("basis").value, build: $("build").value, api: $("api").value};
    const L = D.limits;  // the command line's bounds (analysis/frame.py)
    const upTo = x => x.toLocaleString("en-US");
    q.tasks_per_day = number("tasks", v => v >= 0 && v <= L.volume, `0 or more, at most ${upTo(L.volume)}`);
    q.prompt_tokens = kind === "llm" ? number("prompt", v => v >= 0 && v <= L.tokens,
                                              `0 or more, at most ${upTo(L.tokens)}`, true) : 0;
    q.output_tokens = kind === "llm" ? number("output", v => v >= 0 && v <= L.tokens,
                                              `0 or more, at most ${upTo(L.tokens)}`, true) : 0;
    q.hours_per_day = number("hours", v => v > 0 && v <= 24, "more than 0 and at most 24");
    q.hardware_usd = number("hardware", v => v >= 0 && v <= L.hardware_usd,
                            `0 or more, at most $${upTo(L.hardware_usd)}`);
    q.lifetime_years = number("lifetime", v => v > 0 && v <= L.years, `more than 0, at most ${L.years} years`);
    q.already_own = $("owned").checked;
    q.box_on_anyway = $("anyway").checked;
    const tou = $("tou").value.trim();
    if (tou) {
      q.tou = parseTou(tou);
      if (!q.tou) errors.tou = 'hour ranges covering 0-24 in order, like 0-7:0.10,7-23:0.31,23-24:0.10';
      q.on_from = number("onfrom", v => v >= 0 && v < 24, "an hour from 0 to 23.99");
    } else {
      q.usd_per_kwh = number("kwh", v => v >= 0 && v <= L.usd_per_kwh, `0 or more, at most $${L.usd_per_kwh}`);
    }
    return {q, errors};
  }

  // ------------------------------------------------------------------ showing the answer
  const money = (v, digits) => v === null ? "" : "$" + v.toLocaleString("en-US",
    {minimumFractionDigits: digits, maximumFractionDigits: digits});
  const perUnit = v => v === null ? "" : "$" + (v === 0 ? "0" : v.toPrecision(4));
  function months(m) {
    if (m === null) return "never";
    return m >= 24 ? `${m.toFixed(1)} months (${(m * CAL.days_per_month / CAL.days_per_year).toFixed(1)} years)`
      : `${m.toFixed(1)} months`;
  }

  // frame.Answer.verdict and running_words: all-in over the box's life first
  function verdictWords(r, units) {
    const n = r.tasks_per_day.toLocaleString("en-US", {maximumFractionDigits: 6});
    let head = "";
    if (r.over_capacity) {
      head = `OVER CAPACITY: the box serves ${Math.round(r.served_per_day).toLocaleString("en-US")} ${units}/day in ` +
        `${r.hours_per_day} h; ${Math.round(r.overflow_per_day).toLocaleString("en-US")}/day go to the API ` +
        `(${money(r.overflow_api_usd, 2)}/month); priced capped: `;
    }
    const localWords = r.over_capacity ? "the box at capacity plus the overflow" : "local";
    if (r.already_own || r.hardware_usd === null) {
      const s = r.api_monthly_usd - r.running_usd;
      const who = r.already_own ? "the box you own" : "local (no hardware price: running cost only)";
      return head + `${who} ${s > 0 ? "saves" : "costs"} ${money(Math.abs(s), 2)}/month ` +
        (r.already_own ? "from day one " : "") + `at ${n} ${units}/day (API ${money(r.api_monthly_usd, 2)} vs ` +
        `${localWords} ${money(r.running_usd, 2)} running)`;
    }
    const life = `${r.lifetime_years}-year life`;
    if (r.decision !== "API") {
      return head + `local is cheaper all-in: ${money(r.all_in_usd, 2)}/month against the API's ` +
        `${money(r.api_monthly_usd, 2)} at ${n} ${units}/day (${money(r.monthly.amortization_usd, 2)} of hardware a ` +
        `month included); break-even ${months(r.breakeven_months)} for ${money(r.hardware_usd, 0)} of hardware, ` +
        `within its ${life}`;
    }
    const be = r.breakeven_months;
    const pays = r.payback_per_day === null ? "; no volume the box can serve pays it back within its life"
      : r.payback_per_day > r.tasks_per_day ? `; local pays back within its life from ${fmtVolume(r.payback_per_day)} ` +
        `${units}/day` : "";
    return head + `the API is cheaper: ${money(r.api_monthly_usd, 2)}/month against local all-in ` +
      `${money(r.all_in_usd, 2)} at ${n} ${units}/day (break-even ${months(be)}` +
      (be !== null ? `, beyond the box's ${life}` : "") + ")" + pays;
  }

  function runningWords(r, units) {
    const s = r.api_monthly_usd - r.running_usd;
    return `to run: local ${s > 0 ? "saves" : "costs"} ${money(Math.abs(s), 2)}/month (API ` +
      `${money(r.api_monthly_usd, 2)} vs local running ${money(r.running_usd, 2)}` +
      (r.over_capacity ? ", the box at capacity + the overflow on the API" : "") +
      `); local costs less to run from ${fmtVolume(r.crossover_per_day)} ${units}/day`;
  }

  function show() {
    const {q, errors} = read();
    for (const el of form.querySelectorAll(".err")) el.textContent = "";
    for (const [id, msg] of Object.entries(errors)) $("err-" + id).textContent = msg;
    const r = Object.keys(errors).length ? {error: "fix the marked fields"} : answer(q);
    window.sbResult = r.error ? null : r;
    saveState();
    if (r.error) {
      outputs.innerHTML = `<p class="verdict bad">${esc(r.error)}</p>`;
      Plotly.purge("cumulative");
      return;
    }
    const unit = D.pricing[q.kind];
    const scale = unit.display_scale, du = unit.display;
    const labels = [r.estimated ? "<strong>ESTIMATED energy</strong> (no energy counter on that box)" : "",
                    r.synthetic ? "<strong>synthetic weights</strong>: the pipeline's shape, not a real model" : ""]
      .filter(Boolean).join("; ");
    const verdict = verdictWords(r, unit.unit + "s"), second = runningWords(r, unit.unit + "s");
    const good = r.decision !== "API";
    const row = (name, t, m, note, key) =>
      `<tr><th scope="row">${name}</th><td data-key="per_task.${key}" data-value="${t === null ? "" : t}">` +
      `${perUnit(t === null ? null : t * scale)}</td><td data-key="monthly.${key}" data-value="${m === null ? "" : m}">` +
      `${money(m, 2)}</td><td>${note}</td></tr>`;
    const api = D.apis[q.kind][q.api];
    outputs.innerHTML = `
      <p class="verdict ${good ? "good" : "bad"}" id="verdict">${esc(verdict)}</p>
      <p class="running" id="running">${esc(second)}</p>
      ${labels ? `<p class="label">${labels}</p>` : ""}
      <table class="answer"><thead><tr><th></th><th>per ${esc(du)}</th><th>per month</th><th></th></tr></thead><tbody>
      <tr><th scope="row">API</th><td data-key="api_per_task_usd" data-value="${r.api_per_task_usd}">` +
      `${perUnit(r.api_per_task_usd * scale)}</td><td data-key="api_monthly_usd" data-value="${r.api_monthly_usd}">` +
      `${money(r.api_monthly_usd, 2)}</td><td>${esc(q.api)}</td></tr>
      ${row("local energy at the wall", r.per_task.energy_usd, r.monthly.energy_usd, `${r.busy_hours_per_day.toFixed(2)} busy h/day`, "energy_usd")}
      ${row("local idle share", r.per_task.idle_usd, r.monthly.idle_usd, `${r.idle_wall_w === null ? "idle power unknown: not charged" : r.idle_wall_w.toPrecision(3) + " W idle at the wall"}`, "idle_usd")}
      ${row("local running", r.per_task.running_usd, r.monthly.running_usd, "energy + idle" + (r.over_capacity ?
        ` (the box at its capacity, ${Math.round(r.served_per_day).toLocaleString("en-US")}/day)` : ""), "running_usd")}
      ${r.over_capacity ? `<tr><th scope="row">overflow on the API</th><td></td><td data-key="overflow_api_usd" ` +
        `data-value="${r.overflow_api_usd}">${money(r.overflow_api_usd, 2)}</td><td>` +
        `${Math.round(r.overflow_per_day).toLocaleString("en-US")}/day</td></tr>` : ""}
      ${row("hardware amortization", r.per_task.amortization_usd, r.monthly.amortization_usd, r.already_own ? "already owned" : r.hardware_usd === null ? "no price" : `${money(r.hardware_usd, 0)} over ${q.lifetime_years} years`, "amortization_usd")}
      ${row("local all-in", r.per_task.all_in_usd, r.monthly.all_in_usd, "running + amortization", "all_in_usd")}
      </tbody></table>
      <p id="breakeven" data-value="${r.breakeven_months === null ? "" : r.breakeven_months}">Break-even: <strong>${
        r.already_own ? "none (already owned: nothing to pay back)" : r.hardware_usd === null ?
          "n/a (no hardware price)" : months(r.breakeven_months)}${
        r.over_capacity ? " (capped: the box at capacity + the overflow on the API)" : ""}</strong></p>
      <p id="capacity" data-value="${r.capacity_per_day === null ? "" : r.capacity_per_day}">Capacity: ${
        r.capacity_per_day === null ? "not checked" : Math.round(r.capacity_per_day).toLocaleString("en-US") +
        ` ${unit.unit}s/day in ${r.hours_per_day} h`} — ${r.over_capacity ? "<strong>the volume does not fit</strong>" : "the volume fits"}</p>`;
    $("calc-sources").innerHTML = `Local figures: ${esc(r.rows)}. API: ${esc(q.api)}, ${esc(api.source)}, ` +
      `${esc(api.as_of)}${api.note ? " (" + esc(api.note) + ")" : ""}. Electricity: $${r.usd_per_kwh.toPrecision(4)}/kWh` +
      `${q.tou ? " (mean of the hours on, from the time-of-use table)" : ""}. Build: ${esc(D.builds[q.build].source)}. ` +
      `${esc(CAL.text)}.`;
    drawCumulative(r);
  }

  function drawCumulative(r) {
    const horizon = Math.max(24, Math.ceil(r.lifetime_months));
    const step = Math.max(1, Math.ceil(horizon / 600));  // never more than ~600 points, whatever the lifetime
    const xs = Array.from({length: Math.floor(horizon / step) + 1}, (_, i) => i * step);
    const hw = r.already_own ? 0 : r.hardware_usd || 0;
    const traces = [
      {x: xs, y: xs.map(m => r.api_monthly_usd * m), name: `API ${r.api}`, mode: "lines", line: {color: "#C44E52"}},
      {x: xs, y: xs.map(m => hw + r.running_usd * m),
       name: r.over_capacity ? "local at capacity + overflow on the API: hardware + running" : "local: hardware + running",
       mode: "lines", line: {color: "#55A868"}},
    ];
    const layout = {title: {text: "Cumulative cost", font: {size: 13}}, xaxis: {title: {text: "months"}},
                    yaxis: {title: {text: "$"}}, margin: {t: 40}, shapes: [], annotations: []};
    if (r.breakeven_months !== null && r.breakeven_months <= horizon) {
      const be = r.breakeven_months;
      layout.shapes.push({type: "line", x0: be, x1: be, yref: "paper", y0: 0, y1: 1,
                          line: {dash: "dot", color: "gray", width: 1}});
      layout.annotations.push({x: be, y: r.api_monthly_usd * be, text: `break-even ${be.toFixed(1)} months`,
                               showarrow: true, arrowhead: 2});
    }
    Plotly.react("cumulative", traces, layout, PLOT_CONFIG);
  }

  function loadTask() {  // a mix's task into the form: its kind, volume, shape, API and the mix's build
    if (!$("mix").value) return;
    const [i, j] = $("mix").value.split(":").map(Number);
    const m = D.mixes[i], t = m.tasks[j];
    $("kind").value = t.kind;
    kindChanged();
    $("basis").value = "anchor";
    if (m.build && D.builds[m.build]) { $("build").value = m.build; buildDefaults(); }
    if (D.apis[t.kind][t.api]) { $("api").value = t.api; $("api").dataset.user = t.api; }
    $("tasks").value = +t.per_day.toPrecision(10);
    $("prompt").value = t.prompt_tokens;
    $("output").value = t.output_tokens;
    show();
  }
  $("mix").addEventListener("change", loadTask);
  $("kind").addEventListener("change", () => { kindChanged(); show(); });
  $("basis").addEventListener("change", () => { basisChanged(); show(); });
  $("build").addEventListener("change", () => { buildDefaults(); show(); });
  $("api").addEventListener("change", () => { $("api").dataset.user = $("api").value; show(); });
  for (const el of form.querySelectorAll("input")) el.addEventListener("input", show);
  form.addEventListener("submit", e => e.preventDefault());

  // the question lives in the link: every answer rewrites the page's #fragment, and a link with one reproduces it
  const STATE = ["kind", "basis", "build", "api", "tasks", "prompt", "output", "kwh", "tou", "onfrom", "hours",
                 "hardware", "lifetime", "owned", "anyway"];
  function saveState() {
    const p = new URLSearchParams();
    for (const id of STATE) p.set(id, $(id).type === "checkbox" ? ($(id).checked ? "1" : "0") : $(id).value);
    try { history.replaceState(null, "", "#" + p.toString()); } catch (e) { location.replace("#" + p.toString()); }
  }
  function loadState() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (!p.has("kind") || !D.apis[p.get("kind")]) return false;
    $("kind").value = p.get("kind");
    kindChanged();
    for (const id of ["basis", "build", "api"]) {
      if ([...$(id).options].some(o => o.value === p.get(id))) $(id).value = p.get(id);
    }
    $("api").dataset.user = $("api").value;
    for (const id of STATE.slice(4)) {
      if (!p.has(id)) continue;
      if ($(id).type === "checkbox") $(id).checked = p.get(id) === "1"; else $(id).value = p.get(id);
    }
    return true;
  }

  $("build").value = D.builds[D.defaults.build] ? D.defaults.build : Object.keys(D.builds)[0];
  kindChanged();
  buildDefaults();
  loadState();
  show();

  // ------------------------------------------------------------------ the report's charts
  for (const [key, panels] of Object.entries(FIGS)) {
    const box = document.getElementById("fig-" + key);
    if (!box) continue;
    for (const p of panels) {
      const div = document.createElement("div");
      div.className = "panel";
      box.appendChild(div);
      Plotly.newPlot(div, p.data, p.layout, PLOT_CONFIG);
    }
  }
  window.sbAnswer = answer;  // the model, for tests and for the curious (console: sbAnswer({...}))
})();
