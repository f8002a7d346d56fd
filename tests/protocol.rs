//! Protocol testing (seed sections 3.1 and 3.2): Modbus TCP against the project's simulator and
//! against pymodbus (a peer the firmware did not write), mbpoll (a master the project did not
//! write) against the simulator, and the virtual protocol.

use std::collections::HashSet;
use std::time::Duration;
use voltage_sim::{Bank, SimServer};
use voltage_tests::peers::PymodbusServer;
use voltage_tests::*;

const T: Duration = Duration::from_secs(5);

async fn sim() -> SimServer {
    SimServer::bind("127.0.0.1:0".parse().unwrap(), Bank::new())
        .await
        .expect("sim")
}

/// Writes a single-channel Modbus TCP config with the given tables and mappings.
fn modbus_channel(
    env: &TestEnv,
    id: u32,
    addr: std::net::SocketAddr,
    extra: &str,
    telemetry: &[(&str, &str)],
    signals: &[(&str, &str)],
) {
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(id, addr, extra)),
    );
    let mut t = String::from("point_id,signal_name,scale,offset\n");
    let mut tm = String::from(MODBUS_MAPPING_HEADER);
    for (row, map) in telemetry {
        t += &format!("{row}\n");
        tm += &format!("{map}\n");
    }
    env.write(&format!("comsrv/{id}/telemetry.csv"), &t);
    env.write(&format!("comsrv/{id}/mapping/telemetry_mapping.csv"), &tm);
    if !signals.is_empty() {
        let mut s = String::from("point_id,signal_name,reverse\n");
        let mut sm = String::from(MODBUS_MAPPING_HEADER);
        for (row, map) in signals {
            s += &format!("{row}\n");
            sm += &format!("{map}\n");
        }
        env.write(&format!("comsrv/{id}/signal.csv"), &s);
        env.write(&format!("comsrv/{id}/mapping/signal_mapping.csv"), &sm);
    }
}

/// TC-MODBUS-001: holding, input, coil and discrete input points over several poll cycles.
#[tokio::test]
async fn tc_modbus_001_modbus_tcp_robustness() {
    let env = TestEnv::new().await;
    let s = sim().await;
    let b = s.bank();
    b.set_holding(1, 1, 1234);
    b.set_holding(1, 2, 5678);
    b.set_coil(1, 1, true);
    b.set_discrete(1, 1, false);
    b.set_input(1, 1, 9999);
    modbus_channel(
        &env,
        1001,
        s.local_addr(),
        "",
        &[
            ("1,Temperature,1,0", "1,1,3,1,u16,,"),
            ("2,Pressure,1,0", "2,1,3,2,u16,,"),
            ("3,Flow Rate,1,0", "3,1,4,1,u16,,"),
        ],
        &[
            ("1,Pump Status,false", "1,1,1,1,bool,,"),
            ("2,Door Open,false", "2,1,2,1,bool,,"),
        ],
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1001:T", "3", "9999.000000", T).await;
    // Several cycles later everything is still right and nothing failed.
    let reads = env.hget_i64("comsrv:1001:stats", "total_reads").await;
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:1001:stats", "total_reads"),
            |n| *n >= reads + 12
        )
        .await
    );
    assert_eq!(env.hget_f64("comsrv:1001:T", "1").await, Some(1234.0));
    assert_eq!(env.hget_f64("comsrv:1001:T", "2").await, Some(5678.0));
    assert_eq!(env.hget_f64("comsrv:1001:T", "3").await, Some(9999.0));
    assert_eq!(env.hget("comsrv:1001:S", "1").await.as_deref(), Some("1"));
    assert_eq!(env.hget("comsrv:1001:S", "2").await.as_deref(), Some("0"));
    assert_eq!(env.hget_i64("comsrv:1001:stats", "total_errors").await, 0);
    // Holding registers 1-2 were merged into one request: 4 requests per poll, not 5.
    let plan = comsrv::read_plan(&voltage_core::config::load_dir(env.path()).unwrap().channels[0]);
    assert_eq!(plan.len(), 4);
    comsrv.stop().await;
}

