// Live data from the gateway's `/events` stream (server-sent events). EventSource cannot send
// an Authorization header, so the stream is read with fetch and parsed here. A broken stream
// is opened again with a growing delay (0.5 s doubling to 10 s); while it is down, or while the
// gateway reports Redis as unreachable (`stale` event), the page shows the stale banner.

import { token } from "./api.js";

let current = null;

/** Follows `/events?query`; `on(type, data)` gets every event. Ends the previous stream. */
export function follow(query, on, onStale) {
  stop();
  const me = { ctrl: null, ended: false };
  current = me;
  let delay = 500;
  const run = async () => {
    while (!me.ended) {
      me.ctrl = new AbortController();
      try {
        const r = await fetch(`/events?${query}`, {
          headers: { Authorization: `Bearer ${token.get()}`, Accept: "text/event-stream" },
          signal: me.ctrl.signal,
        });
        if (!r.ok || !r.body) throw new Error(`events: ${r.status}`);
        onStale(false);
        delay = 500;
        await read(r.body, (type, data) => {
          if (type === "stale") onStale(Boolean(data && data.stale));
          else on(type, data);
        });
      } catch (e) {
        if (me.ended) return;
      }
      if (me.ended) return;
      onStale(true);
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
}

export function stop() {
  if (current) {
    current.ended = true;
    if (current.ctrl) current.ctrl.abort();
    current = null;
  }
}

async function read(body, emit) {
  const rd = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await rd.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const k = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (k === "event") type = v;
        else if (k === "data") data.push(v);
      }
      if (!data.length) continue;
      let parsed;
      try { parsed = JSON.parse(data.join("\n")); } catch { continue; }
      emit(type, parsed);
    }
  }
}
