// The web console in headless Chromium against a real daemon, simulator and Redis started by
// scripts/test-console (which passes CONSOLE_URL, the tokens and SIM_PORT in the environment).
// Each test signs in as a real user would, checks what the page shows, and saves a screenshot.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawn } from "node:child_process";
import fs from "node:fs";
import { chromium } from "playwright-core";

const URL = process.env.CONSOLE_URL;
const SHOTS = process.env.SCREENSHOTS;
const { VIEWER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN } = process.env;
assert.ok(URL && VIEWER_TOKEN && OPERATOR_TOKEN && ADMIN_TOKEN, "run through scripts/test-console");

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});
after(async () => { await browser?.close(); });

async function api(path, tokenValue, init = {}) {
  const r = await fetch(new globalThis.URL(path, URL), {
    ...init, headers: { Authorization: `Bearer ${tokenValue}`, "Content-Type": "application/json", ...(init.headers || {}) },
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** A fresh browser context signed in with `tokenValue`, at `hash`. */
async function signedIn(tokenValue, hash = "#/overview", viewport = { width: 1366, height: 768 }) {
  const ctx = await browser.newContext({ viewport, timezoneId: "Europe/Berlin" });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(URL);
  await page.fill("#token", tokenValue);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector('.page[data-page="overview"][data-ready="1"]');
  if (hash !== "#/overview") await go(page, hash);
  return { ctx, page, errors };
}

async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  const name = hash.match(/^#\/([a-z]+)/)[1];
  await page.waitForSelector(`.page[data-page="${name}"][data-ready="1"]`);
}

const shot = (page, name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

/** Modbus TCP function 6 (write single register) to the simulator: a device value changes. */
function writeRegister(port, unit, addr, value) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    const req = Buffer.from([0, 1, 0, 0, 0, 6, unit, 6, addr >> 8, addr & 255, (value >> 8) & 255, value & 255]);
    s.on("connect", () => s.write(req));
    s.on("data", (b) => { s.end(); b[7] === 6 ? resolve() : reject(new Error(`modbus exception ${b[8]}`)); });
    s.on("error", reject);
    setTimeout(() => reject(new Error("modbus write timed out")), 3000);
  });
}

test("sign-in refuses a bad token and accepts a good one; pages come from the controller only", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await ctx.newPage();
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(URL) && !r.url().startsWith("data:")) foreign.push(r.url()); });
  const resp = await page.goto(URL);
  assert.equal(resp.headers()["content-type"], "text/html; charset=utf-8");
  await page.waitForSelector("#signin");
  await shot(page, "signin");
  await page.fill("#token", "vt_not_a_token");
  await page.click("#signin button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#signin-error").textContent.includes("not valid"));
  await page.fill("#token", OPERATOR_TOKEN);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector('.page[data-page="overview"][data-ready="1"]');
  assert.equal(await page.getAttribute("#role", "data-role"), "operator");
  assert.match(await page.textContent("#role"), /console-operator/);
  // A reload keeps the session (sessionStorage); sign-out ends it.
  await page.reload();
  await page.waitForSelector('.page[data-page="overview"][data-ready="1"]');
  await page.click("text=Sign out");
  await page.waitForSelector("#signin");
  assert.deepEqual(foreign, [], "no request leaves the controller");
  await ctx.close();
});

