// Models and Rules (lists and details, a rule's last executions) and History (a chart of one
// or more points from hissrv's query API).

import { api, h, fmtTime, fmtNum, fmtWhen } from "./api.js";
import { lineChart } from "./chart.js";

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

/** One action's outcome in an execution: `create_alarm ok {"id":"4"}`. */
const actionText = (a) => `${a.action_type} ${a.ok ? "ok" : "failed"}${a.ok ? (a.result ? " " + show(a.result) : "") : ": " + (a.error || "")}`;

function executionsTable(list) {
  if (!list.length) return h("p", { class: "muted", id: "executions" }, "Not fired yet.");
  return h("div", { class: "scroll" }, h("table", { class: "grid", id: "executions" },
    h("thead", {}, h("tr", {}, ["Executed", "Values", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, list.map((e) => h("tr", { class: "execution" },
      h("td", { class: "time" }, fmtWhen(e.executed_at)),
      h("td", {}, Object.entries(e.values || {}).map(([k, v], i) => [i ? ", " : "", h("code", {}, k), ` = ${fmtNum(v)}`])),
      h("td", {}, (e.actions || []).length ? (e.actions || []).map((a, i) => [i ? "; " : "",
        h("span", { class: a.ok ? "" : "bad" }, actionText(a))]) : h("span", { class: "muted" }, "no actions")))))));
}

export async function rule(view, live, who, id) {
  const [r, ex] = await Promise.all([api(`/rulesrv/rules/${encodeURIComponent(id)}`),
    api(`/rulesrv/rules/${encodeURIComponent(id)}/executions?limit=20`).catch(() => [])]);
  view.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "#/rules" }, "Rules"), " › rule"),
    h("h1", {}, `Rule ${r.name || r.id}`), kvTable(r),
    h("h2", {}, "Last executions"), executionsTable(ex || []));
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
