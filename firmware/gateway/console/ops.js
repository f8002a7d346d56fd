// Overview and Channel pages: what a commissioning engineer looks at first. Every channel's
// connection, last good poll, error counters and stale points (a failed channel stands out),
// the serial lines' bus load; one channel's points with their values, quality, units and
// times, and its read plan (what each poll sends on the wire); operators also get the write
// form.

import { api, h, fmtTime, fmtNum, canOperate } from "./api.js";

const state = (connected) =>
  connected ? h("span", { class: "badge ok" }, "connected") : h("span", { class: "badge bad" }, "failed");

function serviceRows(health) {
  return (health.services || []).map((s) =>
    h("tr", { class: s.status === "healthy" ? "" : "failed", "data-service": s.name },
      h("th", { scope: "row" }, s.name),
      h("td", {}, h("span", { class: `badge ${s.status === "healthy" ? "ok" : "bad"}` }, s.status)),
      h("td", { class: "num" }, s.port),
      h("td", {}, s.via || ""),
      h("td", { class: "reason" }, s.reason || "")));
}

function channelRow(c, d) {
  const st = (d && d.status) || {};
  const stats = (d && d.stats) || {};
  return h("tr", { class: c.connected ? "" : "failed", "data-channel": c.id },
    h("th", { scope: "row" }, h("a", { href: `#/channel/${c.id}` }, `${c.id} ${c.name || ""}`)),
    h("td", {}, c.protocol),
    h("td", { class: "state" }, state(c.connected)),
    h("td", { class: "time last-poll" }, fmtTime(st.last_success_at)),
    h("td", { class: "num" }, stats.last_poll_ms ?? "—", h("span", { class: "unit" }, " ms")),
    h("td", { class: "num" }, stats.total_reads ?? 0),
    h("td", { class: "num errors" }, st.error_count ?? stats.total_errors ?? 0),
    h("td", { class: "num" }, stats.timeouts ?? 0),
    h("td", { class: `num stale-points${(d && d.quality && d.quality.stale) ? " warn" : ""}` }, (d && d.quality) ? d.quality.stale : "—"),
    h("td", {}, st.offline_slaves || ""),
    h("td", { class: "reason" }, c.last_error || st.last_error || ""));
}

const pct = (v) => (v === null || v === undefined || v === "" ? "—" : `${fmtNum(v)} %`);