/// TC-MODBUS-002: the device goes away and comes back with a new value; errors are counted.
#[tokio::test]
async fn tc_modbus_002_modbus_error_handling() {
    let env = TestEnv::new().await;
    let s = sim().await;
    let addr = s.local_addr();
    s.bank().set_holding(1, 1, 1000);
    modbus_channel(&env, 1001, addr, "", &[("1,V,1,0", "1,1,3,1,u16,,")], &[]);
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1001:T", "1", "1000.000000", T).await;

    s.stop().await;
    env.wait_value("comsrv:1001:status", "connected", "0", T)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.hget_f64("comsrv:1001:T", "1").await,
        Some(1000.0),
        "last good value stays"
    );
    assert_eq!(
        env.hget("comsrv:1001:T:quality", "1").await.as_deref(),
        Some("stale"),
        "and is marked stale"
    );

    let bank = Bank::new();
    bank.set_holding(1, 1, 2000);
    let _s2 = SimServer::bind(addr, bank)
        .await
        .expect("rebind the same port");
    env.wait_value("comsrv:1001:T", "1", "2000.000000", Duration::from_secs(10))
        .await;
    assert_eq!(env.hlen("comsrv:1001:T:quality").await, 0, "good again");
    assert!(env.hget_i64("comsrv:1001:status", "error_count").await > 0);
    assert!(env.hget_i64("comsrv:1001:stats", "connection_errors").await > 0);
    assert!(env.hget_i64("comsrv:1001:stats", "reconnect_count").await > 0);
    env.wait_value("comsrv:1001:status", "connected", "1", T)
        .await;
    comsrv.stop().await;
}

/// TC-VIRTUAL-001: sine within offset ± amplitude, random walk within bounds, step through
/// all of its values.
#[tokio::test]
async fn tc_virtual_001_virtual_protocol_patterns() {
    let env = TestEnv::new().await;
    env.write("comsrv/comsrv.yaml", "channels:\n  - {id: 1002, name: virt, protocol: virtual, parameters: {poll_interval_ms: 50}}\n");
    env.write(
        "comsrv/1002/telemetry.csv",
        "point_id,signal_name\n1,sine\n2,walk\n3,step\n",
    );
    env.write(
        "comsrv/1002/mapping/telemetry_mapping.csv",
        "point_id,pattern,params\n1,sine,amplitude=100;frequency=0.1;phase=0;offset=50\n\
         2,random_walk,initial=0;step=1;min=-50;max=50\n3,step,values=0|100|50|75;duration_ms=500\n",
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:1002:status", "connected", "1", T)
        .await;
    let mut samples = Vec::new();
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = env.hget_f64("comsrv:1002:T", "1").await.unwrap();
        let r = env.hget_f64("comsrv:1002:T", "2").await.unwrap();
        let st = env.hget_f64("comsrv:1002:T", "3").await.unwrap();
        samples.push((s, r, st));
    }
    assert!(
        samples.iter().all(|(s, _, _)| (-50.0..=150.0).contains(s)),
        "{samples:?}"
    );
    assert!(
        samples.iter().all(|(_, r, _)| (-50.0..=50.0).contains(r)),
        "{samples:?}"
    );
    let steps: HashSet<i32> = samples.iter().map(|(_, _, s)| *s as i32).collect();
    assert_eq!(steps, HashSet::from([0, 100, 50, 75]), "{samples:?}");
    comsrv.stop().await;
}

/// Big-endian words of a value given as big-endian bytes, rearranged for `order`. Written
/// here from the definition, independent of the firmware's codec.
fn words(be: &[u8], order: &str) -> Vec<u16> {
    let mut w: Vec<u16> = be
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if order == "CDAB" || order == "DCBA" {
        w.reverse();
    }
    if order == "BADC" || order == "DCBA" {
        w.iter_mut().for_each(|x| *x = x.swap_bytes());
    }
    w
}

