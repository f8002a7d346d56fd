// Alarms page: the alarms with level colours (operators acknowledge with a note), each alarm's
// event history on demand, and the threshold rules that raise alarms by themselves, which an
// operator can shelve for a while (maintenance, a known fault) so they stop raising.

import { api, h, fmtTime, fmtWhen, fmtNum, canOperate } from "./api.js";

const LEVEL = (l) => h("span", { class: `level ${String(l || "").toLowerCase()}` }, l || "—");
const SHELVE = [["15 min", 15], ["1 h", 60], ["4 h", 240], ["8 h", 480], ["24 h", 1440]];

function ackForm(a, who, reload, kept) {
  // A note being typed survives the list being drawn again (another alarm's event).
  const note = h("input", { type: "text", class: "note", placeholder: "note", "aria-label": `note for alarm ${a.id}`,
    value: kept.notes.get(a.id), oninput: (e) => kept.notes.set(a.id, e.target.value) });
  const form = h("form", { class: "ack" }, note, h("button", { type: "submit" }, "Acknowledge"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(`/alarmsrv/alarms/${encodeURIComponent(a.id)}/acknowledge`,
        { method: "POST", body: { acknowledged_by: who.name || "console", notes: note.value } });
      kept.notes.delete(a.id);
    } catch (e) {
      form.append(h("span", { class: "bad" }, ` ${e.message}`));
    }
    reload();
  });
  return form;
}

/** The alarm's events, oldest first: what happened, when, by whom, with which note. */
async function historyRow(id) {
  const a = await api(`/alarmsrv/alarms/${encodeURIComponent(id)}`);
  const ev = a.events || [];
  return h("tr", { class: "history", "data-history": id }, h("td", { colspan: 8 },
    ev.length ? h("ol", { class: "events" }, ev.map((e) => h("li", { "data-event": e.event },
      h("span", { class: "time" }, fmtWhen(e.at)), " ", h("strong", {}, e.event),
      e.from ? ` (${e.from} → ${e.to})` : "", e.by ? ` by ${e.by}` : "",
      e.notes ? h("span", { class: "muted" }, ` — ${e.notes}`) : null)))
      : h("p", { class: "muted" }, "No events kept for this alarm.")));
}

function alarmRow(a, who, reload, kept) {
  const open = kept.history;
  const active = String(a.status).toLowerCase() === "active";
  const hist = h("button", { type: "button", class: "link", "aria-expanded": open.has(a.id) ? "true" : "false" }, "History");
  const row = h("tr", { "data-alarm": a.id, class: `alarm ${String(a.status).toLowerCase()}` },
    h("td", {}, LEVEL(a.level)),
    h("th", { scope: "row" }, a.title, a.description ? h("div", { class: "muted" }, a.description) : null),
    h("td", { class: "status" }, a.status),
    h("td", { class: "time" }, fmtWhen(a.created_at ?? a.triggered_at)),
    h("td", {}, a.acknowledged_by ? `${a.acknowledged_by}${a.acknowledged_at ? " at " + fmtWhen(a.acknowledged_at) : ""}` : ""),
    h("td", {}, a.notes || a.acknowledge_notes || ""),
    h("td", {}, hist),
    h("td", {}, active && canOperate(who) ? ackForm(a, who, reload, kept) : null));
  const show = async () => {
    const r = await historyRow(a.id).catch((e) => h("tr", { "data-history": a.id }, h("td", { colspan: 8, class: "bad" }, e.message)));
    row.after(r);
  };
  hist.addEventListener("click", () => {
    const shown = row.nextElementSibling && row.nextElementSibling.dataset.history === String(a.id);
    if (shown) { row.nextElementSibling.remove(); open.delete(a.id); hist.setAttribute("aria-expanded", "false"); return; }
    open.add(a.id);
    hist.setAttribute("aria-expanded", "true");
    show();
  });
  if (open.has(a.id)) show();
  return row;
}

const limits = (r) => [r.high !== null && r.high !== undefined ? `> ${fmtNum(r.high)}` : null,
  r.low !== null && r.low !== undefined ? `< ${fmtNum(r.low)}` : null].filter(Boolean).join(" or ");

