// The HTTP API of the gateway, with the signed-in bearer token, and the formatting every page
// shares (times in the browser's zone with its UTC offset, numbers with their unit).

const KEY = "voltage.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the gateway; resolves with the parsed JSON body, rejects with an ApiError. */
export async function api(path, { method = "GET", body, auth = token.get() } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `the controller does not answer (${e.message})`);
  }
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch { v = text; }
  if (!r.ok && !(path === "/health" && r.status === 503)) {
    const msg = v && v.error ? v.error.message : `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, msg);
  }
  return v;
}

/** Elements without innerHTML: h("td", {class: "num"}, "12.5"); children may be nested arrays. */
export function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

const pad = (n) => String(n).padStart(2, "0");

/** "2026-12-02 17:31:05 UTC+01:00" in the browser's (the controller's) local zone. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === "" || !Number.isFinite(Number(ms)) || Number(ms) <= 0) return "—";
  const d = new Date(Number(ms));
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const o = Math.abs(off);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} UTC${sign}${pad(Math.floor(o / 60))}:${pad(o % 60)}`;
}

/** A stored value ("95.000000") shown with at most 3 decimals. */
export function fmtNum(v) {
  const n = Number(v);
  if (v === null || v === undefined || v === "" || !Number.isFinite(n)) return v ?? "—";
  return Number.isInteger(n) ? String(n) : n.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
}

/** ISO-ish alarm times ("2026-01-01T00:00:00Z") and epoch ms alike. */
export function fmtWhen(v) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (Number.isFinite(n)) return fmtTime(n);
  const t = Date.parse(v);
  return Number.isFinite(t) ? fmtTime(t) : String(v);
}

export const canOperate = (who) => who && (who.role === "operator" || who.role === "admin");
