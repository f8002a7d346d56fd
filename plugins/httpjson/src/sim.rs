//! `httpjson-sim`: a simulated inverter with the HTTP/JSON API the example plugin speaks, for
//! tests and demos.
//!
//! ```text
//! httpjson-sim --listen 127.0.0.1:0 --set ac.power=12.5 --set running=true --writable power_limit_pct=100
//! ```
//!
//! `GET /api/v1/values` returns every value as one JSON object; `PUT /api/v1/values/{name}` with
//! `{"value": N}` sets a writable one (404 for an unknown name, 403 for a read-only one, 400 for a
//! body without a number; a `--sticky` value answers 200 and keeps its value). Prints `listening on ADDR` on stdout.

use clap::Parser;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use warp::http::StatusCode;
use warp::Filter;

#[derive(Parser)]
#[command(version, about = "Simulated inverter with an HTTP/JSON API")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// A read-only value, `name=number` or `name=true|false`.
    #[arg(long = "set", value_parser = parse_kv)]
    set: Vec<(String, serde_json::Value)>,
    /// A writable value with its initial value.
    #[arg(long = "writable", value_parser = parse_kv)]
    writable: Vec<(String, serde_json::Value)>,
    /// A value that accepts writes (200) but never changes: a device that "took" a command it
    /// did not apply, for read-back tests.
    #[arg(long = "sticky", value_parser = parse_kv)]
    sticky: Vec<(String, serde_json::Value)>,
}

fn parse_kv(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or("expected name=value")?;
    let v = match v {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        n => serde_json::Number::from_f64(n.parse::<f64>().map_err(|e| format!("{n}: {e}"))?)
            .map(serde_json::Value::Number)
            .ok_or("not a finite number")?,
    };
    Ok((k.to_string(), v))
}

/// Values, writable names, sticky names.
type State = Arc<
    Mutex<(
        BTreeMap<String, serde_json::Value>,
        Vec<String>,
        Vec<String>,
    )>,
>;

fn reply(code: StatusCode, body: serde_json::Value) -> warp::reply::WithStatus<warp::reply::Json> {
    warp::reply::with_status(warp::reply::json(&body), code)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = Args::parse();
    let writable: Vec<String> = a.writable.iter().map(|(k, _)| k.clone()).collect();
    let sticky: Vec<String> = a.sticky.iter().map(|(k, _)| k.clone()).collect();
    let values: BTreeMap<_, _> = a
        .set
        .into_iter()
        .chain(a.writable)
        .chain(a.sticky)
        .collect();
    let state: State = Arc::new(Mutex::new((values, writable, sticky)));
    let s = state.clone();
    let get = warp::path!("api" / "v1" / "values")
        .and(warp::get())
        .map(move || warp::reply::json(&s.lock().expect("state").0));
    let s = state.clone();
    let put = warp::path!("api" / "v1" / "values" / String)
        .and(warp::put())
        .and(warp::body::bytes())
        .map(move |name: String, body: bytes::Bytes| {
            let mut st = s.lock().expect("state");
            if !st.0.contains_key(&name) {
                return reply(
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"error": format!("no value {name}")}),
                );
            }
            if st.2.contains(&name) {
                return reply(StatusCode::OK, serde_json::json!({"ok": true}));
            }
            if !st.1.contains(&name) {
                return reply(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({"error": format!("{name} is read-only")}),
                );
            }
            let v = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b.get("value").and_then(|v| v.as_f64()));
            match v.and_then(serde_json::Number::from_f64) {
                Some(n) => {
                    st.0.insert(name, serde_json::Value::Number(n));
                    reply(StatusCode::OK, serde_json::json!({"ok": true}))
                }
                None => reply(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "body must be {\"value\": number}"}),
                ),
            }
        });
    let listener = match tokio::net::TcpListener::bind(a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("httpjson-sim: cannot listen on {}: {e}", a.listen);
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => eprintln!("httpjson-sim: {e}"),
    }
    warp::serve(get.or(put)).incoming(listener).run().await;
}