function shelveForm(t, reload, chosen) {
  const id = t.rule.id;
  const out = h("span", { class: "bad", role: "alert" });
  const post = async (minutes) => {
    try {
      await api(`/alarmsrv/thresholds/${encodeURIComponent(id)}/shelve`, { method: "POST", body: { duration_ms: minutes * 60000 } });
      await reload();
    } catch (e) {
      out.textContent = ` ${e.message}`;
    }
  };
  if (t.shelved_until) {
    return h("form", { class: "ack shelve" }, h("button", { type: "button", onclick: () => post(0) }, "Unshelve"), out);
  }
  // The choice survives the table being drawn again (an alarm event) while the operator picks.
  const dur = h("select", { "aria-label": `shelve ${id} for`, onchange: (e) => chosen.set(id, e.target.value) },
    SHELVE.map(([l, m]) => h("option", { value: m, selected: String(m) === chosen.get(id) }, l)));
  const form = h("form", { class: "ack shelve" }, dur, h("button", { type: "submit" }, "Shelve"), out);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); post(Number(dur.value)); });
  return form;
}

function thresholdRow(t, who, reload, chosen) {
  const r = t.rule;
  const shelved = Boolean(t.shelved_until);
  return h("tr", { "data-threshold": r.id, class: shelved ? "shelved" : "" },
    h("th", { scope: "row" }, r.title, h("div", { class: "muted" }, r.id)),
    h("td", {}, h("code", {}, r.point)),
    h("td", {}, limits(r)),
    h("td", {}, LEVEL(r.level)),
    h("td", { class: "state" }, t.state && t.state.state, t.open ? h("span", { class: "bad" }, " (alarm open)") : null),
    h("td", { class: "num" }, fmtNum(t.value)),
    h("td", { class: "time shelved-until" }, shelved ? `until ${fmtTime(t.shelved_until)}` : "no"),
    h("td", {}, canOperate(who) ? shelveForm(t, reload, chosen) : null));
}

export async function alarms(view, live, who) {
  const body = h("tbody", {});
  const tbody = h("tbody", {});
  const count = h("p", { class: "summary" });
  // What the operator has open or typed, kept while the tables are drawn again.
  const kept = { history: new Set(), notes: new Map() };
  const chosen = new Map();
  const load = async () => {
    const list = await api("/alarmsrv/alarms?limit=200");
    const n = (s) => list.filter((a) => String(a.status).toLowerCase() === s).length;
    count.textContent = `${n("active")} active, ${n("acknowledged")} acknowledged, ${n("resolved")} resolved`;
    count.className = n("active") ? "summary bad" : "summary";
    body.replaceChildren(...list.map((a) => alarmRow(a, who, load, kept)));
    if (!list.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No alarms.")));
  };
  const loadThresholds = async () => {
    const list = await api("/alarmsrv/thresholds");
    list.sort((a, b) => String(a.rule.id).localeCompare(String(b.rule.id)));
    tbody.replaceChildren(...list.map((t) => thresholdRow(t, who, loadThresholds, chosen)));
    if (!list.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No threshold rules (alarmsrv/rules.yaml).")));
  };
  await Promise.all([load(), loadThresholds()]);
  view.replaceChildren(h("h1", {}, "Alarms"), count,
    h("div", { class: "scroll" }, h("table", { class: "grid", id: "alarms" },
      h("thead", {}, h("tr", {}, ["Level", "Alarm", "Status", "Raised", "Acknowledged by", "Notes", "", ""].map((t) => h("th", { scope: "col" }, t)))),
      body)),
    h("h2", {}, "Threshold rules"),
    h("p", { class: "muted" }, "A shelved rule raises no alarm until the time shown; an alarm already raised stays."),
    h("div", { class: "scroll" }, h("table", { class: "grid", id: "thresholds" },
      h("thead", {}, h("tr", {}, ["Rule", "Point", "Limit", "Level", "State", "Value", "Shelved", ""].map((t) => h("th", { scope: "col", class: t === "Value" ? "num" : null }, t)))),
      tbody)));
  let pending = null;
  live("alarms=true", (type) => {
    if (type === "alarm" && !pending) {
      pending = setTimeout(() => { pending = null; load().catch(() => {}); loadThresholds().catch(() => {}); }, 200);
    }
  });
}
