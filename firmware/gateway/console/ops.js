// Overview and Channel pages: what a commissioning engineer looks at first. Every channel's
// connection, last good poll and error counters (a failed channel stands out), and one
// channel's points with their values, units and times; operators also get the write form.

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
    h("td", {}, st.offline_slaves || ""),
    h("td", { class: "reason" }, c.last_error || st.last_error || ""));
}

export async function overview(view, live) {
  const [health, channels] = await Promise.all([api("/health"), api("/comsrv/channels")]);
  const details = await Promise.all(channels.map((c) => api(`/comsrv/channels/${c.id}`).catch(() => null)));
  const failed = channels.filter((c) => !c.connected).length;
  const tbody = h("tbody", {}, channels.map((c, i) => channelRow(c, details[i])));
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
          h("thead", {}, h("tr", {}, ["Channel", "Protocol", "State", "Last good poll", "Poll time", "Reads", "Errors", "Timeouts", "Offline slaves", "Last error"]
            .map((t, i) => h("th", { scope: "col", class: i >= 4 && i <= 7 ? "num" : null }, t)))),
          tbody))));
  const refresh = async (id) => {
    const [list, d] = await Promise.all([api("/comsrv/channels"), api(`/comsrv/channels/${id}`)]);
    const c = list.find((x) => x.id === id);
    const row = tbody.querySelector(`tr[data-channel="${id}"]`);
    if (c && row) row.replaceWith(channelRow(c, d));
  };
  if (channels.length) {
    live(`channels=${channels.map((c) => c.id).join(",")}&alarms=false`, (type, data) => {
      if (type === "status") refresh(data.channel).catch(() => {});
      if (type === "points") {
        const row = tbody.querySelector(`tr[data-channel="${data.channel}"] .last-poll`);
        const ts = Math.max(...Object.values(data.points).map((p) => p.ts || 0));
        if (row && ts > 0) row.textContent = fmtTime(ts);
      }
    });
  }
}

const KINDS = { T: "Telemetry", S: "Signals", C: "Controls", A: "Adjustments" };

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
          h("td", { class: "num value", id: `v-${kind}-${d.point_id}` }, fmtNum(v.value)),
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
  const d = await api(`/comsrv/channels/${id}`);
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
    }
  };
  const form = canOperate(who) ? writeForm(id, table, () => setTimeout(reload, 300)) : null;
  view.replaceChildren(...[
    h("p", { class: "crumbs" }, h("a", { href: "#/overview" }, "Overview"), " › channel"),
    h("h1", {}, `Channel ${d.id} ${d.name || ""}`), head, form, tables].filter(Boolean));
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
      const e = document.getElementById("ch-state");
      if (e) e.replaceChildren(...info(data.connected, data.connected ? null : data.last_error));
      if (e) e.className = data.connected ? "summary" : "summary bad";
    }
  });
}