/// Every data type in every byte order, plus bits and scaling, read from a pymodbus slave.
#[tokio::test]
async fn pymodbus_peer_every_data_type_in_every_byte_order() {
    let env = TestEnv::new().await;
    let values: Vec<(&str, Vec<u8>, &str)> = vec![
        ("u16", 54321u16.to_be_bytes().to_vec(), "54321.000000"),
        ("i16", (-12345i16).to_be_bytes().to_vec(), "-12345.000000"),
        (
            "u32",
            3_000_000_000u32.to_be_bytes().to_vec(),
            "3000000000.000000",
        ),
        (
            "i32",
            (-2_000_000_000i32).to_be_bytes().to_vec(),
            "-2000000000.000000",
        ),
        (
            "u64",
            9_007_199_254_740_000u64.to_be_bytes().to_vec(),
            "9007199254740000.000000",
        ),
        (
            "i64",
            (-9_007_199_254_740_000i64).to_be_bytes().to_vec(),
            "-9007199254740000.000000",
        ),
        ("f32", (-1234.5f32).to_be_bytes().to_vec(), "-1234.500000"),
        (
            "float64",
            12345.678901234f64.to_be_bytes().to_vec(),
            "12345.678901",
        ),
    ];
    let mut regs: Vec<u16> = Vec::new();
    let mut telemetry = Vec::new();
    let mut expected = Vec::new();
    let mut id = 0;
    for order in ["ABCD", "DCBA", "BADC", "CDAB"] {
        for (ty, be, want) in &values {
            id += 1;
            telemetry.push((
                format!("{id},{ty} {order},1,0"),
                format!("{id},1,3,{},{ty},{order},", regs.len()),
            ));
            regs.extend(words(be, order));
            expected.push((id, *want, format!("{ty} {order}")));
        }
    }
    // Scaling and offset: raw 655 * 0.1 - 40 = 25.5.
    id += 1;
    telemetry.push((format!("{id},temp,0.1,-40"), format!("{id},1,4,0,u16,,")));
    expected.push((id, "25.500000", "scaled input register".into()));
    let bit_reg = regs.len();
    regs.push(0b1000);
    let spec = serde_json::json!({"units": {"1": {
        "hr": {"0": regs}, "ir": {"0": [655]}, "co": {"0": [1, 0, 1]}, "di": {"0": [0, 1]}
    }}});
    let peer = PymodbusServer::start(&spec).await;
    let t: Vec<(&str, &str)> = telemetry
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let bit3 = format!("5,1,3,{bit_reg},bool,,3");
    let bit2 = format!("6,1,3,{bit_reg},bool,,2");
    modbus_channel(
        &env,
        7,
        peer.addr(),
        "",
        &t,
        &[
            ("1,coil0,false", "1,1,1,0,bool,,"),
            ("2,coil1,false", "2,1,1,1,bool,,"),
            ("3,coil2 reversed,true", "3,1,1,2,bool,,"),
            ("4,di1,false", "4,1,2,1,bool,,"),
            ("5,bit3", bit3.as_str()),
            ("6,bit2", bit2.as_str()),
        ],
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:7:S", "6", "0", Duration::from_secs(10))
        .await;
    for (id, want, what) in &expected {
        let got = env.hget("comsrv:7:T", &id.to_string()).await;
        assert_eq!(got.as_deref(), Some(*want), "point {id} ({what})");
    }
    for (id, want) in [(1, "1"), (2, "0"), (3, "0"), (4, "1"), (5, "1"), (6, "0")] {
        assert_eq!(
            env.hget("comsrv:7:S", &id.to_string()).await.as_deref(),
            Some(want),
            "signal {id}"
        );
    }
    assert_eq!(env.hget_i64("comsrv:7:stats", "total_errors").await, 0);
    comsrv.stop().await;
}

/// A slave (pymodbus) whose register map has a hole: the merged read gets exception 02, is split,
/// the split is kept, and every existing register is read.
#[tokio::test]
async fn pymodbus_peer_exception_02_on_part_of_a_block_splits_the_read() {
    let env = TestEnv::new().await;
    let spec = serde_json::json!({"sparse": true, "units": {"1": {"hr": {"0": [10, 11, 12], "5": [15, 16]}}}});
    let peer = PymodbusServer::start(&spec).await;
    let pts: Vec<(String, String)> = [0, 1, 2, 5, 6]
        .iter()
        .map(|a| (format!("{a},p{a},1,0"), format!("{a},1,3,{a},u16,,")))
        .collect();
    let t: Vec<(&str, &str)> = pts.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    modbus_channel(&env, 8, peer.addr(), "", &t, &[]);
    let comsrv = env.start_comsrv().await;
    for (a, v) in [(0, "10"), (1, "11"), (2, "12"), (5, "15"), (6, "16")] {
        env.wait_value(
            "comsrv:8:T",
            &a.to_string(),
            &format!("{v}.000000"),
            Duration::from_secs(10),
        )
        .await;
    }
    let ex = env.hget_i64("comsrv:8:stats", "exceptions").await;
    assert!(ex > 0, "the merged read must have been refused once");
    // The split is remembered: no further exceptions while polling goes on.
    let reads = env.hget_i64("comsrv:8:stats", "total_reads").await;
    assert!(
        wait_until(
            T,
            || env.hget_i64("comsrv:8:stats", "total_reads"),
            |n| *n >= reads + 10
        )
        .await
    );
    assert_eq!(env.hget_i64("comsrv:8:stats", "exceptions").await, ex);
    comsrv.stop().await;
}

/// One unreadable register (exception 02 injected) does not blank its neighbours.
#[tokio::test]
async fn one_unreadable_register_does_not_blank_its_neighbours() {
    let env = TestEnv::new().await;
    let s = sim().await;
    s.bank()
        .set_holdings(1, 0, &[100, 101, 102, 103, 104, 105, 106]);
    s.bank().add_exception(1, 3, 3, 1, 2);
    let pts: Vec<(String, String)> = (0..7)
        .map(|a| (format!("{a},p{a},1,0"), format!("{a},1,3,{a},u16,,")))
        .collect();
    let t: Vec<(&str, &str)> = pts.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    modbus_channel(&env, 9, s.local_addr(), "", &t, &[]);
    let comsrv = env.start_comsrv().await;
    for a in [0, 1, 2, 4, 5, 6] {
        env.wait_value(
            "comsrv:9:T",
            &a.to_string(),
            &format!("{}.000000", 100 + a),
            T,
        )
        .await;
    }
    assert_eq!(
        env.hget("comsrv:9:T", "3").await,
        None,
        "the refused register has no value"
    );
    let err = env
        .hget("comsrv:9:status", "last_error")
        .await
        .unwrap_or_default();
    assert!(err.contains("slave 1 FC03 3..=3: exception 02"), "{err}");
    comsrv.stop().await;
}

/// A slave that never answers: its requests time out, it is backed off, and the other slave on
/// the same connection keeps its poll rate.
#[tokio::test]
async fn a_slave_that_never_answers_times_out_and_does_not_stall_the_others() {
    let env = TestEnv::new().await;
    let s = sim().await;
    s.bank().set_holding(1, 0, 1);
    s.bank().set_holding(2, 0, 2);
    s.bank().set_silent(2, true);
    modbus_channel(
        &env,
        10,
        s.local_addr(),
        "      retries: 0\n      slave_backoff_after: 2\n      slave_backoff_max_ms: 5000\n",
        &[
            ("1,alive,1,0", "1,1,3,0,u16,,"),
            ("2,dead,1,0", "2,2,3,0,u16,,"),
        ],
        &[],
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:10:T", "1", "1.000000", T).await;
    env.wait_value("comsrv:10:status", "offline_slaves", "2", T)
        .await;
    assert!(env.hget_i64("comsrv:10:stats", "timeouts").await > 0);
    // Slave 1 keeps being read at the poll rate (100 ms) while slave 2 is dead.
    for v in 2..6u16 {
        s.bank().set_holding(1, 0, v);
        env.wait_value(
            "comsrv:10:T",
            "1",
            &format!("{v}.000000"),
            Duration::from_millis(1500) * slow(),
        )
        .await;
    }
    assert_eq!(env.hget("comsrv:10:T", "2").await, None);
    // Slave 2 comes back: it is probed after its backoff and read again.
    s.bank().set_silent(2, false);
    env.wait_value("comsrv:10:T", "2", "2.000000", Duration::from_secs(10))
        .await;
    env.wait_value("comsrv:10:status", "offline_slaves", "", T)
        .await;
    comsrv.stop().await;
}

/// mbpoll (a Modbus master the project did not write) reads the simulator correctly.
#[tokio::test]
async fn mbpoll_master_reads_the_simulator() {
    let s = sim().await;
    s.bank().set_holdings(1, 0, &[1234, 5678, 42]);
    let port = s.local_addr().port().to_string();
    let out = tokio::process::Command::new("mbpoll")
        .args([
            "-m",
            "tcp",
            "-p",
            &port,
            "-a",
            "1",
            "-r",
            "1",
            "-c",
            "3",
            "-t",
            "4",
            "-1",
            "127.0.0.1",
        ])
        .output()
        .await
        .expect("mbpoll runs (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, v) in [1234, 5678, 42].iter().enumerate() {
        assert!(text.contains(&format!("[{}]: \t{v}", i + 1)), "{text}");
    }
}

/// Control and adjustment writes over Modbus TCP, read back from the device.
#[tokio::test]
async fn tcp_adjustment_and_control_writes_are_verified_by_read_back() {
    let env = TestEnv::new().await;
    let s = sim().await;
    env.write(
        "comsrv/comsrv.yaml",
        &format!("channels:\n{}", tcp_channel(11, s.local_addr(), "")),
    );
    env.write("comsrv/11/telemetry.csv", "point_id,signal_name\n1,P\n");
    env.write(
        "comsrv/11/mapping/telemetry_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,3,0,u16,,\n"),
    );
    env.write(
        "comsrv/11/adjustment.csv",
        "point_id,signal_name,scale,offset,min_value,max_value\n1,Q setpoint,0.01,0,-300,300\n",
    );
    env.write(
        "comsrv/11/mapping/adjustment_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,16,40,i32,CDAB,\n"),
    );
    env.write(
        "comsrv/11/control.csv",
        "point_id,signal_name,reverse\n1,Contactor,true\n",
    );
    env.write(
        "comsrv/11/mapping/control_mapping.csv",
        &format!("{MODBUS_MAPPING_HEADER}1,1,5,7,bool,,\n"),
    );
    let comsrv = env.start_comsrv().await;
    env.wait_value("comsrv:11:status", "connected", "1", T)
        .await;
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/11/adjustment",
        r#"{"point_id":1,"value":-123.45}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // -12345 as i32 = 0xFFFFCFC7, CDAB: low word first.
    assert_eq!(
        (s.bank().holding(1, 40), s.bank().holding(1, 41)),
        (0xCFC7, 0xFFFF)
    );
    assert_eq!(
        env.hget("comsrv:11:A", "1").await.as_deref(),
        Some("-123.450000")
    );
    // reverse: "close" (1) writes the coil off.
    s.bank().set_coil(1, 7, true);
    let (code, body) = http_post(
        comsrv.local_addr(),
        "/channels/11/control",
        r#"{"point_id":1,"value":1}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(!s.bank().coil(1, 7));
    assert_eq!(env.hget("comsrv:11:C", "1").await.as_deref(), Some("1"));
    comsrv.stop().await;
}
