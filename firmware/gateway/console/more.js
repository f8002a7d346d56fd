// Alarms (acknowledge with a note), Models and Rules (lists and details) and History (a chart
// of one or more points from hissrv's query API).

import { api, h, fmtTime, fmtNum, fmtWhen, canOperate } from "./api.js";
import { lineChart } from "./chart.js";

const LEVEL = (l) => h("span", { class: `level ${String(l || "").toLowerCase()}` }, l || "—");

function alarmRow(a, who, reload) {
  const active = String(a.status).toLowerCase() === "active";
  let act = null;
  if (active && canOperate(who)) {
    const note = h("input", { type: "text", class: "note", placeholder: "note", "aria-label": `note for alarm ${a.id}` });
    act = h("form", { class: "ack" }, note, h("button", { type: "submit" }, "Acknowledge"));
    act.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await api(`/alarmsrv/alarms/${encodeURIComponent(a.id)}/acknowledge`,
          { method: "POST", body: { acknowledged_by: who.name || "console", notes: note.value } });
      } catch (e) {
        act.append(h("span", { class: "bad" }, ` ${e.message}`));
      }
      reload();
    });
  }
  return h("tr", { "data-alarm": a.id, class: `alarm ${String(a.status).toLowerCase()}` },
    h("td", {}, LEVEL(a.level)),
    h("th", { scope: "row" }, a.title, a.description ? h("div", { class: "muted" }, a.description) : null),
    h("td", { class: "status" }, a.status),
    h("td", { class: "time" }, fmtWhen(a.created_at ?? a.triggered_at)),
    h("td", {}, a.acknowledged_by ? `${a.acknowledged_by}${a.acknowledged_at ? " at " + fmtWhen(a.acknowledged_at) : ""}` : ""),
    h("td", {}, a.notes || a.acknowledge_notes || ""),
    h("td", {}, act));
}

export async function alarms(view, live, who) {
  const body = h("tbody", {});
  const count = h("p", { class: "summary" });
  const load = async () => {
    const list = await api("/alarmsrv/alarms?limit=200");
    const n = (s) => list.filter((a) => String(a.status).toLowerCase() === s).length;
    count.textContent = `${n("active")} active, ${n("acknowledged")} acknowledged, ${n("resolved")} resolved`;
    count.className = n("active") ? "summary bad" : "summary";
    // A live update must not wipe a note the operator is typing (nor move the focus away).
    const typed = [...body.querySelectorAll("tr[data-alarm] input.note")].filter((i) => i.value)
      .map((i) => [i.closest("tr").dataset.alarm, i.value, i === document.activeElement]);
    body.replaceChildren(...list.map((a) => alarmRow(a, who, load)));
    for (const [id, value, focused] of typed) {
      const input = body.querySelector(`tr[data-alarm="${CSS.escape(id)}"] input.note`);
      if (input) { input.value = value; if (focused) input.focus(); }
    }
    if (!list.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No alarms.")));
  };
  await load();
  view.replaceChildren(h("h1", {}, "Alarms"), count,
    h("div", { class: "scroll" }, h("table", { class: "grid", id: "alarms" },
      h("thead", {}, h("tr", {}, ["Level", "Alarm", "Status", "Raised", "Acknowledged by", "Notes", ""].map((t) => h("th", { scope: "col" }, t)))),
      body)));
  let pending = null;
  live("alarms=true", (type) => {
    if (type === "alarm" && !pending) pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 200);
  });
}

/** A value of unknown shape as text (objects as compact JSON). */
const show = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));

function kvTable(obj, skip = []) {
  return h("table", { class: "grid kv" }, h("tbody", {}, Object.entries(obj || {}).filter(([k]) => !skip.includes(k))
    .map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { class: typeof v === "number" ? "num" : "" }, show(v))))));
}

const asList = (v, key) => (Array.isArray(v) ? v : Array.isArray(v && v[key]) ? v[key] : Object.values(v || {}));