/** The serial lines: estimated load from the read plans beside what the line measured. */
function lineRows(lines) {
  if (!lines.length) return [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No serial lines on this controller."))];
  return lines.map((l) => {
    const s = l.stats || {};
    const busy = Number(s.bus_utilisation_pct) > 80 || l.estimated_utilisation_pct > 80;
    return h("tr", { "data-line": l.name, class: busy ? "failed" : "" },
      h("th", { scope: "row" }, l.name, l.device !== l.name ? h("div", { class: "muted" }, l.device) : null),
      h("td", {}, l.settings),
      h("td", {}, l.channels.map((c, i) => [i ? ", " : "", h("a", { href: `#/channel/${c}` }, c)])),
      h("td", { class: "num estimated" }, pct(l.estimated_utilisation_pct)),
      h("td", { class: "num measured" }, pct(s.bus_utilisation_pct)),
      h("td", { class: "num" }, s.requests ?? "—"),
      h("td", { class: "num" }, s.timeouts ?? "—"),
      h("td", { class: "num" }, s.crc_errors ?? "—"));
  });
}

export async function overview(view, live) {
  const [health, channels, lines] = await Promise.all([api("/health"), api("/comsrv/channels"),
    api("/comsrv/lines").catch(() => [])]);
  const details = await Promise.all(channels.map((c) => api(`/comsrv/channels/${c.id}`).catch(() => null)));
  const failed = channels.filter((c) => !c.connected).length;
  const tbody = h("tbody", {}, channels.map((c, i) => channelRow(c, details[i])));
  const linesBody = h("tbody", {}, lineRows(lines));
  view.replaceChildren(
    h("h1", {}, "Overview"),
    h("p", { class: failed ? "summary bad" : "summary" },
      `${channels.length} channels, ${failed} failed; services ${health.status}.`),
    h("section", {},
      h("h2", {}, "Services"),
      h("table", { class: "grid", id: "services" },
        h("thead", {}, h("tr", {}, ["Service", "Status", "Port", "Runs", "Reason"].map((t) => h("th", { scope: "col", class: t === "Port" ? "num" : null }, t)))),
        h("tbody", {}, serviceRows(health)))),
    h("section", {},
      h("h2", {}, "Channels"),
      h("div", { class: "scroll" },
        h("table", { class: "grid", id: "channels" },
          h("thead", {}, h("tr", {}, ["Channel", "Protocol", "State", "Last good poll", "Poll time", "Reads", "Errors", "Timeouts", "Stale points", "Offline slaves", "Last error"]
            .map((t, i) => h("th", { scope: "col", class: i >= 4 && i <= 8 ? "num" : null }, t)))),
          tbody))),
    h("section", {},
      h("h2", {}, "Serial lines"),
      h("div", { class: "scroll" },
        h("table", { class: "grid", id: "lines" },
          h("thead", {}, h("tr", {}, ["Line", "Settings", "Channels", "Estimated load", "Measured load", "Requests", "Timeouts", "CRC errors"]
            .map((t, i) => h("th", { scope: "col", class: i >= 3 ? "num" : null }, t)))),
          linesBody))));
  // Line counters change with every request: they are read again with a status change, and at
  // most every 5 s while points events come in (not on every event).
  let linesAt = Date.now();
  const refreshLines = () => {
    linesAt = Date.now();
    api("/comsrv/lines").then((l) => linesBody.replaceChildren(...lineRows(l))).catch(() => {});
  };
  const refresh = async (id) => {
    const [list, d] = await Promise.all([api("/comsrv/channels"), api(`/comsrv/channels/${id}`)]);
    const c = list.find((x) => x.id === id);
    const row = tbody.querySelector(`tr[data-channel="${id}"]`);
    if (c && row) row.replaceWith(channelRow(c, d));
  };
  if (channels.length) {
    live(`channels=${channels.map((c) => c.id).join(",")}&alarms=false`, (type, data) => {
      if (type === "status") { refresh(data.channel).catch(() => {}); if (lines.length) refreshLines(); }
      if (type === "points" && lines.length && Date.now() - linesAt > 5000) refreshLines();
      if (type === "points") {
        const row = tbody.querySelector(`tr[data-channel="${data.channel}"] .last-poll`);
        const ts = Math.max(...Object.values(data.points).map((p) => p.ts || 0));
        if (row && ts > 0) row.textContent = fmtTime(ts);
      }
    });
  }
}

const KINDS = { T: "Telemetry", S: "Signals", C: "Controls", A: "Adjustments" };

/** A point's quality next to its value: nothing for a good read, else stale/uncertain/bad. */
function mark(kind, id, q) {
  return h("span", { class: `q${q ? " q-" + q : ""}`, id: `q-${kind}-${id}`, title: q ? qualityText[q] : null }, q || "");
}
const qualityText = {
  stale: "the device does not answer: this is the last good value",
  uncertain: "the device flags this value as uncertain",
  bad: "the device has no valid value: this is the last one",
};

/** The read plan: what one poll sends on the wire, request by request. */
function planSection(p, stats) {
  const head = h("h2", {}, "Read plan");
  if (!p) return h("section", { id: "plan" }, head, h("p", { class: "muted" }, "No plan: the channel is not running."));
  if (!p.requests.length) return h("section", { id: "plan" }, head, h("p", { class: "muted" }, p.note || "No requests."));
  const n = (k, w) => `${k} ${w}${k === 1 ? "" : "s"}`;
  const sum = [`${n(p.requests.length, "request")} for ${n(p.points, "point")} every ${p.poll_interval_ms} ms: ` +
    `${p.request_bytes} B sent + ${p.response_bytes} B received = ${fmtNum(p.bytes_per_second)} B/s.`];
  if (p.estimated_bus_ms !== null && p.estimated_bus_ms !== undefined) {
    sum.push(` Estimated cycle time ${fmtNum(p.estimated_bus_ms)} ms on the bus (${fmtNum(p.estimated_utilisation_pct)} % of line ${p.line}; frames and gaps, device turnaround not included).`);
  }
  if (stats && stats.last_poll_ms !== undefined) sum.push(` Last poll took ${stats.last_poll_ms} ms.`);
  return h("section", { id: "plan" }, head,
    h("p", { class: "muted" }, `${p.protocol} ${p.link}, timeout ${p.timeout_ms} ms`),
    h("div", { class: "scroll" }, h("table", { class: "grid", id: "plan-requests" },
      h("thead", {}, h("tr", {}, ["Slave", "Function", "Addresses", "Count", "Points", "Request", "Response"]
        .map((t, i) => h("th", { scope: "col", class: i === 1 || i === 2 ? null : "num" }, t)))),
      h("tbody", {}, p.requests.map((r) => h("tr", {},
        h("td", { class: "num" }, r.slave), h("td", {}, r.function),
        h("td", { class: "time" }, `${r.start}…${r.end}`),
        h("td", { class: "num" }, r.count), h("td", { class: "num" }, r.points),
        h("td", { class: "num" }, r.request_bytes, h("span", { class: "unit" }, " B")),
        h("td", { class: "num" }, r.response_bytes, h("span", { class: "unit" }, " B"))))))),
    h("p", { id: "plan-summary" }, sum));
}

function pointTable(kind, defs, values) {
  return h("section", {},
    h("h2", {}, `${KINDS[kind]} (${kind})`),
    h("div", { class: "scroll" }, h("table", { class: "grid points", "data-kind": kind },
      h("colgroup", {}, ["3rem", "14rem", "8rem", "5rem", "19rem", "auto"].map((w) => h("col", { style: `width:${w}` }))),
      h("thead", {}, h("tr", {}, ["Id", "Name", "Value", "Unit", "Updated", "Description"].map((t, i) => h("th", { scope: "col", class: i === 0 || i === 2 ? "num" : null }, t)))),
      h("tbody", {}, defs.map((d) => {
        const v = values[String(d.point_id)] || {};
        return h("tr", {},
          h("td", { class: "num" }, d.point_id),
          h("th", { scope: "row" }, d.signal_name),
          h("td", { class: "num" }, mark(kind, d.point_id, v.quality), h("span", { class: "value", id: `v-${kind}-${d.point_id}` }, fmtNum(v.value))),
          h("td", { class: "unit" }, d.unit || (kind === "S" || kind === "C" ? "0/1" : "—")),
          h("td", { class: "time", id: `t-${kind}-${d.point_id}` }, fmtTime(v.ts)),
          h("td", { class: "muted" }, d.description || ""));
      })))));
}

function writeForm(id, table, after) {
  const points = ["C", "A"].flatMap((k) => (table[k] || []).map((d) => ({ k, d })));
  if (!points.length) return null;
  const sel = h("select", { id: "w-point", name: "point" }, points.map(({ k, d }) =>
    h("option", { value: `${k}:${d.point_id}` },
      `${k}${d.point_id} ${d.signal_name}${d.unit ? " [" + d.unit + "]" : ""}${d.min_value !== undefined ? ` (${d.min_value}…${d.max_value})` : ""}`)));
  const val = h("input", { id: "w-value", name: "value", type: "number", step: "any", required: true, inputmode: "decimal" });
  const out = h("output", { id: "w-result", "aria-live": "polite" });
  const form = h("form", { class: "write", id: "write-form" },
    h("h2", {}, "Write a control or adjustment"),
    h("label", {}, "Point ", sel), h("label", {}, "Value ", val),
    h("button", { type: "submit" }, "Write"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const [k, p] = sel.value.split(":");
    out.className = "pending";
    out.textContent = "writing…";
    try {
      const r = await api(`/comsrv/channels/${id}/${k === "C" ? "control" : "adjustment"}`,
        { method: "POST", body: { point_id: Number(p), value: Number(val.value) } });
      out.className = r.verified ? "good" : "warn";
      out.textContent = `${r.status}: wrote ${fmtNum(r.requested)}, read back ${fmtNum(r.read_back)} (was ${fmtNum(r.old_value)}) at ${fmtTime(r.at_ms)}${r.error ? " — " + r.error : ""}`;
      after();
    } catch (e) {
      out.className = "bad";
      out.textContent = `refused (${e.status}): ${e.message}`;
    }
  });
  return form;
}

export async function channel(view, live, who, id) {
  const [d, plan] = await Promise.all([api(`/comsrv/channels/${id}`),
    api(`/comsrv/channels/${id}/plan`).catch((e) => (e.status === 404 ? null : Promise.reject(e)))]);
  const load = () => api(`/comsrv/channels/${id}/points`).catch((e) => (e.status === 404 ? {} : Promise.reject(e)));
  const values = await load();
  const table = d.point_table || {};
  const st = d.status || {};
  const info = (connected, err) => [state(connected), ` ${d.protocol}, ${d.points} points; last good poll ${fmtTime(st.last_success_at)}`,
    err ? ` — last error: ${err}` : ""];
  const head = h("p", { class: d.connected ? "summary" : "summary bad", id: "ch-state" }, info(d.connected, d.last_error || st.last_error));
  const tables = h("div", {}, Object.keys(KINDS).filter((k) => (table[k] || []).length)
    .map((k) => pointTable(k, table[k], values[k] || {})));
  const reload = async () => {
    const v = await load();
    for (const k of Object.keys(KINDS)) {
      for (const [p, x] of Object.entries(v[k] || {})) {
        const c = document.getElementById(`v-${k}-${p}`);
        if (c) c.textContent = fmtNum(x.value);
        const t = document.getElementById(`t-${k}-${p}`);
        if (t) t.textContent = fmtTime(x.ts);
      }
      // Marks not listed any more are good again.
      for (const q of document.querySelectorAll(`[id^="q-${k}-"]`)) {
        const p = q.id.slice(3 + k.length);
        q.replaceWith(mark(k, p, ((v[k] || {})[p] || {}).quality));
      }
    }
  };
  const form = canOperate(who) ? writeForm(id, table, () => setTimeout(reload, 300)) : null;
  view.replaceChildren(...[
    h("p", { class: "crumbs" }, h("a", { href: "#/overview" }, "Overview"), " › channel"),
    h("h1", {}, `Channel ${d.id} ${d.name || ""}`), head, form, tables, planSection(plan, d.stats)].filter(Boolean));
  live(`channels=${id}&alarms=false`, (type, data) => {
    if (type === "points" && data.channel === Number(id)) {
      for (const [p, x] of Object.entries(data.points)) {
        const c = document.getElementById(`v-${data.type}-${p}`);
        if (c) { c.textContent = fmtNum(x.value); c.classList.remove("flash"); void c.offsetWidth; c.classList.add("flash"); }
        const t = document.getElementById(`t-${data.type}-${p}`);
        if (t) t.textContent = fmtTime(x.ts);
      }
    }
    if (type === "status") {
      // A lost or regained connection changes which values are stale.
      reload().catch(() => {});
      const e = document.getElementById("ch-state");
      if (e) e.replaceChildren(...info(data.connected, data.connected ? null : data.last_error));
      if (e) e.className = data.connected ? "summary" : "summary bad";
    }
  });
}
