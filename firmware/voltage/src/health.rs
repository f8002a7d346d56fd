//! `voltage health`: is the running daemon healthy, as the A/B health gate and operators ask it.
//!
//! Healthy means: comsrv's `/health` says Redis answers, and every channel `/channels` lists has
//! completed a poll (`connected`). The verdict ([`judge`]) is a pure function of the two
//! replies; the HTTP side is a minimal HTTP/1.1 GET on loopback (the daemon's own API), so the
//! image needs no curl or jq for the gate.

use anyhow::{bail, Context as _};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP reply: status code and body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// The verdict from `/health` and `/channels`: `Ok(summary)` or `Err(every reason)`.
pub fn judge(health: &Reply, channels: &Reply) -> Result<String, Vec<String>> {
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
    for c in &list {
        if c["connected"] == true {
            up += 1;
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
        Ok(format!(
            "healthy: redis up, {up}/{} channels polling",
            list.len()
        ))
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

/// Asks the daemon at `addr` (comsrv's HTTP address) until it is healthy or `wait` has passed.
pub async fn run(addr: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let verdict = match (get(addr, "/health").await, get(addr, "/channels").await) {
            (Ok(h), Ok(c)) => judge(&h, &c),
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
            judge(&r(200, HEALTHY), &c).unwrap(),
            "healthy: redis up, 2/2 channels polling"
        );
    }

    #[test]
    fn a_channel_that_never_polled_is_named_with_its_error() {
        let c = r(
            200,
            r#"[{"id":1001,"name":"pcs","connected":true},{"id":1003,"name":"bms-bus","connected":false,"last_error":"timeout"}]"#,
        );
        let why = judge(&r(200, HEALTHY), &c).unwrap_err();
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
        let why = judge(&h, &r(200, "[]")).unwrap_err();
        assert_eq!(
            why,
            vec!["comsrv /health 503: redis did not answer within 1 s"]
        );
    }

    #[test]
    fn garbage_is_unhealthy_not_a_panic() {
        let why = judge(&r(200, "<html>"), &r(404, "nope")).unwrap_err();
        assert_eq!(why.len(), 2, "{why:?}");
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
        run(&addr, Duration::from_secs(0)).await.unwrap();
    }

    #[tokio::test]
    async fn nothing_listening_fails_after_the_wait() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = run(&addr, Duration::from_secs(0)).await.unwrap_err();
        assert!(e.to_string().starts_with("not healthy:"), "{e}");
    }
}
