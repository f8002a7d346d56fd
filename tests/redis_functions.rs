//! Redis Functions (seed section 4.2): the Lua libraries in `scripts/redis-functions/`, called
//! directly with FCALL / FCALL_RO against a real Redis 7, with the key and argument shapes of the
//! seed's tests (`FCALL model_get 1 model_001`). The functions are documented in
//! `docs/redis-functions.md`.
//!
//! Functions are server-wide: tests that flush or load libraries from files run on a dedicated
//! server, so they never pull the functions from under the tests on the shared one.

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, RedisError, Value};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use voltage_store::functions::{expected_version, CORE_LIBRARY, LIBRARIES};
use voltage_store::{FunctionsState, Store};
use voltage_tests::*;

const T0: &str = "2026-11-03T10:00:00.000Z";
const T1: &str = "2026-11-03T10:01:00.000Z";
const T2: &str = "2026-11-03T10:02:00.000Z";

/// Functions with the `no-writes` flag (callable with FCALL_RO).
const READERS: &[&str] = &[
    "voltage_functions_version",
    "model_get",
    "model_get_points",
    "model_list",
    "alarm_get",
    "alarm_list",
    "rule_get",
    "rule_list",
    "rule_get_execution",
    "rule_list_executions",
];

/// Functions that write (refused by FCALL_RO).
const WRITERS: &[&str] = &[
    "model_upsert",
    "model_delete",
    "alarm_create",
    "alarm_acknowledge",
    "alarm_resolve",
    "rule_upsert",
    "rule_delete",
    "rule_record_execution",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn store(env: &TestEnv) -> Store {
    Store::connect(&env.redis_url, Duration::from_secs(2))
        .await
        .expect("store connects")
}

/// A fresh database of the shared server with the embedded libraries loaded.
async fn loaded() -> (TestEnv, MultiplexedConnection) {
    let env = TestEnv::new().await;
    store(&env)
        .await
        .load_functions()
        .await
        .expect("libraries load");
    let c = env.redis().await;
    (env, c)
}

async fn call<T: FromRedisValue>(
    c: &mut MultiplexedConnection,
    command: &str,
    function: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<T> {
    redis::cmd(command)
        .arg(function)
        .arg(keys.len())
        .arg(keys)
        .arg(args)
        .query_async(c)
        .await
}

/// FCALL that must succeed.
async fn fcall<T: FromRedisValue>(
    c: &mut MultiplexedConnection,
    function: &str,
    keys: &[&str],
    args: &[&str],
) -> T {
    call(c, "FCALL", function, keys, args)
        .await
        .unwrap_or_else(|e| panic!("FCALL {function} {keys:?} {args:?}: {e}"))
}

/// FCALL_RO that must succeed.
async fn fcall_ro<T: FromRedisValue>(
    c: &mut MultiplexedConnection,
    function: &str,
    keys: &[&str],
    args: &[&str],
) -> T {
    call(c, "FCALL_RO", function, keys, args)
        .await
        .unwrap_or_else(|e| panic!("FCALL_RO {function} {keys:?} {args:?}: {e}"))
}

/// A function's JSON answer, parsed.
async fn json_of(
    c: &mut MultiplexedConnection,
    function: &str,
    keys: &[&str],
    args: &[&str],
) -> Json {
    let text: String = fcall(c, function, keys, args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{function} answered {text:?}: {e}"))
}

/// The message of an error reply of one of our functions: `ERR <function>: ...`, never a Lua
/// runtime error or its trace.
fn clean_message(e: &RedisError, function: &str) -> String {
    assert_eq!(e.code(), Some("ERR"), "{function}: error code of {e}");
    let detail = e.detail().unwrap_or_default().to_string();
    assert!(
        detail.starts_with(&format!("{function}: ")),
        "{function}: the message names the function: {detail:?}"
    );
    for trace in [
        "user_script",
        "user_function",
        "attempt to",
        "script:",
        "stack traceback",
        "nil value",
    ] {
        assert!(
            !detail.contains(trace),
            "{function}: a Lua trace ({trace:?}) in {detail:?}"
        );
    }
    detail
}

/// FCALL that must fail with a clean error reply; returns its message.
async fn fcall_err(
    c: &mut MultiplexedConnection,
    function: &str,
    keys: &[&str],
    args: &[&str],
) -> String {
    match call::<Value>(c, "FCALL", function, keys, args).await {
        Ok(v) => panic!("FCALL {function} {keys:?} {args:?} should fail, answered {v:?}"),
        Err(e) => clean_message(&e, function),
    }
}

/// Asserts `FCALL function keys args` fails with a message containing `want`.
async fn assert_refused(
    c: &mut MultiplexedConnection,
    function: &str,
    keys: &[&str],
    args: &[&str],
    want: &str,
) {
    let msg = fcall_err(c, function, keys, args).await;
    assert!(
        msg.contains(want),
        "FCALL {function} {keys:?} {args:?}: wanted {want:?} in {msg:?}"
    );
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(a) => a.chunks(2).map(|p| (text(&p[0]), &p[1])).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (text(k), v)).collect(),
        other => panic!("expected name/value pairs, got {other:?}"),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// `FUNCTION LIST`: library name -> [(function name, flags)].
async fn function_list(c: &mut MultiplexedConnection) -> Vec<(String, Vec<(String, Vec<String>)>)> {
    let v: Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(c)
        .await
        .expect("FUNCTION LIST");
    items(&v)
        .iter()
        .map(|lib| {
            let f = pairs(lib);
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap();
            let functions = items(get("functions"))
                .iter()
                .map(|func| {
                    let g = pairs(func);
                    let get = |k: &str| g.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap();
                    let flags = items(get("flags")).iter().map(text).collect();
                    (text(get("name")), flags)
                })
                .collect();
            (text(get("library_name")), functions)
        })
        .collect()
}

async fn library_names(c: &mut MultiplexedConnection) -> Vec<String> {
    let mut names: Vec<String> = function_list(c).await.into_iter().map(|l| l.0).collect();
    names.sort();
    names
}

fn embedded_names() -> Vec<String> {
    let mut names: Vec<String> = LIBRARIES.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    names
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-functions")
}

/// Runs a copy (or the original) of load_functions.sh against `redis_url`.
fn run_loader(script: &Path, redis_url: &str) -> Output {
    Command::new("bash")
        .arg(script)
        .env("REDIS_URL", redis_url)
        .env_remove("REDIS_SOCKET")
        .output()
        .expect("run load_functions.sh")
}

/// A model in the shape modsrv stores (TC-MODSRV-001), with three expanded points.
fn station_model(id: &str, name: &str, capacity: u32) -> String {
    json!({
        "id": id,
        "name": name,
        "template_id": "power_station_template",
        "parameters": {"capacity_mw": capacity, "voltage_kv": 35, "location": "Site A"},
        "points": [
            {"name": "voltage_a", "unit": "kV", "point_type": "T", "mapping": "comsrv:1001:T:1"},
            {"name": "voltage_b", "unit": "kV", "point_type": "T", "mapping": "comsrv:1001:T:2"},
            {"name": "breaker_close", "point_type": "C", "mapping": "comsrv:1001:C:1"}
        ]
    })
    .to_string()
}

/// An alarm request in the shape alarmsrv passes (TC-ALARMSRV-001).
fn alarm_request(title: &str, level: &str) -> String {
    json!({
        "title": title,
        "description": "Temperature exceeded threshold",
        "level": level,
        "source": "sensor_001",
        "metadata": {"current_value": 85.5, "threshold": 80.0, "unit": "°C"}
    })
    .to_string()
}

/// The ids `alarm_list` answers, in its order.
async fn alarm_ids(c: &mut MultiplexedConnection, args: &[&str]) -> Vec<String> {
    let list = json_of(c, "alarm_list", &[], args).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

async fn create_alarm(c: &mut MultiplexedConnection, title: &str, level: &str, at: &str) -> String {
    let r = json_of(c, "alarm_create", &[], &[&alarm_request(title, level), at]).await;
    assert_eq!(r["created"], true);
    r["id"].as_str().expect("alarm id is a string").to_string()
}

/// A rule in the shape rulesrv stores (TC-RULESRV-001).
fn threshold_rule(id: &str) -> String {
    json!({
        "id": id,
        "name": "Temperature Threshold Rule",
        "description": "Trigger when temperature > 80°C",
        "condition": {"expression": "comsrv:1001:T:1 > 80.0", "data_sources": ["comsrv:1001:T:1"]},
        "actions": [{"action_type": "create_alarm",
                     "parameters": {"title": "High Temperature", "level": "Warning"}}],
        "enabled": true
    })
    .to_string()
}

fn execution(n: usize) -> String {
    json!({
        "triggered": true,
        "executed_at": format!("2026-11-03T10:00:{:02}.000Z", n % 60),
        "values": {"comsrv:1001:T:1": 85.75},
        "actions": [{"action_type": "create_alarm", "ok": true, "n": n}]
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Loading and the version marker
// ---------------------------------------------------------------------------------------------

/// The daemon's version check function is loaded and read-only.
#[tokio::test]
async fn functions_version_is_callable_read_only_after_load() {
    let (_env, mut c) = loaded().await;
    let v: String = fcall_ro(&mut c, "voltage_functions_version", &[], &[]).await;
    assert_eq!(v, expected_version());
}

#[tokio::test]
async fn load_functions_sh_loads_every_library_into_a_fresh_redis() {
    let server = RedisServer::dedicated();
    let env = TestEnv::on(&server);
    let mut c = env.redis().await;
    assert!(library_names(&mut c).await.is_empty(), "a fresh server");

    let out = run_loader(&scripts_dir().join("load_functions.sh"), &env.redis_url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load_functions.sh failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(library_names(&mut c).await, embedded_names());
    for (name, _) in LIBRARIES {
        assert!(stdout.contains(&format!("loaded {name}")), "{stdout}");
    }
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("loaded {CORE_LIBRARY}")),
        "the version marker loads last: {stdout}"
    );
    // What the script loaded is what the daemon embeds: the daemon finds it current.
    let st = store(&env).await;
    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Current
    );
    let model: Json = json_of(&mut c, "model_upsert", &["m1"], &["{}"]).await;
    assert_eq!(model["created"], true);
}

#[tokio::test]
async fn load_functions_sh_fails_loudly_on_a_broken_library_and_leaves_the_version_marker_out() {
    let server = RedisServer::dedicated();
    let env = TestEnv::on(&server);
    let mut c = env.redis().await;
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(scripts_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let broken = dir.path().join("model.lua");
    let mut code = std::fs::read_to_string(&broken).unwrap();
    code.push_str("\nlocal broken = = 1\n");
    std::fs::write(&broken, code).unwrap();

    let out = run_loader(&dir.path().join("load_functions.sh"), &env.redis_url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(
        stderr.contains("model.lua") && stderr.contains("Error compiling"),
        "names the file and Redis's reason: {stderr}"
    );
    assert!(
        stderr.contains("core.lua: not loaded"),
        "says the marker was held back: {stderr}"
    );
    assert_eq!(
        library_names(&mut c).await,
        ["voltage_alarm", "voltage_rule"],
        "the good libraries load, the broken one and the version marker do not"
    );
    // The daemon therefore sees no version and loads its own libraries.
    let st = store(&env).await;
    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Loaded { previous: None }
    );
    assert_eq!(library_names(&mut c).await, embedded_names());

    // A library without its name line is refused as well.
    std::fs::write(&broken, "-- no name line\nreturn 1\n").unwrap();
    let out = run_loader(&dir.path().join("load_functions.sh"), &env.redis_url);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("first line must be '#!lua name=<library>'"),
        "{stderr}"
    );
}

#[tokio::test]
async fn ensure_functions_reloads_the_libraries_after_function_flush() {
    let server = RedisServer::dedicated();
    let env = TestEnv::on(&server);
    let st = store(&env).await;
    let mut c = env.redis().await;
    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Loaded { previous: None }
    );
    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Current
    );
    let _: String = fcall(&mut c, "model_upsert", &["m1"], &["{}"]).await;

    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    let gone = call::<String>(&mut c, "FCALL_RO", "model_get", &["m1"], &[])
        .await
        .unwrap_err();
    assert!(gone.to_string().contains("Function not found"), "{gone}");
    assert_eq!(st.functions_version().await.unwrap(), None);

    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Loaded { previous: None }
    );
    assert_eq!(library_names(&mut c).await, embedded_names());
    let model: Json =
        serde_json::from_str(&fcall_ro::<String>(&mut c, "model_get", &["m1"], &[]).await).unwrap();
    assert_eq!(
        model["id"], "m1",
        "the data survived, the functions came back"
    );
}

#[tokio::test]
async fn ensure_functions_replaces_libraries_of_another_version() {
    let server = RedisServer::dedicated();
    let env = TestEnv::on(&server);
    let st = store(&env).await;
    let mut c = env.redis().await;
    let core = LIBRARIES
        .iter()
        .find(|(n, _)| *n == CORE_LIBRARY)
        .unwrap()
        .1;
    let old = core.replace(
        &format!("local VERSION = '{}'", expected_version()),
        "local VERSION = '0.0.0-old'",
    );
    assert_ne!(old, core);
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(&old)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        st.ensure_functions().await.unwrap(),
        FunctionsState::Loaded {
            previous: Some("0.0.0-old".into())
        }
    );
    assert_eq!(
        st.functions_version().await.unwrap().as_deref(),
        Some(expected_version())
    );
    assert_eq!(library_names(&mut c).await, embedded_names());
}

// ---------------------------------------------------------------------------------------------
// Flags and arity, for every function
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn readers_carry_no_writes_and_writers_do_not() {
    let (_env, mut c) = loaded().await;
    let mut seen = Vec::new();
    for (lib, functions) in function_list(&mut c).await {
        if !embedded_names().contains(&lib) {
            continue;
        }
        for (name, flags) in functions {
            let no_writes = flags.iter().any(|f| f == "no-writes");
            if READERS.contains(&name.as_str()) {
                assert!(
                    no_writes,
                    "{lib}.{name} reads only but lacks no-writes: {flags:?}"
                );
            } else if WRITERS.contains(&name.as_str()) {
                assert!(!no_writes, "{lib}.{name} writes but is flagged no-writes");
            } else {
                panic!("{lib}.{name} is neither in READERS nor in WRITERS of this suite");
            }
            seen.push(name);
        }
    }
    seen.sort();
    let mut all: Vec<String> = READERS
        .iter()
        .chain(WRITERS)
        .map(|s| s.to_string())
        .collect();
    all.sort();
    assert_eq!(
        seen, all,
        "every function of the suite's lists is registered"
    );
}

#[tokio::test]
async fn fcall_ro_serves_every_reader_and_refuses_every_writer() {
    let (_env, mut c) = loaded().await;
    let _: String = fcall(
        &mut c,
        "model_upsert",
        &["m1"],
        &[&station_model("m1", "S", 1)],
    )
    .await;
    let alarm = create_alarm(&mut c, "A", "Info", T0).await;
    let _: String = fcall(&mut c, "rule_upsert", &["r1"], &[&threshold_rule("r1")]).await;
    let _: i64 = fcall(&mut c, "rule_record_execution", &["r1"], &[&execution(1)]).await;

    let readers: &[(&str, &[&str])] = &[
        ("voltage_functions_version", &[]),
        ("model_get", &["m1"]),
        ("model_get_points", &["m1"]),
        ("model_list", &[]),
        ("alarm_get", &[&alarm]),
        ("alarm_list", &[]),
        ("rule_get", &["r1"]),
        ("rule_list", &[]),
        ("rule_get_execution", &["r1"]),
        ("rule_list_executions", &["r1"]),
    ];
    for (name, keys) in readers {
        let v: String = fcall_ro(&mut c, name, keys, &[]).await;
        assert!(!v.is_empty(), "{name}");
    }

    let writers: &[(&str, &[&str], &[&str])] = &[
        ("model_upsert", &["m2"], &["{}"]),
        ("model_delete", &["m1"], &[]),
        ("alarm_create", &[], &[&alarm_request("B", "Info"), T0]),
        ("alarm_acknowledge", &[&alarm], &["op", T1]),
        ("alarm_resolve", &[&alarm], &["op", T1]),
        ("rule_upsert", &["r2"], &[&threshold_rule("r2")]),
        ("rule_delete", &["r1"], &[]),
        ("rule_record_execution", &["r1"], &[&execution(2)]),
    ];
    for (name, keys, args) in writers {
        let e = call::<Value>(&mut c, "FCALL_RO", name, keys, args)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("write flag"),
            "FCALL_RO {name} must be refused for its write flag: {e}"
        );
    }
    // Nothing was written by the refused calls.
    let models: Json =
        serde_json::from_str(&fcall_ro::<String>(&mut c, "model_list", &[], &[]).await).unwrap();
    assert_eq!(models.as_array().unwrap().len(), 1);
    let a = json_of(&mut c, "alarm_get", &[&alarm], &[]).await;
    assert_eq!(a["status"], "Active");
    let ex = json_of(&mut c, "rule_list_executions", &["r1"], &[]).await;
    assert_eq!(ex.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_function_names_itself_and_its_usage_when_given_the_wrong_number_of_keys_or_arguments(
) {
    let (_env, mut c) = loaded().await;
    // (function, keys, fewest arguments, most arguments or None for name/value options)
    let arity: &[(&str, usize, usize, Option<usize>)] = &[
        ("model_upsert", 1, 1, Some(2)),
        ("model_get", 1, 0, Some(0)),
        ("model_get_points", 1, 0, Some(0)),
        ("model_delete", 1, 0, Some(0)),
        ("model_list", 0, 0, Some(0)),
        ("alarm_create", 0, 2, Some(2)),
        ("alarm_get", 1, 0, Some(0)),
        ("alarm_acknowledge", 1, 2, Some(3)),
        ("alarm_resolve", 1, 2, Some(3)),
        ("alarm_list", 0, 0, None),
        ("rule_upsert", 1, 1, Some(2)),
        ("rule_get", 1, 0, Some(0)),
        ("rule_delete", 1, 0, Some(0)),
        ("rule_list", 0, 0, Some(0)),
        ("rule_record_execution", 1, 1, Some(2)),
        ("rule_get_execution", 1, 0, Some(0)),
        ("rule_list_executions", 1, 0, Some(1)),
    ];
    assert_eq!(
        arity.len(),
        READERS.len() - 1 + WRITERS.len(),
        "every function"
    );
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    for &(name, nkeys, min, max) in arity {
        let cmd = if READERS.contains(&name) {
            "FCALL_RO"
        } else {
            "FCALL"
        };
        let usage = format!("(usage: {cmd} {name} {nkeys}");

        let keys = vec!["k1"; nkeys + 1];
        let msg = fcall_err(&mut c, name, &keys, &vec!["a"; min]).await;
        assert!(
            msg.starts_with(&format!(
                "{name}: expected {}, got {}",
                plural(nkeys, "key"),
                nkeys + 1
            )) && msg.contains(&usage),
            "{msg}"
        );

        let keys = vec!["k1"; nkeys];
        if let Some(max) = max {
            let msg = fcall_err(&mut c, name, &keys, &vec!["a"; max + 1]).await;
            assert!(
                msg.contains(&format!("got {}", max + 1)) && msg.contains(&usage),
                "{msg}"
            );
        }
        if min > 0 {
            let msg = fcall_err(&mut c, name, &keys, &vec!["a"; min - 1]).await;
            assert!(
                msg.contains(&format!("got {}", min - 1)) && msg.contains(&usage),
                "{msg}"
            );
        }
    }
    // One in full.
    assert_eq!(
        fcall_err(&mut c, "model_upsert", &["m1"], &[]).await,
        "model_upsert: expected 1 to 2 arguments, got 0 \
         (usage: FCALL model_upsert 1 model_id model_json [upsert|create|update])"
    );
}

#[tokio::test]
async fn ids_that_cannot_be_part_of_a_key_or_url_are_refused_by_every_function_that_takes_one() {
    let (_env, mut c) = loaded().await;
    let cases: &[(&str, &[&str])] = &[
        ("model_upsert", &["{}"]),
        ("model_get", &[]),
        ("model_get_points", &[]),
        ("model_delete", &[]),
        ("alarm_get", &[]),
        ("alarm_acknowledge", &["op", T1]),
        ("alarm_resolve", &["op", T1]),
        ("rule_upsert", &[r#"{"condition":{"expression":"1 > 0"}}"#]),
        ("rule_get", &[]),
        ("rule_delete", &[]),
        (
            "rule_record_execution",
            &[r#"{"triggered":true,"executed_at":"t"}"#],
        ),
        ("rule_get_execution", &[]),
        ("rule_list_executions", &[]),
    ];
    let long = "x".repeat(129);
    for (name, args) in cases {
        for id in ["", "a b", "a}b", long.as_str()] {
            let msg = fcall_err(&mut c, name, &[id], args).await;
            assert!(
                msg.contains(" id '") && msg.contains("use 1 to 128 characters"),
                "{name} {id:?}: {msg}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// voltage_model
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn model_upsert_stores_the_model_that_model_get_returns_tc_modsrv_001() {
    let (_env, mut c) = loaded().await;
    let r = json_of(
        &mut c,
        "model_upsert",
        &["model_001"],
        &[&station_model("model_001", "Test Power Station", 100)],
    )
    .await;
    assert_eq!(r, json!({"id": "model_001", "created": true, "points": 3}));

    let text: String = fcall_ro(&mut c, "model_get", &["model_001"], &[]).await;
    let model: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(model["name"], "Test Power Station");
    assert_eq!(model["parameters"]["capacity_mw"], 100);

    let points: Json = serde_json::from_str(
        &fcall_ro::<String>(&mut c, "model_get_points", &["model_001"], &[]).await,
    )
    .unwrap();
    let points = points.as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points
        .iter()
        .any(|p| p["name"].as_str().unwrap().contains("voltage")));
}

#[tokio::test]
async fn model_get_returns_the_upserted_text_unchanged_with_the_id_added_when_absent() {
    let (_env, mut c) = loaded().await;
    // Numbers beyond cjson's 14 digits, an empty array and a nanosecond timestamp string would not
    // survive a decode/encode round trip; the stored model is the caller's text.
    let raw = r#"{"name":"Performance Test Model","template_id":"test_template","parameters":{"capacity":1000,"efficiency":0.95,"k":0.12345678901234567,"big":1234567890123456789},"tags":[],"installed_at_ns":"1762164000123456789"}"#;
    let r = json_of(&mut c, "model_upsert", &["perf_model_0001"], &[raw]).await;
    assert_eq!(r["created"], true);
    let got: String = fcall_ro(&mut c, "model_get", &["perf_model_0001"], &[]).await;
    assert_eq!(got, format!(r#"{{"id":"perf_model_0001",{}"#, &raw[1..]));

    // An empty object gets just its id; a model that names its id is kept byte for byte.
    let _: String = fcall(&mut c, "model_upsert", &["m_empty"], &[" { } "]).await;
    let got: String = fcall_ro(&mut c, "model_get", &["m_empty"], &[]).await;
    assert_eq!(got, r#"{"id":"m_empty"}"#);
    let with_id = "{ \"id\" : \"m2\",\n  \"v\": 1.50 }";
    let _: String = fcall(&mut c, "model_upsert", &["m2"], &[with_id]).await;
    let got: String = fcall_ro(&mut c, "model_get", &["m2"], &[]).await;
    assert_eq!(got, with_id);
}

#[tokio::test]
async fn model_get_points_returns_the_points_by_name_with_their_mappings() {
    let (env, mut c) = loaded().await;
    let _: String = fcall(
        &mut c,
        "model_upsert",
        &["model_001"],
        &[&station_model("model_001", "S", 100)],
    )
    .await;
    let points = json_of(&mut c, "model_get_points", &["model_001"], &[]).await;
    let names: Vec<&str> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["breaker_close", "voltage_a", "voltage_b"]);
    assert_eq!(points[1]["mapping"], "comsrv:1001:T:1");
    assert_eq!(points[1]["unit"], "kV");

    // The same points given as an object name -> point; the hash has one field per point.
    let by_name = json!({"name": "B", "points": {
        "soc": {"unit": "%", "mapping": "comsrv:2001:T:7"},
        "power": {"name": "power", "unit": "kW"}
    }})
    .to_string();
    let r = json_of(&mut c, "model_upsert", &["bat_1"], &[&by_name]).await;
    assert_eq!(r["points"], 2);
    let points = json_of(&mut c, "model_get_points", &["bat_1"], &[]).await;
    assert_eq!(points[0], json!({"name": "power", "unit": "kW"}));
    assert_eq!(
        points[1],
        json!({"name": "soc", "unit": "%", "mapping": "comsrv:2001:T:7"})
    );
    assert_eq!(env.hlen("modsrv:model:{bat_1}:points").await, 2);
    let soc = env
        .hget("modsrv:model:{bat_1}:points", "soc")
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Json>(&soc).unwrap()["mapping"],
        "comsrv:2001:T:7"
    );

    // A model without points has an empty list.
    let _: String = fcall(&mut c, "model_upsert", &["bare"], &[r#"{"name":"x"}"#]).await;
    assert_eq!(
        fcall_ro::<String>(&mut c, "model_get_points", &["bare"], &[]).await,
        "[]"
    );
}

#[tokio::test]
async fn re_upserting_a_model_replaces_its_points_tc_modsrv_002() {
    let (env, mut c) = loaded().await;
    let _: String = fcall(
        &mut c,
        "model_upsert",
        &["model_002"],
        &[&station_model("model_002", "Power Station", 100)],
    )
    .await;
    assert_eq!(env.hlen("modsrv:model:{model_002}:points").await, 3);

    let updated = json!({
        "id": "model_002",
        "name": "Updated Power Station",
        "template_id": "power_station_template",
        "parameters": {"capacity_mw": 150, "voltage_kv": 35, "location": "Site B"},
        "points": [{"name": "voltage_ab", "unit": "kV", "mapping": "comsrv:1001:T:9"}]
    })
    .to_string();
    let r = json_of(
        &mut c,
        "model_upsert",
        &["model_002"],
        &[&updated, "update"],
    )
    .await;
    assert_eq!(r, json!({"id": "model_002", "created": false, "points": 1}));

    let model = json_of(&mut c, "model_get", &["model_002"], &[]).await;
    assert_eq!(model["name"], "Updated Power Station");
    assert_eq!(model["parameters"]["capacity_mw"], 150);
    assert_eq!(model["parameters"]["location"], "Site B");
    let points = json_of(&mut c, "model_get_points", &["model_002"], &[]).await;
    assert_eq!(
        points,
        json!([{"name": "voltage_ab", "unit": "kV", "mapping": "comsrv:1001:T:9"}])
    );
    assert_eq!(env.hlen("modsrv:model:{model_002}:points").await, 1);

    // A refused re-upsert leaves model and points as they were.
    let bad = r#"{"name":"Broken","points":[{"name":"p1"},{"name":"p1"}]}"#;
    assert_refused(
        &mut c,
        "model_upsert",
        &["model_002"],
        &[bad],
        "declared twice",
    )
    .await;
    assert_eq!(
        json_of(&mut c, "model_get", &["model_002"], &[]).await["name"],
        "Updated Power Station"
    );
    assert_eq!(env.hlen("modsrv:model:{model_002}:points").await, 1);

    // Upserting without points removes them.
    let _: String = fcall(&mut c, "model_upsert", &["model_002"], &[r#"{"name":"N"}"#]).await;
    assert_eq!(env.hlen("modsrv:model:{model_002}:points").await, 0);
}

#[tokio::test]
async fn model_upsert_modes_create_and_update_refuse_duplicates_and_unknown_models() {
    let (_env, mut c) = loaded().await;
    let m = station_model("m1", "S", 1);
    assert_refused(
        &mut c,
        "model_upsert",
        &["m1"],
        &[&m, "update"],
        "model 'm1' not found",
    )
    .await;
    let r = json_of(&mut c, "model_upsert", &["m1"], &[&m, "create"]).await;
    assert_eq!(r["created"], true);
    assert_refused(
        &mut c,
        "model_upsert",
        &["m1"],
        &[&m, "create"],
        "model 'm1' already exists",
    )
    .await;
    let r = json_of(&mut c, "model_upsert", &["m1"], &[&m, "upsert"]).await;
    assert_eq!(r["created"], false);
    assert_refused(
        &mut c,
        "model_upsert",
        &["m1"],
        &[&m, "replace"],
        "mode must be upsert, create or update, got 'replace'",
    )
    .await;
}

#[tokio::test]
async fn model_delete_removes_the_model_its_points_and_its_list_entry() {
    let (env, mut c) = loaded().await;
    for id in ["a", "b"] {
        let _: String = fcall(&mut c, "model_upsert", &[id], &[&station_model(id, id, 1)]).await;
    }
    let ok: String = fcall(&mut c, "model_delete", &["a"], &[]).await;
    assert_eq!(ok, "OK");
    assert_refused(&mut c, "model_get", &["a"], &[], "model 'a' not found").await;
    assert_refused(
        &mut c,
        "model_get_points",
        &["a"],
        &[],
        "model 'a' not found",
    )
    .await;
    assert_refused(&mut c, "model_delete", &["a"], &[], "model 'a' not found").await;
    assert_eq!(env.hlen("modsrv:model:{a}:points").await, 0);
    let list = json_of(&mut c, "model_list", &[], &[]).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b"]);
}

#[tokio::test]
async fn model_list_returns_every_model_in_id_order() {
    let (_env, mut c) = loaded().await;
    assert_eq!(
        fcall_ro::<String>(&mut c, "model_list", &[], &[]).await,
        "[]"
    );
    for id in ["pcs_1", "battery_2", "battery_1", "station"] {
        let _: String = fcall(&mut c, "model_upsert", &[id], &[&station_model(id, id, 5)]).await;
    }
    let list = json_of(&mut c, "model_list", &[], &[]).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["battery_1", "battery_2", "pcs_1", "station"]);
    assert_eq!(list[0]["parameters"]["capacity_mw"], 5);
}

#[tokio::test]
async fn model_upsert_refuses_bad_json_mismatched_ids_and_bad_points_with_clear_messages() {
    let (_env, mut c) = loaded().await;
    let cases: &[(&str, &str)] = &[
        ("", "model_json must be a JSON object"),
        ("[1,2]", "model_json must be a JSON object"),
        ("\"text\"", "model_json must be a JSON object"),
        (r#"{"name":"x""#, "model_json is not valid JSON (Expected"),
        (r#"{"name":"x"} trailing"#, "model_json is not valid JSON"),
        (
            r#"{"id":"other"}"#,
            r#"model_json has "id" 'other' but the key is 'm1'"#,
        ),
        (
            r#"{"id":7}"#,
            r#"model_json has "id" number 7 but the key is 'm1'"#,
        ),
        (
            r#"{"points":5}"#,
            r#""points" must be an object or an array, got number 5"#,
        ),
        (
            r#"{"points":"a"}"#,
            r#""points" must be an object or an array"#,
        ),
        (
            r#"{"points":[3]}"#,
            "points[0] must be an object, got number 3",
        ),
        (
            r#"{"points":[{"unit":"V"}]}"#,
            r#"points[0] needs a non-empty string "name""#,
        ),
        (
            r#"{"points":[{"name":""}]}"#,
            r#"points[0] needs a non-empty string "name""#,
        ),
        (
            r#"{"points":[{"name":"a"},{"name":"a"}]}"#,
            "point 'a' is declared twice",
        ),
        (
            r#"{"points":{"a":{"name":"b"}}}"#,
            r#"point 'a' has "name" 'b'"#,
        ),
        (
            r#"{"points":{"a":[1]}}"#,
            "point 'a' must be an object, got an array",
        ),
        (
            r#"{"points":{"a":{"mapping":"modbus:1:2"}}}"#,
            r#"point 'a': "mapping" must look like comsrv:1001:T:1"#,
        ),
        (
            r#"{"points":{"a":{"mapping":"comsrv:1001:X:1"}}}"#,
            r#"point 'a': "mapping" must look like comsrv:1001:T:1"#,
        ),
        (
            r#"{"points":{"a":{"mapping":1001}}}"#,
            r#""mapping" must look like comsrv:1001:T:1 (channel, T|S|C|A, point id), got number 1001"#,
        ),
    ];
    for (json, want) in cases {
        assert_refused(&mut c, "model_upsert", &["m1"], &[json], want).await;
    }
    assert_eq!(
        fcall_ro::<String>(&mut c, "model_list", &[], &[]).await,
        "[]",
        "nothing was stored by the refused calls"
    );
}

// ---------------------------------------------------------------------------------------------
// voltage_alarm
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn alarm_create_stores_an_active_alarm_that_alarm_get_returns_tc_alarmsrv_001() {
    let (_env, mut c) = loaded().await;
    let r = json_of(
        &mut c,
        "alarm_create",
        &[],
        &[&alarm_request("High Temperature Alert", "Warning"), T0],
    )
    .await;
    assert_eq!(r, json!({"id": "1", "created": true}));
    let id = create_alarm(&mut c, "Second", "Info", T1).await;
    assert_eq!(id, "2", "ids come from alarmsrv:seq");

    let text: String = fcall_ro(&mut c, "alarm_get", &["1"], &[]).await;
    let alarm: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(alarm["id"], "1");
    assert_eq!(alarm["title"], "High Temperature Alert");
    assert_eq!(alarm["description"], "Temperature exceeded threshold");
    assert_eq!(alarm["level"], "Warning");
    assert_eq!(alarm["status"], "Active");
    assert_eq!(alarm["source"], "sensor_001");
    assert_eq!(alarm["created_at"], T0);
    assert_eq!(alarm["updated_at"], T0);
    assert_eq!(alarm["metadata"]["current_value"], 85.5);
    assert_eq!(alarm["metadata"]["unit"], "°C");
    assert!(alarm.get("acknowledged_at").is_none());
    assert_eq!(
        alarm["events"],
        json!([{"event": "created", "at": T0, "status": "Active"}])
    );
    assert_refused(&mut c, "alarm_get", &["3"], &[], "alarm '3' not found").await;
}

#[tokio::test]
async fn acknowledging_an_active_alarm_records_who_when_and_notes_tc_alarmsrv_002() {
    let (_env, mut c) = loaded().await;
    let id = create_alarm(&mut c, "High Temperature Alert", "Warning", T0).await;
    let acked = json_of(
        &mut c,
        "alarm_acknowledge",
        &[&id],
        &["operator_001", T1, "Investigating temperature sensor"],
    )
    .await;
    let alarm = json_of(&mut c, "alarm_get", &[&id], &[]).await;
    assert_eq!(
        acked, alarm,
        "acknowledge answers the alarm as alarm_get does"
    );
    assert_eq!(alarm["status"], "Acknowledged");
    assert_eq!(alarm["acknowledged_by"], "operator_001");
    assert!(alarm["acknowledged_at"].is_string());
    assert_eq!(alarm["acknowledged_at"], T1);
    assert_eq!(alarm["notes"], "Investigating temperature sensor");
    assert_eq!(alarm["updated_at"], T1);
    assert_eq!(alarm["created_at"], T0);
    assert_eq!(
        alarm["events"][1],
        json!({"event": "acknowledged", "at": T1, "by": "operator_001",
               "notes": "Investigating temperature sensor", "from": "Active", "to": "Acknowledged"})
    );
}

#[tokio::test]
async fn alarm_transitions_follow_active_acknowledged_resolved_and_refuse_illegal_ones() {
    let (_env, mut c) = loaded().await;
    // Active -> Acknowledged -> Resolved
    let a = create_alarm(&mut c, "A", "Major", T0).await;
    let _: String = fcall(&mut c, "alarm_acknowledge", &[&a], &["op1", T1]).await;
    assert_refused(
        &mut c,
        "alarm_acknowledge",
        &[&a],
        &["op2", T2],
        &format!("alarm '{a}' is Acknowledged; only Active alarms can be acknowledged"),
    )
    .await;
    let resolved = json_of(&mut c, "alarm_resolve", &[&a], &["op1", T2, "replaced fan"]).await;
    assert_eq!(resolved["status"], "Resolved");
    assert_eq!(resolved["resolved_by"], "op1");
    assert_eq!(resolved["resolved_at"], T2);
    assert_eq!(resolved["resolution_notes"], "replaced fan");
    assert_eq!(
        resolved["acknowledged_by"], "op1",
        "the acknowledgement stays"
    );
    let events: Vec<&str> = resolved["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["created", "acknowledged", "resolved"]);

    // Nothing leaves Resolved, and a refused transition changes nothing.
    assert_refused(
        &mut c,
        "alarm_acknowledge",
        &[&a],
        &["op2", T2],
        &format!("alarm '{a}' is Resolved; only Active alarms can be acknowledged"),
    )
    .await;
    assert_refused(
        &mut c,
        "alarm_resolve",
        &[&a],
        &["op2", T2],
        &format!("alarm '{a}' is Resolved; only Active or Acknowledged alarms can be resolved"),
    )
    .await;
    assert_eq!(json_of(&mut c, "alarm_get", &[&a], &[]).await, resolved);

    // Active -> Resolved directly (a condition that cleared).
    let b = create_alarm(&mut c, "B", "Info", T0).await;
    let r = json_of(&mut c, "alarm_resolve", &[&b], &["system", T1]).await;
    assert_eq!(r["status"], "Resolved");
    assert!(r.get("acknowledged_at").is_none());
    assert!(r.get("resolution_notes").is_none());

    // Unknown ids and missing who/when.
    assert_refused(
        &mut c,
        "alarm_acknowledge",
        &["999"],
        &["op", T1],
        "alarm '999' not found",
    )
    .await;
    assert_refused(
        &mut c,
        "alarm_resolve",
        &["999"],
        &["op", T1],
        "alarm '999' not found",
    )
    .await;
    let c_id = create_alarm(&mut c, "C", "Info", T0).await;
    assert_refused(
        &mut c,
        "alarm_acknowledge",
        &[&c_id],
        &["", T1],
        "acknowledged_by must be a non-empty string, got ''",
    )
    .await;
    assert_refused(
        &mut c,
        "alarm_resolve",
        &[&c_id],
        &["op", ""],
        "resolved_at must be a non-empty string, got ''",
    )
    .await;
    assert_eq!(
        json_of(&mut c, "alarm_get", &[&c_id], &[]).await["status"],
        "Active"
    );
}

#[tokio::test]
async fn alarm_list_filters_by_status_and_level_newest_first_with_a_limit() {
    let (_env, mut c) = loaded().await;
    let mut ids = Vec::new();
    for (i, level) in ["Info", "Warning", "Critical", "Warning", "Major", "Warning"]
        .iter()
        .enumerate()
    {
        ids.push(create_alarm(&mut c, &format!("alarm {i}"), level, T0).await);
    }
    let _: String = fcall(&mut c, "alarm_acknowledge", &[&ids[1]], &["op", T1]).await;
    let _: String = fcall(&mut c, "alarm_resolve", &[&ids[3]], &["op", T1]).await;
    let _: String = fcall(&mut c, "alarm_resolve", &[&ids[0]], &["op", T1]).await;

    assert_eq!(alarm_ids(&mut c, &[]).await, ["6", "5", "4", "3", "2", "1"]);
    assert_eq!(alarm_ids(&mut c, &["limit", "2"]).await, ["6", "5"]);
    assert_eq!(
        alarm_ids(&mut c, &["status", "Active"]).await,
        ["6", "5", "3"]
    );
    assert_eq!(alarm_ids(&mut c, &["status", "Acknowledged"]).await, ["2"]);
    assert_eq!(alarm_ids(&mut c, &["status", "Resolved"]).await, ["4", "1"]);
    assert_eq!(
        alarm_ids(&mut c, &["level", "Warning"]).await,
        ["6", "4", "2"]
    );
    assert_eq!(
        alarm_ids(&mut c, &["level", "Warning", "status", "Active"]).await,
        ["6"]
    );
    assert_eq!(
        alarm_ids(
            &mut c,
            &["status", "Resolved", "level", "Warning", "limit", "5"]
        )
        .await,
        ["4"]
    );
    assert!(alarm_ids(&mut c, &["status", "Active", "level", "Info"])
        .await
        .is_empty());

    // The entries are whole alarms (without their event history).
    let v: String = fcall_ro(&mut c, "alarm_list", &[], &["status", "Acknowledged"]).await;
    let v: Json = serde_json::from_str(&v).unwrap();
    assert_eq!(v[0]["acknowledged_by"], "op");
    assert_eq!(v[0]["level"], "Warning");
    assert!(v[0].get("events").is_none());

    let refused: &[(&[&str], &str)] = &[
        (
            &["status", "active"],
            "status must be one of Active, Acknowledged, Resolved, got 'active'",
        ),
        (
            &["level", "High"],
            "level must be one of Info, Warning, Major, Critical, got 'High'",
        ),
        (
            &["limit", "0"],
            "limit must be an integer from 1 to 10000, got '0'",
        ),
        (
            &["limit", "ten"],
            "limit must be an integer from 1 to 10000, got 'ten'",
        ),
        (&["limit"], "options come in pairs (name value)"),
        (
            &["since", "1"],
            "unknown option 'since' (options: status, level, limit)",
        ),
        (&["limit", "1", "limit", "2"], "option 'limit' given twice"),
    ];
    for (args, want) in refused {
        assert_refused(&mut c, "alarm_list", &[], args, want).await;
    }
}

#[tokio::test]
async fn an_alarm_with_a_dedup_key_is_not_duplicated_while_it_is_unresolved() {
    let (_env, mut c) = loaded().await;
    let req = json!({"title": "High Temperature", "level": "Warning", "dedup_key": "rule:r1"})
        .to_string();
    let first = json_of(&mut c, "alarm_create", &[], &[&req, T0]).await;
    assert_eq!(first, json!({"id": "1", "created": true}));
    let again = json_of(&mut c, "alarm_create", &[], &[&req, T1]).await;
    assert_eq!(again, json!({"id": "1", "created": false}));
    let _: String = fcall(&mut c, "alarm_acknowledge", &["1"], &["op", T1]).await;
    let again = json_of(&mut c, "alarm_create", &[], &[&req, T1]).await;
    assert_eq!(
        again,
        json!({"id": "1", "created": false}),
        "acknowledged is still unresolved"
    );
    let alarm = json_of(&mut c, "alarm_get", &["1"], &[]).await;
    assert_eq!(alarm["dedup_key"], "rule:r1");
    assert_eq!(alarm["events"].as_array().unwrap().len(), 2);

    let _: String = fcall(&mut c, "alarm_resolve", &["1"], &["system", T2]).await;
    let next = json_of(&mut c, "alarm_create", &[], &[&req, T2]).await;
    assert_eq!(
        next,
        json!({"id": "2", "created": true}),
        "after resolution a new alarm"
    );
    // Other keys and alarms without one are independent.
    let other = json!({"title": "x", "level": "Info", "dedup_key": "rule:r2"}).to_string();
    assert_eq!(
        json_of(&mut c, "alarm_create", &[], &[&other, T2]).await["id"],
        "3"
    );
    assert_eq!(create_alarm(&mut c, "plain", "Info", T2).await, "4");
    assert_eq!(create_alarm(&mut c, "plain", "Info", T2).await, "5");
    // A dedup entry whose alarm is gone (deleted by hand) does not block a new alarm.
    let _: () = redis::cmd("SET")
        .arg("alarmsrv:dedup:rule:r9")
        .arg("999")
        .query_async(&mut c)
        .await
        .unwrap();
    let r9 = json!({"title": "x", "level": "Info", "dedup_key": "rule:r9"}).to_string();
    assert_eq!(
        json_of(&mut c, "alarm_create", &[], &[&r9, T2]).await,
        json!({"id": "6", "created": true})
    );
}

#[tokio::test]
async fn alarm_create_refuses_bad_levels_fields_and_timestamps_with_clear_messages() {
    let (_env, mut c) = loaded().await;
    let cases: &[(&str, &str)] = &[
        ("{", "alarm_json is not valid JSON"),
        ("[]", "alarm_json must be a JSON object"),
        (r#"{"level":"Info"}"#, r#""title" must be a non-empty string, got nothing"#),
        (r#"{"title":"","level":"Info"}"#, r#""title" must be a non-empty string, got ''"#),
        (r#"{"title":"t"}"#, r#""level" must be one of Info, Warning, Major, Critical, got nothing"#),
        (
            r#"{"title":"t","level":"warning"}"#,
            r#""level" must be one of Info, Warning, Major, Critical, got 'warning'"#,
        ),
        (r#"{"title":"t","level":"Info","description":5}"#, r#""description" must be a string"#),
        (r#"{"title":"t","level":"Info","source":true}"#, r#""source" must be a string"#),
        (
            r#"{"title":"t","level":"Info","metadata":[1]}"#,
            r#""metadata" must be an object, got an array"#,
        ),
        (
            r#"{"title":"t","level":"Info","status":"Resolved"}"#,
            "alarm_json has an unknown field 'status' (fields: title, description, level, source, metadata, dedup_key)",
        ),
        (r#"{"title":"t","level":"Info","dedup_key":"a b"}"#, "invalid dedup_key 'a b'"),
    ];
    for (json, want) in cases {
        assert_refused(&mut c, "alarm_create", &[], &[json, T0], want).await;
    }
    assert_refused(
        &mut c,
        "alarm_create",
        &[],
        &[r#"{"title":"t","level":"Info"}"#, ""],
        "created_at must be a non-empty string, got ''",
    )
    .await;
    assert_eq!(
        fcall_ro::<String>(&mut c, "alarm_list", &[], &[]).await,
        "[]",
        "nothing was created by the refused calls"
    );
    assert_eq!(
        create_alarm(&mut c, "first", "Info", T0).await,
        "1",
        "no id was used up"
    );
}

#[tokio::test]
async fn cjson_keeps_14_significant_digits_so_timestamps_travel_as_strings() {
    let (_env, mut c) = loaded().await;
    // Alarm metadata is decoded and encoded again by cjson: long numbers are rounded.
    let req = json!({"title": "t", "level": "Info", "metadata": {
        "ns_number": 1762164000123456789_i64, "ns_string": "1762164000123456789", "x": 85.5}})
    .to_string();
    let id = json_of(&mut c, "alarm_create", &[], &[&req, "1762164000123456789"]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alarm = json_of(&mut c, "alarm_get", &[&id], &[]).await;
    assert_eq!(alarm["metadata"]["ns_string"], "1762164000123456789");
    assert_eq!(alarm["created_at"], "1762164000123456789");
    assert_eq!(alarm["metadata"]["x"], 85.5);
    let rounded = alarm["metadata"]["ns_number"].as_f64().unwrap();
    assert_eq!(rounded, 1.7621640001235e18, "14 significant digits");
    // Model, rule and execution documents are stored as given, so nothing is rounded there.
    let _: String = fcall(&mut c, "rule_upsert", &["r1"], &[&threshold_rule("r1")]).await;
    let ex = r#"{"triggered":true,"executed_at":"t","values":{"ns":1762164000123456789}}"#;
    let _: i64 = fcall(&mut c, "rule_record_execution", &["r1"], &[ex]).await;
    assert_eq!(
        fcall_ro::<String>(&mut c, "rule_get_execution", &["r1"], &[]).await,
        ex
    );
}

// ---------------------------------------------------------------------------------------------
// voltage_rule
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rule_upsert_then_rule_get_and_rule_list_return_the_rule_json() {
    let (_env, mut c) = loaded().await;
    let rule = threshold_rule("temp_high");
    let r = json_of(&mut c, "rule_upsert", &["temp_high"], &[&rule, "create"]).await;
    assert_eq!(r, json!({"id": "temp_high", "created": true}));
    assert_eq!(
        fcall_ro::<String>(&mut c, "rule_get", &["temp_high"], &[]).await,
        rule
    );
    let without_id = r#"{"name":"b","condition":{"expression":"comsrv:1001:S:2 == 1"}}"#;
    let r = json_of(&mut c, "rule_upsert", &["a_rule"], &[without_id]).await;
    assert_eq!(r["created"], true);
    let got = json_of(&mut c, "rule_get", &["a_rule"], &[]).await;
    assert_eq!(got["id"], "a_rule");
    assert_eq!(got["condition"]["expression"], "comsrv:1001:S:2 == 1");

    let list = json_of(&mut c, "rule_list", &[], &[]).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a_rule", "temp_high"]);

    let disabled = threshold_rule("temp_high").replace("\"enabled\":true", "\"enabled\":false");
    let r = json_of(
        &mut c,
        "rule_upsert",
        &["temp_high"],
        &[&disabled, "update"],
    )
    .await;
    assert_eq!(r["created"], false);
    assert_eq!(
        json_of(&mut c, "rule_get", &["temp_high"], &[]).await["enabled"],
        false
    );
    assert_refused(
        &mut c,
        "rule_upsert",
        &["temp_high"],
        &[&rule, "create"],
        "rule 'temp_high' already exists",
    )
    .await;
    assert_refused(
        &mut c,
        "rule_upsert",
        &["nope"],
        &[without_id, "update"],
        "rule 'nope' not found",
    )
    .await;
    assert_refused(&mut c, "rule_get", &["nope"], &[], "rule 'nope' not found").await;
}

#[tokio::test]
async fn rule_record_execution_makes_rule_get_execution_return_the_latest_tc_rulesrv_001() {
    let (_env, mut c) = loaded().await;
    let _: String = fcall(
        &mut c,
        "rule_upsert",
        &["rule_001"],
        &[&threshold_rule("rule_001")],
    )
    .await;
    let none: Option<String> = fcall_ro(&mut c, "rule_get_execution", &["rule_001"], &[]).await;
    assert_eq!(none, None, "nil before the first execution");
    assert_eq!(
        fcall_ro::<String>(&mut c, "rule_list_executions", &["rule_001"], &[]).await,
        "[]"
    );

    let n: i64 = fcall(
        &mut c,
        "rule_record_execution",
        &["rule_001"],
        &[&execution(1)],
    )
    .await;
    assert_eq!(n, 1);
    let n: i64 = fcall(
        &mut c,
        "rule_record_execution",
        &["rule_001"],
        &[&execution(2)],
    )
    .await;
    assert_eq!(n, 2);

    let text: String = fcall_ro(&mut c, "rule_get_execution", &["rule_001"], &[]).await;
    assert_eq!(text, execution(2), "stored as given");
    let ex: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(ex["triggered"], true);
    assert!(ex["executed_at"].is_string());
    assert_eq!(ex["values"]["comsrv:1001:T:1"], 85.75);
    assert_eq!(ex["actions"][0]["action_type"], "create_alarm");
    assert_refused(
        &mut c,
        "rule_get_execution",
        &["nope"],
        &[],
        "rule 'nope' not found",
    )
    .await;
}

#[tokio::test]
async fn rule_executions_are_capped_and_listed_newest_first() {
    let (_env, mut c) = loaded().await;
    let _: String = fcall(&mut c, "rule_upsert", &["r1"], &[&threshold_rule("r1")]).await;
    let mut last = 0;
    for i in 1..=105 {
        last = fcall::<i64>(&mut c, "rule_record_execution", &["r1"], &[&execution(i)]).await;
    }
    assert_eq!(last, 100, "100 kept by default");
    let key = "rulesrv:rule:{r1}:executions";
    let len: i64 = redis::cmd("LLEN")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(len, 100);

    let all = json_of(&mut c, "rule_list_executions", &["r1"], &[]).await;
    let ns: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actions"][0]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns.len(), 100);
    assert_eq!(ns[0], 105, "newest first");
    assert_eq!(ns[99], 6, "the oldest five were dropped");
    let three = json_of(&mut c, "rule_list_executions", &["r1"], &["3"]).await;
    assert_eq!(three.as_array().unwrap().len(), 3);
    assert_eq!(three[2]["actions"][0]["n"], 103);

    // A smaller cap trims at once.
    let n: i64 = fcall(
        &mut c,
        "rule_record_execution",
        &["r1"],
        &[&execution(106), "3"],
    )
    .await;
    assert_eq!(n, 3);
    let latest = json_of(&mut c, "rule_get_execution", &["r1"], &[]).await;
    assert_eq!(latest["actions"][0]["n"], 106);
}

#[tokio::test]
async fn rule_delete_removes_the_rule_and_its_executions() {
    let (_env, mut c) = loaded().await;
    let _: String = fcall(&mut c, "rule_upsert", &["r1"], &[&threshold_rule("r1")]).await;
    let _: String = fcall(&mut c, "rule_upsert", &["r2"], &[&threshold_rule("r2")]).await;
    let _: i64 = fcall(&mut c, "rule_record_execution", &["r1"], &[&execution(1)]).await;
    let ok: String = fcall(&mut c, "rule_delete", &["r1"], &[]).await;
    assert_eq!(ok, "OK");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("rulesrv:rule:{r1}")
        .arg("rulesrv:rule:{r1}:executions")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    assert_refused(&mut c, "rule_get", &["r1"], &[], "rule 'r1' not found").await;
    assert_refused(&mut c, "rule_delete", &["r1"], &[], "rule 'r1' not found").await;
    assert_refused(
        &mut c,
        "rule_list_executions",
        &["r1"],
        &[],
        "rule 'r1' not found",
    )
    .await;
    assert_refused(
        &mut c,
        "rule_record_execution",
        &["r1"],
        &[&execution(2)],
        "rule 'r1' not found",
    )
    .await;
    let list = json_of(&mut c, "rule_list", &[], &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "r2");
}

#[tokio::test]
async fn rule_functions_refuse_bad_rules_and_executions_with_clear_messages() {
    let (_env, mut c) = loaded().await;
    let rules: &[(&str, &str)] = &[
        ("not json", "rule_json must be a JSON object"),
        (r#"{"condition":"#, "rule_json is not valid JSON"),
        (
            r#"{"id":"r2","condition":{"expression":"1"}}"#,
            r#"rule_json has "id" 'r2' but the key is 'r1'"#,
        ),
        (
            r#"{"name":"x"}"#,
            r#""condition" must be an object with an "expression", got nothing"#,
        ),
        (
            r#"{"condition":"a > 1"}"#,
            r#""condition" must be an object with an "expression", got 'a > 1'"#,
        ),
        (
            r#"{"condition":{}}"#,
            r#""condition.expression" must be a non-empty string, got nothing"#,
        ),
        (
            r#"{"condition":{"expression":""}}"#,
            r#""condition.expression" must be a non-empty string"#,
        ),
        (
            r#"{"condition":{"expression":"a"},"actions":{"x":1}}"#,
            r#""actions" must be an array, got an object"#,
        ),
        (
            r#"{"condition":{"expression":"a"},"actions":[1]}"#,
            "actions[0] must be an object, got number 1",
        ),
        (
            r#"{"condition":{"expression":"a"},"actions":[{}]}"#,
            "actions[0].action_type must be a non-empty string",
        ),
        (
            r#"{"condition":{"expression":"a"},"enabled":"yes"}"#,
            r#""enabled" must be true or false, got 'yes'"#,
        ),
    ];
    for (json, want) in rules {
        assert_refused(&mut c, "rule_upsert", &["r1"], &[json], want).await;
    }
    assert_refused(
        &mut c,
        "rule_upsert",
        &["r1"],
        &[&threshold_rule("r1"), "insert"],
        "mode must be upsert, create or update, got 'insert'",
    )
    .await;
    assert_eq!(
        fcall_ro::<String>(&mut c, "rule_list", &[], &[]).await,
        "[]"
    );

    let _: String = fcall(&mut c, "rule_upsert", &["r1"], &[&threshold_rule("r1")]).await;
    let executions: &[(&str, &str)] = &[
        ("{", "execution_json is not valid JSON"),
        (
            r#"{"executed_at":"t"}"#,
            r#""triggered" must be true or false, got nothing"#,
        ),
        (
            r#"{"triggered":"yes","executed_at":"t"}"#,
            r#""triggered" must be true or false, got 'yes'"#,
        ),
        (
            r#"{"triggered":true}"#,
            r#""executed_at" (a timestamp string) must be a non-empty string, got nothing"#,
        ),
        (
            r#"{"triggered":true,"executed_at":1762164000123}"#,
            r#""executed_at" (a timestamp string) must be a non-empty string, got number"#,
        ),
        (
            r#"{"triggered":true,"executed_at":"t","values":[1]}"#,
            r#""values" must be an object, got an array"#,
        ),
        (
            r#"{"triggered":true,"executed_at":"t","actions":{"a":1}}"#,
            r#""actions" must be an array, got an object"#,
        ),
    ];
    for (json, want) in executions {
        assert_refused(&mut c, "rule_record_execution", &["r1"], &[json], want).await;
    }
    for keep in ["0", "10001", "-1", "x"] {
        assert_refused(
            &mut c,
            "rule_record_execution",
            &["r1"],
            &[&execution(1), keep],
            "keep must be an integer from 1 to 10000",
        )
        .await;
    }
    assert_refused(
        &mut c,
        "rule_list_executions",
        &["r1"],
        &["0"],
        "limit must be an integer from 1 to 10000, got '0'",
    )
    .await;
    let none: Option<String> = fcall_ro(&mut c, "rule_get_execution", &["r1"], &[]).await;
    assert_eq!(none, None, "nothing was recorded by the refused calls");
}

// ---------------------------------------------------------------------------------------------
// A micro-measurement (TC-REDIS-001's benchmark belongs to the services' work)
// ---------------------------------------------------------------------------------------------

/// Prints (with `--nocapture`) what an FCALL costs against a raw HSET, both pipelined.
#[tokio::test]
async fn fcall_cost_against_a_pipelined_hset_is_measured() {
    let (_env, mut c) = loaded().await;
    const N: usize = 2000;
    let doc = r#"{"name":"Performance Test Model","template_id":"test_template","parameters":{"capacity":1000,"efficiency":0.95}}"#;
    let ids: Vec<String> = (0..N).map(|i| format!("perf_model_{i:04}")).collect();

    let time = |p: redis::Pipeline| {
        let mut c = c.clone();
        async move {
            let start = Instant::now();
            let v: Vec<Value> = p.query_async(&mut c).await.expect("pipeline");
            assert_eq!(v.len(), N);
            start.elapsed()
        }
    };
    let mut p = redis::pipe();
    for id in &ids {
        p.cmd("HSET").arg("bench:raw").arg(id).arg(doc);
    }
    let hset = time(p).await;
    let mut p = redis::pipe();
    for id in &ids {
        p.cmd("FCALL").arg("model_upsert").arg(1).arg(id).arg(doc);
    }
    let upsert = time(p).await;
    let mut p = redis::pipe();
    for id in &ids {
        p.cmd("FCALL_RO").arg("model_get").arg(1).arg(id);
    }
    let get = time(p).await;

    let list = json_of(&mut c, "model_list", &[], &[]).await;
    assert_eq!(list.as_array().unwrap().len(), N, "every upsert succeeded");
    let per = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "{N} pipelined: HSET {:.1} us/op, FCALL model_upsert {:.1} us/op ({:.1}x), \
         FCALL_RO model_get {:.1} us/op ({:.1}x)",
        per(hset),
        per(upsert),
        upsert.as_secs_f64() / hset.as_secs_f64(),
        per(get),
        get.as_secs_f64() / hset.as_secs_f64(),
    );
}
