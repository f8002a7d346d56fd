//! `voltage health`: is the running daemon healthy, as the A/B health gate and operators ask it.
//!
//! Healthy means: comsrv's `/health` says Redis answers, and every channel `/channels` lists has
//! completed a poll (`connected`). With a baseline (`--baseline FILE`: the channels that were
//! polling when an update was installed, written by `--list-connected`), only those channels
//! count: a meter that was already dead before the update must not make the health gate
//! condemn the new firmware, or the controller would fall back, and fall back again, for a
//! fault that is not the firmware's. The verdict ([`judge`]) is a pure function of the two
//! replies and the baseline; the HTTP side is a minimal HTTP/1.1 GET on loopback (the daemon's
//! own API), so the image needs no curl or jq for the gate.

use anyhow::{bail, Context as _};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP reply: status code and body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The verdict from `/health` and `/channels`: `Ok(summary)` or `Err(every reason)`. With a
/// `baseline`, a channel outside it that does not poll is named in the summary, not held
/// against the daemon.
pub fn judge(
    health: &Reply,
    channels: &Reply,
    baseline: Option<&BTreeSet<i64>>,
) -> Result<String, Vec<String>> {
    let mut why = Vec::new();
    let h: serde_json::Value = serde_json::from_str(&health.body).unwrap_or_default();
    if health.status != 200 || h["status"] != "healthy" {
        why.push(format!(
            "comsrv /health {}: {}",
            health.status,
            h["reason"].as_str().unwrap_or(health.body.trim())
        ));
    }
    let list = match serde_json::from_str::<serde_json::Value>(&channels.body) {
        Ok(serde_json::Value::Array(a)) if channels.status == 200 => a,
        _ => {
            why.push(format!(
                "comsrv /channels {}: not a channel list",
                channels.status
            ));
            Vec::new()
        }
    };
    let mut up = 0;
    let mut excused = Vec::new();
    for c in &list {
        if c["connected"] == true {
            up += 1;
        } else if baseline.is_some_and(|b| !c["id"].as_i64().is_some_and(|id| b.contains(&id))) {
            excused.push(c["id"].to_string());
        } else {
            why.push(format!(
                "channel {} ({}) has not polled successfully{}",
                c["id"],
                c["name"].as_str().unwrap_or("?"),
                c["last_error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    if why.is_empty() {
        let mut summary = format!("healthy: redis up, {up}/{} channels polling", list.len());
        if !excused.is_empty() {
            summary.push_str(&format!(
                " (not polling, and not before the update either: {})",
                excused.join(", ")
            ));
        }
        Ok(summary)
    } else {
        Err(why)
    }
}

async fn get(addr: &str, path: &str) -> anyhow::Result<Reply> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(3), io)
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer within 3 s"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET http://{addr}{path}: not an HTTP reply"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The ids of the channels that have completed a poll, in `/channels` order.
pub fn connected_ids(channels: &Reply) -> anyhow::Result<Vec<i64>> {
    match serde_json::from_str::<serde_json::Value>(&channels.body) {
        Ok(serde_json::Value::Array(a)) if channels.status == 200 => Ok(a
            .iter()
            .filter(|c| c["connected"] == true)
            .filter_map(|c| c["id"].as_i64())
            .collect()),
        _ => bail!("comsrv /channels {}: not a channel list", channels.status),
    }
}

/// Reads a baseline file: one channel id per line; blank lines and `#` comments are ignored.
pub fn parse_baseline(text: &str, file: &str) -> anyhow::Result<BTreeSet<i64>> {
    let mut ids = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = line
            .parse()
            .with_context(|| format!("{file}:{}:1: {line:?} is not a channel id", n + 1))?;
        ids.insert(id);
    }
    Ok(ids)
}

/// Prints the ids of the channels polling now, one per line (the baseline of an update).
pub async fn list_connected(addr: &str) -> anyhow::Result<String> {
    let ids = connected_ids(&get(addr, "/channels").await?)?;
    Ok(ids.iter().map(|id| format!("{id}\n")).collect())
}

/// Asks the daemon at `addr` (comsrv's HTTP address) until it is healthy or `wait` has passed.
pub async fn run(
    addr: &str,
    wait: Duration,
    baseline: Option<&BTreeSet<i64>>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let verdict = match (get(addr, "/health").await, get(addr, "/channels").await) {
            (Ok(h), Ok(c)) => judge(&h, &c, baseline),
            (Err(e), _) | (_, Err(e)) => Err(vec![format!("{e:#}")]),
        };
        match verdict {
            Ok(summary) => {
                println!("{summary}");
                return Ok(());
            }
            Err(why) if tokio::time::Instant::now() >= deadline => {
                bail!("not healthy:\n  {}", why.join("\n  "))
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }

    const HEALTHY: &str = r#"{"status":"healthy","service":{"name":"comsrv","port":6000}}"#;

    #[test]
    fn redis_up_and_every_channel_polled_is_healthy() {
        let c = r(
            200,
            r#"[{"id":1001,"name":"pcs","connected":true},{"id":1002,"name":"bms","connected":true}]"#,
        );
        assert_eq!(
            judge(&r(200, HEALTHY), &c, None).unwrap(),
            "healthy: redis up, 2/2 channels polling"
        );
    }

    #[test]
    fn a_channel_that_never_polled_is_named_with_its_error() {
        let c = r(
            200,
            r#"[{"id":1001,"name":"pcs","connected":true},{"id":1003,"name":"bms-bus","connected":false,"last_error":"timeout"}]"#,
        );
        let why = judge(&r(200, HEALTHY), &c, None).unwrap_err();
        assert_eq!(
            why,
            vec!["channel 1003 (bms-bus) has not polled successfully: timeout"]
        );
    }

    #[test]
    fn redis_down_is_unhealthy_with_the_reason() {
        let h = r(
            503,
            r#"{"status":"unhealthy","reason":"redis did not answer within 1 s"}"#,
        );
        let why = judge(&h, &r(200, "[]"), None).unwrap_err();
        assert_eq!(
            why,
            vec!["comsrv /health 503: redis did not answer within 1 s"]
        );
    }

    #[test]
    fn garbage_is_unhealthy_not_a_panic() {
        let why = judge(&r(200, "<html>"), &r(404, "nope"), None).unwrap_err();
        assert_eq!(why.len(), 2, "{why:?}");
    }

    const BUS_DEAD: &str = r#"[{"id":1001,"name":"pcs","connected":true},{"id":1003,"name":"meter","connected":false,"last_error":"timeout"}]"#;

    #[test]
    fn a_channel_dead_before_the_update_is_not_held_against_it() {
        let before: BTreeSet<i64> = [1001].into();
        let ok = judge(&r(200, HEALTHY), &r(200, BUS_DEAD), Some(&before)).unwrap();
        assert_eq!(
            ok,
            "healthy: redis up, 1/2 channels polling (not polling, and not before the update either: 1003)"
        );
    }

    #[test]
    fn a_channel_that_polled_before_the_update_must_poll_after_it() {
        let before: BTreeSet<i64> = [1001, 1003].into();
        let why = judge(&r(200, HEALTHY), &r(200, BUS_DEAD), Some(&before)).unwrap_err();
        assert_eq!(
            why,
            vec!["channel 1003 (meter) has not polled successfully: timeout"]
        );
    }

    #[test]
    fn a_baseline_does_not_excuse_redis_being_down() {
        let h = r(503, r#"{"status":"unhealthy","reason":"redis down"}"#);
        let none = BTreeSet::new();
        assert!(judge(&h, &r(200, BUS_DEAD), Some(&none)).is_err());
    }

    #[test]
    fn connected_ids_are_the_polling_channels() {
        assert_eq!(connected_ids(&r(200, BUS_DEAD)).unwrap(), vec![1001]);
        assert!(connected_ids(&r(502, "bad gateway")).is_err());
    }

    #[test]
    fn a_baseline_file_names_the_line_it_cannot_read() {
        let ids = parse_baseline("# slot=B\n1001\n\n 1003 \n", "ab-trial").unwrap();
        assert_eq!(ids, [1001, 1003].into());
        let e = parse_baseline("# slot=B\n1001\nmeter\n", "ab-trial").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"ab-trial:3:1: "meter" is not a channel id"#
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[tokio::test]
    async fn the_client_reads_a_real_http_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("GET /health ") {
                    HEALTHY
                } else {
                    r#"[{"id":1,"name":"a","connected":true}]"#
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        run(&addr, Duration::from_secs(0), None).await.unwrap();
    }

    #[tokio::test]
    async fn nothing_listening_fails_after_the_wait() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = run(&addr, Duration::from_secs(0), None).await.unwrap_err();
        assert!(e.to_string().starts_with("not healthy:"), "{e}");
    }
}
