//! `GET /events?channels=1001,1002[&alarms=false]`: live data as server-sent events, so a page
//! or an HMI follows point changes and alarm events without polling the API.
//!
//! The gateway checks the subscribed channels every `events_interval_ms` (one Redis round trip
//! per channel and point type) and sends only what changed: `points` events
//! (`{"channel":1001,"type":"T","points":{"1":{"value":"95.000000","ts":...}}}`, the first one
//! a full snapshot), `status` when a channel's connection state changes, `alarm` when an alarm
//! appears or changes status, and `stale` while Redis does not answer. Comment keep-alives
//! every 15 s keep proxies from closing an idle stream.

use crate::{reply, Gateway};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use voltage_core::PointType;
use voltage_http::error;
use warp::http::StatusCode;
use warp::sse::Event;

const MAX_CHANNELS: usize = 64;

/// The subscription in a query string.
#[derive(Debug, PartialEq)]
pub(crate) struct Subscription {
    pub channels: Vec<u32>,
    pub alarms: bool,
}

pub(crate) fn parse(query: &str) -> Result<Subscription, String> {
    let mut sub = Subscription {
        channels: Vec::new(),
        alarms: true,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "channels" => {
                for c in v.split(',').filter(|c| !c.is_empty()) {
                    sub.channels.push(
                        c.parse()
                            .map_err(|_| format!("channels: {c:?} is not a channel id"))?,
                    );
                }
            }
            "alarms" => {
                sub.alarms = match v {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => return Err(format!("alarms: {v:?} is not true or false")),
                }
            }
            _ => return Err(format!("unknown parameter {k:?} (channels, alarms)")),
        }
    }
    sub.channels.sort_unstable();
    sub.channels.dedup();
    if sub.channels.len() > MAX_CHANNELS {
        return Err(format!(
            "channels: at most {MAX_CHANNELS} per stream, {} given",
            sub.channels.len()
        ));
    }
    Ok(sub)
}

#[derive(Default)]
struct Seen {
    points: HashMap<(u32, &'static str), HashMap<u32, String>>,
    connected: HashMap<u32, String>,
    alarms: HashMap<String, String>,
    stale: bool,
}

pub(crate) fn stream(gw: Arc<Gateway>, query: &str) -> warp::reply::Response {
    let sub = match parse(query) {
        Ok(s) => s,
        Err(e) => return reply(error(StatusCode::BAD_REQUEST, e)),
    };
    let every = Duration::from_millis(gw.cfg.events_interval_ms);
    // The checks run on a task of their own and end when the client goes away (send fails).
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    let mut stop = gw.stop.clone();
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            for e in tick(&gw, &sub, &mut seen).await {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = tx.closed() => return,
                _ = voltage_http::stopped(&mut stop) => return,
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    warp::reply::Reply::into_response(warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(events),
    ))
}

async fn tick(gw: &Gateway, sub: &Subscription, seen: &mut Seen) -> Vec<Event> {
    let mut out = Vec::new();
    match changes(gw, sub, seen, &mut out).await {
        Ok(()) => {
            if seen.stale {
                seen.stale = false;
                out.push(Event::default().event("stale").data(r#"{"stale":false}"#));
            }
        }
        Err(e) => {
            if !seen.stale {
                seen.stale = true;
                let body = serde_json::json!({"stale": true, "reason": e.to_string()});
                out.push(Event::default().event("stale").data(body.to_string()));
            }
        }
    }
    out
}

async fn changes(
    gw: &Gateway,
    sub: &Subscription,
    seen: &mut Seen,
    out: &mut Vec<Event>,
) -> Result<(), voltage_store::StoreError> {
    for &ch in &sub.channels {
        for kind in [PointType::Telemetry, PointType::Signal] {
            let now = gw.store.read_points(ch, kind).await?;
            let last = seen.points.entry((ch, kind.letter())).or_default();
            let mut changed = serde_json::Map::new();
            for (id, v, ts) in now {
                if last.get(&id) != Some(&v) {
                    changed.insert(id.to_string(), serde_json::json!({"value": v, "ts": ts}));
                    last.insert(id, v);
                }
            }
            if !changed.is_empty() {
                let body =
                    serde_json::json!({"channel": ch, "type": kind.letter(), "points": changed});
                out.push(Event::default().event("points").data(body.to_string()));
            }
        }
        let (_, status) = gw.store.channel_counters(ch).await?;
        let c = status.get("connected").cloned().unwrap_or_default();
        if seen.connected.get(&ch) != Some(&c) {
            let body = serde_json::json!({"channel": ch, "connected": c == "1",
                "last_error": status.get("last_error")});
            out.push(Event::default().event("status").data(body.to_string()));
            seen.connected.insert(ch, c);
        }
    }
    if sub.alarms {
        let list = gw
            .store
            .fcall("alarm_list", &[], &["limit", "100"], true)
            .await?
            .unwrap_or_default();
        let alarms: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap_or_default();
        for a in alarms.iter().rev() {
            let (Some(id), Some(st)) = (a["id"].as_str(), a["status"].as_str()) else {
                continue;
            };
            if seen.alarms.get(id).map(String::as_str) != Some(st) {
                seen.alarms.insert(id.to_string(), st.to_string());
                out.push(Event::default().event("alarm").data(a.to_string()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_names_channels_and_may_leave_out_alarms() {
        assert_eq!(
            parse("channels=1002,1001,1002&alarms=false").unwrap(),
            Subscription {
                channels: vec![1001, 1002],
                alarms: false
            }
        );
        assert!(parse("").unwrap().alarms);
        assert!(parse("channels=x").unwrap_err().contains("\"x\""));
        assert!(parse("colour=red")
            .unwrap_err()
            .contains("unknown parameter"));
        assert!(parse("alarms=maybe").is_err());
        let many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
        assert!(parse(&format!("channels={}", many.join(",")))
            .unwrap_err()
            .contains("at most"));
    }
}