function listPage(view, title, items, hrefOf, cols) {
  view.replaceChildren(h("h1", {}, title),
    items.length ? h("table", { class: "grid", id: title.toLowerCase() },
      h("thead", {}, h("tr", {}, cols.map(([t]) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, items.map((it) => h("tr", {}, cols.map(([, f], i) => (i === 0
        ? h("th", { scope: "row" }, h("a", { href: hrefOf(it) }, show(f(it))))
        : h("td", {}, show(f(it))))))))) : h("p", { class: "muted" }, `No ${title.toLowerCase()} on this controller.`));
}

export async function models(view) {
  const list = asList(await api("/modsrv/models"), "models");
  listPage(view, "Models", list, (m) => `#/model/${encodeURIComponent(m.id)}`,
    [["Id", (m) => m.id], ["Name", (m) => m.name], ["Template", (m) => m.template ?? m.template_id]]);
}

export async function model(view, live, who, id) {
  const [m, pts] = await Promise.all([api(`/modsrv/models/${encodeURIComponent(id)}`),
    api(`/modsrv/models/${encodeURIComponent(id)}/points`).catch(() => null)]);
  const values = asList(pts, "points");
  view.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " › model"),
    h("h1", {}, `Model ${m.name || m.id}`), kvTable(m, ["points"]),
    h("h2", {}, "Live point values"),
    values.length ? h("div", { class: "scroll" }, h("table", { class: "grid", id: "model-points" },
      h("thead", {}, h("tr", {}, ["Point", "Type", "Value", "Unit", "Updated", "Mapped to"].map((t) => h("th", { scope: "col", class: t === "Value" ? "num" : null }, t)))),
      h("tbody", {}, values.map((p) => h("tr", {},
        h("th", { scope: "row" }, p.name, p.description ? h("div", { class: "muted" }, p.description) : null),
        h("td", {}, p.type), h("td", { class: "num" }, fmtNum(p.value)), h("td", { class: "unit" }, p.unit || "—"),
        h("td", { class: "time" }, fmtTime(p.ts)), h("td", {}, h("code", {}, p.mapping || "—")))))))
      : h("p", { class: "muted" }, "No points."));
}

export async function rules(view) {
  const list = asList(await api("/rulesrv/rules"), "rules");
  listPage(view, "Rules", list, (r) => `#/rule/${encodeURIComponent(r.id)}`,
    [["Id", (r) => r.id], ["Name", (r) => r.name], ["Enabled", (r) => r.enabled ?? true],
      ["Condition", (r) => (r.condition && r.condition.expression) || r.condition], ["Interval", (r) => (r.interval_ms ? `${r.interval_ms} ms` : "—")]]);
}

export async function rule(view, live, who, id) {
  const r = await api(`/rulesrv/rules/${encodeURIComponent(id)}`);
  view.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "#/rules" }, "Rules"), " › rule"),
    h("h1", {}, `Rule ${r.name || r.id}`), kvTable(r));
}

const RANGES = ["5m", "15m", "1h", "6h", "24h"];

export async function history(view, live, who, arg) {
  const channels = await api("/comsrv/channels");
  const details = await Promise.all(channels.map((c) => api(`/comsrv/channels/${c.id}`).catch(() => null)));
  const options = [];
  details.forEach((d) => {
    if (!d) return;
    for (const p of (d.point_table && d.point_table.T) || []) {
      options.push({ key: `${d.id}:${p.point_id}`, label: `${d.id} ${d.name}: ${p.signal_name}`, unit: p.unit });
    }
  });
  const wanted = new Set((arg || "").split(",").filter(Boolean));
  if (!wanted.size && options.length) wanted.add(options[0].key);
  const sel = h("select", { id: "h-points", multiple: true, size: Math.min(6, options.length || 1), "aria-label": "points" },
    options.map((o) => h("option", { value: o.key, selected: wanted.has(o.key) }, `${o.label}${o.unit ? " [" + o.unit + "]" : ""}`)));
  const range = h("select", { id: "h-range", "aria-label": "range" }, RANGES.map((r) => h("option", { value: r }, `last ${r}`)));
  const box = h("div", { class: "chartbox", id: "chart" });
  const info = h("p", { class: "muted", id: "h-info" });
  const draw = async () => {
    const keys = [...sel.selectedOptions].map((o) => o.value);
    const series = await Promise.all(keys.map(async (k) => {
      const [c, p] = k.split(":");
      const rows = await api(`/hissrv/data/telemetry?channel_id=${c}&point_id=${p}&duration=${range.value}`);
      const o = options.find((x) => x.key === k);
      return { label: o ? o.label : k, unit: o && o.unit, points: (rows || []).map((r) => [r.time, r.value]) };
    }));
    box.replaceChildren(lineChart(series));
    const n = series.reduce((a, s) => a + s.points.length, 0);
    const last = series.map((s) => s.points.length ? `${s.label}: ${fmtNum(s.points[s.points.length - 1][1])}${s.unit ? " " + s.unit : ""}` : null).filter(Boolean);
    info.textContent = `${n} points${last.length ? "; latest " + last.join(", ") : ""}; drawn ${fmtTime(Date.now())}`;
  };
  sel.addEventListener("change", draw);
  range.addEventListener("change", draw);
  view.replaceChildren(h("h1", {}, "History"),
    h("form", { class: "history", onsubmit: (e) => { e.preventDefault(); draw(); } },
      h("label", {}, "Points ", sel), h("label", {}, "Range ", range), h("button", { type: "submit" }, "Refresh")),
    box, info);
  if (options.length) await draw();
}
