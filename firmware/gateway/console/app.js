// The console's shell: sign-in with a bearer token (kept in sessionStorage, so it ends with
// the browser tab), asking the gateway who that token is (`/auth/whoami`), hash routing to the
// pages, and the live stream each page subscribes to (one at a time).

import { api, h, token } from "./api.js";
import * as live from "./live.js";
import { overview, channel } from "./ops.js";
import { alarms } from "./alarms.js";
import { models, model, rules, rule, history } from "./more.js";

const ROUTES = { overview, channel, alarms, models, model, rules, rule, history };
const main = document.getElementById("main");
const stale = document.getElementById("stale");
let who = null;

function setStale(on) {
  stale.hidden = !on;
  document.body.classList.toggle("is-stale", on);
}

function signIn(message) {
  live.stop();
  setStale(false);
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true, size: 40 });
  const err = h("p", { class: "bad", id: "signin-error", role: "alert" }, message || "");
  const form = h("form", { class: "signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "An API token of this controller (", h("code", {}, "voltage token create"), ")."),
    h("label", {}, "Token ", input), h("button", { type: "submit" }, "Sign in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      who = await api("/auth/whoami", { auth: input.value.trim() });
      token.set(input.value.trim());
      if (!location.hash || location.hash === "#/signin") location.hash = "#/overview";
      else route();
    } catch (e) {
      err.textContent = e.status === 401 ? "This token is not valid here." : e.message;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function signOut() {
  token.clear();
  who = null;
  location.hash = "#/signin";
}

async function route() {
  const [, name = "overview", arg] = location.hash.match(/^#\/([a-z]+)(?:\/(.*))?$/) || [];
  if (name === "signin" || !token.get()) return signIn();
  if (!who) {
    try { who = await api("/auth/whoami"); } catch (e) { token.clear(); return signIn(e.status === 401 ? "Signed out: the token is no longer valid." : e.message); }
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("who").replaceChildren(
    h("span", { id: "role", "data-role": who.role }, `${who.name || "—"} (${who.role})`), " ",
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${name}` ||
      (name === "channel" && a.getAttribute("href") === "#/overview"));
  }
  const page = ROUTES[name] || overview;
  live.stop();
  setStale(false);
  const view = h("div", { class: "page", "data-page": name });
  main.replaceChildren(view);
  view.append(h("p", { class: "muted" }, "Loading…"));
  try {
    await page(view, (q, on) => live.follow(q, on, setStale), who, arg && decodeURIComponent(arg));
    view.dataset.ready = "1";
  } catch (e) {
    if (e.status === 401) { token.clear(); who = null; return signIn("Signed out: the token is no longer valid."); }
    view.replaceChildren(h("h1", {}, "Cannot show this page"), h("p", { class: "bad" }, e.message));
  }
}

window.addEventListener("hashchange", route);
route();