test("overview: every service healthy, live channels connected, the dead slave failed", async () => {
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN);
  for (const s of ["comsrv", "modsrv", "alarmsrv", "rulesrv", "hissrv", "gateway"]) {
    assert.equal(await page.textContent(`#services tr[data-service="${s}"] .badge`), "healthy", s);
  }
  await page.waitForSelector('#channels tr[data-channel="1001"] .badge.ok');
  await page.waitForSelector('#channels tr[data-channel="1002"] .badge.ok');
  const dead = page.locator('#channels tr[data-channel="1004"]');
  assert.equal(await dead.getAttribute("class"), "failed");
  assert.equal(await dead.locator(".state").textContent(), "failed");
  assert.match(await dead.locator(".reason").textContent(), /\S/, "the failure says why");
  // Last good poll in local time with its UTC offset.
  assert.match(await page.textContent('#channels tr[data-channel="1001"] .last-poll'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d$/);
  await shot(page, "overview");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("channel: a value changed on the device shows within 2 s", async () => {
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN, "#/channel/1001");
  await page.waitForFunction(() => document.getElementById("v-T-1").textContent === "752.3");
  assert.equal(await page.locator("tr", { has: page.locator("#v-T-1") }).locator(".unit").textContent(), "V");
  const raw = 4000 + Math.floor(Math.random() * 1000);
  const want = String(raw / 10);
  const t0 = Date.now();
  await writeRegister(Number(process.env.SIM_PORT), 1, 0, raw);
  await page.waitForFunction((w) => document.getElementById("v-T-1").textContent === w, want, { timeout: 2000 });
  const took = Date.now() - t0;
  console.log(`# device change to page: ${took} ms`);
  assert.ok(took < 2000, `${took} ms`);
  await shot(page, "channel");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("channel: an operator writes an adjustment and sees the verified result; a refused one says why", async () => {
  const { ctx, page } = await signedIn(OPERATOR_TOKEN, "#/channel/1001");
  await page.selectOption("#w-point", "A:1");
  await page.fill("#w-value", "42");
  await page.click("#write-form button[type=submit]");
  await page.waitForFunction(() => /^verified/.test(document.getElementById("w-result").textContent));
  assert.match(await page.textContent("#w-result"), /read back 42/);
  await page.waitForFunction(() => document.getElementById("v-A-1").textContent === "42");
  await shot(page, "channel-write");
  await page.fill("#w-value", "420");
  await page.click("#write-form button[type=submit]");
  await page.waitForFunction(() => /^refused \(422\)/.test(document.getElementById("w-result").textContent));
  await ctx.close();
});

test("a viewer sees no write controls and a forced write is refused with 403", async () => {
  const id = (await api("/alarmsrv/alarms", OPERATOR_TOKEN, {
    method: "POST", body: JSON.stringify({ title: "Viewer check", description: "", level: "Info", source: "console-test", metadata: {} }),
  })).body.id;
  const { ctx, page } = await signedIn(VIEWER_TOKEN, "#/channel/1001");
  assert.equal(await page.locator("#write-form").count(), 0);
  assert.doesNotMatch(await page.textContent("main"), /null|undefined/);
  const forced = await page.evaluate(async (t) => {
    const r = await fetch("/comsrv/channels/1001/adjustment", {
      method: "POST", headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
      body: JSON.stringify({ point_id: 1, value: 7 }),
    });
    return r.status;
  }, VIEWER_TOKEN);
  assert.equal(forced, 403);
  await go(page, "#/alarms");
  await page.waitForSelector(`tr[data-alarm="${id}"]`);
  assert.equal(await page.locator("form.ack").count(), 0, "no acknowledge for a viewer");
  await page.waitForSelector('#thresholds tr[data-threshold="console_dc_high"]');
  assert.equal(await page.locator("#thresholds button").count(), 0, "no shelving for a viewer");
  const shelve = await page.evaluate(async (t) => (await fetch("/alarmsrv/thresholds/console_dc_high/shelve", {
    method: "POST", headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
    body: JSON.stringify({ duration_ms: 60000 }),
  })).status, VIEWER_TOKEN);
  assert.equal(shelve, 403);
  await ctx.close();
});

test("alarms: an operator acknowledges an alarm with a note and sees its status change", async () => {
  const r = await api("/alarmsrv/alarms", OPERATOR_TOKEN, {
    method: "POST", body: JSON.stringify({ title: "Cabinet door open", description: "PCS cabinet", level: "Major", source: "console-test", metadata: {} }),
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = r.body.id;
  const { ctx, page } = await signedIn(OPERATOR_TOKEN, "#/alarms");
  const row = page.locator(`tr[data-alarm="${id}"]`);
  await row.waitFor();
  assert.match(await row.locator(".status").textContent(), /^active$/i);
  await row.locator("input.note").fill("checked on site");
  // Another alarm arrives while the operator types: the live update must keep the note.
  const other = await api("/alarmsrv/alarms", OPERATOR_TOKEN, {
    method: "POST", body: JSON.stringify({ title: "Fan fault", description: "PCS cabinet", level: "Warning", source: "console-test", metadata: {} }),
  });
  assert.equal(other.status, 201, JSON.stringify(other.body));
  await page.locator(`tr[data-alarm="${other.body.id}"]`).waitFor();
  assert.equal(await row.locator("input.note").inputValue(), "checked on site", "a live update wiped the note");
  await row.locator("button", { hasText: "Acknowledge" }).click();
  await page.waitForFunction((i) => /acknowledged/i.test(document.querySelector(`tr[data-alarm="${i}"] .status`)?.textContent || ""), id);
  assert.match(await page.locator(`tr[data-alarm="${id}"]`).textContent(), /checked on site/);
  const stored = await api(`/alarmsrv/alarms/${id}`, VIEWER_TOKEN);
  assert.match(JSON.stringify(stored.body), /Acknowledged/i);
  await shot(page, "alarms");
  await ctx.close();
});

test("history: the chart renders the points hissrv logged", async () => {
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN, "#/history/1002:1");
  // The virtual meter logs every change; wait until the log has a few.
  let n = 0;
  for (let i = 0; i < 30 && n < 5; i++) {
    await page.click("form.history button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#chart svg"));
    n = Number(await page.getAttribute("#chart svg", "data-points"));
    if (n < 5) await page.waitForTimeout(500);
  }
  assert.ok(n >= 5, `${n} points`);
  assert.equal(await page.locator("#chart svg path.series").count(), 1);
  assert.ok(await page.locator("#chart svg circle.pt").count() >= 5);
  assert.match(await page.textContent("#chart svg"), /kW/);
  await shot(page, "history");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("models and rules: lists and details", async () => {
  const m = await api("/modsrv/models", ADMIN_TOKEN, { method: "POST",
    body: JSON.stringify({ model_id: "pcs1", name: "PCS 1", template_id: "pcs_template", parameters: { channel: 1001, rated_kw: 100 } }) });
  assert.ok([201, 409].includes(m.status), JSON.stringify(m.body));
  const ru = await api("/rulesrv/rules", ADMIN_TOKEN, { method: "POST",
    body: JSON.stringify({ id: "r_dc_low", name: "DC voltage low", condition: { expression: "comsrv:1001:T:1 < 100" }, actions: [], interval_ms: 60000 }) });
  assert.ok([201, 409].includes(ru.status), JSON.stringify(ru.body));
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN, "#/models");
  await page.click("text=pcs1");
  await page.waitForSelector('.page[data-page="model"][data-ready="1"]');
  assert.match(await page.textContent("main"), /dc_voltage/);
  await shot(page, "model");
  await go(page, "#/rules");
  await page.click("text=r_dc_low");
  await page.waitForSelector('.page[data-page="rule"][data-ready="1"]');
  assert.match(await page.textContent("main"), /comsrv:1001:T:1 < 100/);
  await shot(page, "rule");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("channel: the read plan of a Modbus channel, the bus estimate of an RTU one, and each value's quality", async () => {
  const plan = (await api("/comsrv/channels/1001/plan", VIEWER_TOKEN)).body;
  assert.ok(plan.requests.length >= 2, JSON.stringify(plan));
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN, "#/channel/1001");
  const rows = page.locator("#plan-requests tbody tr");
  assert.equal(await rows.count(), plan.requests.length);
  const first = plan.requests[0];
  assert.match(await rows.first().textContent(), new RegExp(`${first.function}${first.start}…${first.end}`));
  assert.match(await page.textContent("#plan-summary"),
    new RegExp(`^${plan.requests.length} requests for ${plan.points} points every 200 ms: ${plan.request_bytes} B sent \\+ ${plan.response_bytes} B received`));
  // A good read carries no mark.
  assert.equal(await page.textContent("#q-T-1"), "");
  await shot(page, "channel-plan");
  // The RS-485 racks: the plan's bus estimate.
  await go(page, "#/channel/1003");
  assert.match(await page.textContent("#plan-summary"), /Estimated cycle time \d+(\.\d)? ms on the bus \(\d+(\.\d)? % of line /);
  assert.equal(await page.locator("#plan-requests tbody tr").count(), 2, "one request per rack");
  // The dead slave: every value stale, none read.
  await go(page, "#/channel/1004");
  await page.waitForFunction(() => document.getElementById("q-T-1").textContent === "stale");
  assert.equal(await page.textContent("#v-T-1"), "—");
  await shot(page, "channel-stale");
  // A virtual channel says why it has no requests.
  await go(page, "#/channel/1002");
  assert.match(await page.textContent("#plan"), /virtual channel/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("overview: the serial line with its estimated and measured load, stale points per channel", async () => {
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN);
  const lines = (await api("/comsrv/lines", VIEWER_TOKEN)).body;
  assert.equal(lines.length, 1, JSON.stringify(lines));
  const row = page.locator(`#lines tr[data-line="${lines[0].name}"]`);
  assert.match(await row.locator(".estimated").textContent(), /^\d+(\.\d)? %$/);
  assert.match(await row.textContent(), /9600 8N1/);
  assert.match(await row.textContent(), /1003/);
  // Measured once the line has published its counters (every second).
  for (let i = 0; i < 20 && !/%$/.test(await row.locator(".measured").textContent()); i++) {
    await page.waitForTimeout(500);
    await page.reload();
    await page.waitForSelector('.page[data-page="overview"][data-ready="1"]');
  }
  assert.match(await row.locator(".measured").textContent(), /^\d+(\.\d)? %$/);
  await page.waitForFunction(() => document.querySelector('#channels tr[data-channel="1004"] .stale-points')?.textContent === "1");
  assert.equal(await page.textContent('#channels tr[data-channel="1001"] .stale-points'), "0");
  await shot(page, "overview-lines");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("alarms: an operator shelves a threshold rule until a time shown and unshelves it; an alarm's history", async () => {
  const r = await api("/alarmsrv/alarms", OPERATOR_TOKEN, {
    method: "POST", body: JSON.stringify({ title: "Fan fault", description: "cabinet fan", level: "Warning", source: "console-test", metadata: {} }),
  });
  const id = r.body.id;
  await api(`/alarmsrv/alarms/${id}/acknowledge`, OPERATOR_TOKEN, {
    method: "POST", body: JSON.stringify({ acknowledged_by: "tech", notes: "fan replaced" }),
  });
  const { ctx, page, errors } = await signedIn(OPERATOR_TOKEN, "#/alarms");
  const t = page.locator('#thresholds tr[data-threshold="console_dc_high"]');
  assert.equal(await t.locator(".shelved-until").textContent(), "no");
  await t.locator("select").selectOption({ label: "1 h" });
  const t0 = Date.now();
  await t.locator("button", { hasText: "Shelve" }).click();
  await page.waitForFunction(() => /^until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d$/
    .test(document.querySelector('#thresholds tr[data-threshold="console_dc_high"] .shelved-until').textContent));
  const stored = (await api("/alarmsrv/thresholds", VIEWER_TOKEN)).body.find((x) => x.rule.id === "console_dc_high");
  assert.ok(Math.abs(stored.shelved_until - (t0 + 3600000)) < 10000, `${stored.shelved_until} vs ${t0 + 3600000}`);
  await shot(page, "alarms-shelved");
  await t.locator("button", { hasText: "Unshelve" }).click();
  await page.waitForFunction(() => document.querySelector('#thresholds tr[data-threshold="console_dc_high"] .shelved-until').textContent === "no");
  assert.equal((await api("/alarmsrv/thresholds", VIEWER_TOKEN)).body.find((x) => x.rule.id === "console_dc_high").shelved_until, null);
  // The alarm's history: created, then acknowledged by whom with the note.
  await page.locator(`tr[data-alarm="${id}"] button`, { hasText: "History" }).click();
  const hist = page.locator(`tr[data-history="${id}"]`);
  await hist.waitFor();
  assert.deepEqual(await hist.locator("li").evaluateAll((li) => li.map((e) => e.dataset.event)), ["created", "acknowledged"]);
  assert.match(await hist.locator('li[data-event="acknowledged"]').textContent(), /by tech — fan replaced/);
  await shot(page, "alarms-history");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("rules: a rule's last executions with the values it saw and its actions' outcome", async () => {
  const ru = await api("/rulesrv/rules", ADMIN_TOKEN, { method: "POST",
    body: JSON.stringify({ id: "r_console_exec", name: "PCS running", condition: { expression: "comsrv:1001:T:1 > 0" },
      actions: [{ action_type: "publish", parameters: { channel: "console-test" } }], interval_ms: 60000 }) });
  assert.ok([201, 409].includes(ru.status), JSON.stringify(ru.body));
  // The scheduler evaluates a new rule within a few seconds; an evaluation on request does too.
  await api("/rulesrv/rules/r_console_exec/evaluate", OPERATOR_TOKEN, { method: "POST", body: "{}" });
  let ex = [];
  for (let i = 0; i < 50 && !ex.length; i++) {
    ex = (await api("/rulesrv/rules/r_console_exec/executions", VIEWER_TOKEN)).body;
    if (!ex.length) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(ex.length >= 1, "the rule fired");
  const { ctx, page, errors } = await signedIn(VIEWER_TOKEN, "#/rule/r_console_exec");
  const rows = page.locator("#executions tr.execution");
  assert.equal(await rows.count(), ex.length);
  assert.match(await rows.first().textContent(), /comsrv:1001:T:1 = \d/);
  assert.match(await rows.first().textContent(), /publish ok/);
  assert.match(await rows.first().locator(".time").textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC[+-]\d\d:\d\d$/);
  await shot(page, "rule-executions");
  // A rule that never fired says so.
  await go(page, "#/rules");
  await api("/rulesrv/rules", ADMIN_TOKEN, { method: "POST",
    body: JSON.stringify({ id: "r_console_never", name: "never", condition: { expression: "comsrv:1001:T:1 < -1000000" }, actions: [], interval_ms: 60000 }) });
  await go(page, "#/rule/r_console_never");
  assert.equal(await page.textContent("#executions"), "Not fired yet.");
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("the daemon going away shows the stale banner; the page reconnects by itself; the phone layout fits", async () => {
  const { ctx, page } = await signedIn(VIEWER_TOKEN, "#/channel/1002", { width: 390, height: 844 });
  assert.equal(await page.isHidden("#stale"), true);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 390 + 1, `page is ${wide} px wide on a 390 px phone`);
  await shot(page, "phone-channel");
  // Stop the daemon (the last test: it comes back with the same configuration and ports).
  process.kill(Number(process.env.DAEMON_PID), "SIGTERM");
  await page.waitForSelector("#stale", { state: "visible", timeout: 10000 });
  await shot(page, "phone-stale");
  const log = fs.openSync(process.env.VOLTAGE_LOG, "a");
  const again = spawn(process.env.VOLTAGE_BIN, ["run", "--config", process.env.VOLTAGE_CONFIG], { stdio: ["ignore", log, log] });
  try {
    await page.waitForSelector("#stale", { state: "hidden", timeout: 30000 });
    // Live values flow again on the same page, without a reload.
    const before = await page.textContent("#v-T-1");
    await page.waitForFunction((b) => document.getElementById("v-T-1").textContent !== b, before, { timeout: 5000 });
  } finally {
    again.kill("SIGTERM");
    await new Promise((r) => again.once("exit", r));
    await ctx.close();
  }
});
