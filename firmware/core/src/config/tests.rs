use super::*;
use std::fs;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn tcp_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 1001\n    name: pcs\n    protocol: modbus_tcp\n    parameters:\n      host: 127.0.0.1\n      port: 5020\n",
    );
    write(
        d.path(),
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale\n1,P,0.1\n",
    );
    write(
        d.path(),
        "comsrv/1001/mapping/telemetry_mapping.csv",
        "point_id,slave_id,function_code,register_address,data_type\n1,1,3,0,u16\n",
    );
    d
}

#[test]
fn a_minimal_directory_loads_with_defaults() {
    let d = tcp_dir();
    let c = load_dir(d.path()).unwrap();
    assert_eq!(c.voltage.redis_url(), "redis://127.0.0.1:6379");
    assert_eq!(c.voltage.services.comsrv.port, 6000);
    assert_eq!(c.channels.len(), 1);
    assert_eq!(c.channels[0].points.len(), 1);
    assert_eq!(c.channels[0].config.tcp_address(), "127.0.0.1:5020");
    assert!(c.file_watch);
}

#[test]
fn an_unknown_yaml_key_names_file_line_and_column() {
    let d = tcp_dir();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 1001\n    name: pcs\n    protocol: modbus_tcp\n    parameters:\n      host: 127.0.0.1\n      pollinterval: 5\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("comsrv.yaml:7:7: channels[0].parameters: unknown field `pollinterval`"),
        "{e}"
    );
}

#[test]
fn a_parameter_of_another_protocol_is_reported_at_its_channel() {
    let d = tcp_dir();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 7\n    name: v\n    protocol: virtual\n  - id: 1001\n    name: pcs\n    protocol: modbus_tcp\n    parameters: {host: a, baud_rate: 9600}\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains(
            "comsrv.yaml:5:1: channel 1001 (modbus_tcp): parameters.baud_rate does not apply"
        ),
        "{e}"
    );
}

#[test]
fn an_unknown_protocol_and_a_duplicate_channel_id_are_errors() {
    let d = tcp_dir();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 1\n    name: a\n    protocol: bacnet\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("comsrv.yaml:4:15") && e.contains("unknown variant `bacnet`"),
        "{e}"
    );
    write(d.path(), "comsrv/comsrv.yaml", "channels:\n  - {id: 1, name: a, protocol: virtual}\n  - {id: 1, name: b, protocol: virtual}\n");
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(e.contains("channel id 1 is used twice"), "{e}");
}

#[test]
fn errors_from_several_files_are_all_reported() {
    let d = tcp_dir();
    write(d.path(), "voltage.yaml", "redis: {uri: x}\n");
    write(
        d.path(),
        "comsrv/1001/telemetry.csv",
        "point_id,signal_name,scale\n1,P,abc\n",
    );
    let e = load_dir(d.path()).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(
        e.0[0]
            .to_string()
            .contains("voltage.yaml:1:9: redis: unknown field `uri`"),
        "{e}"
    );
    assert!(
        e.0[1].to_string().contains("telemetry.csv:2:5: scale"),
        "{e}"
    );
}

#[test]
fn planner_limits_combine_channel_and_slave_overrides() {
    let p: ChannelParams = parse_yaml(
        "x",
        "host: a\nmax_gap: 2\nno_cross: [50]\nslaves:\n  3: {max_registers_per_request: 10, no_cross: [20], timeout_ms: 2500, retries: 0}\n",
    )
    .unwrap();
    assert_eq!(
        (p.timeout_for(3).as_millis(), p.timeout_for(1).as_millis()),
        (2500, 1000)
    );
    assert_eq!((p.retries_for(3), p.retries_for(1)), (0, 1));
    let l = p.plan_limits(3);
    assert_eq!(
        (l.max_registers, l.max_gap, l.no_cross.clone()),
        (10, 2, vec![20, 50])
    );
    assert_eq!(p.plan_limits(1).max_registers, 125);
}

#[test]
fn out_of_range_limits_are_errors() {
    let d = tcp_dir();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 1001\n    name: pcs\n    protocol: modbus_tcp\n    parameters: {host: a, max_registers_per_request: 200}\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("max_registers_per_request 200 is outside 1-125"),
        "{e}"
    );
}

fn grpc_dir(endpoint: &str, extra: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        &format!("channels:\n  - id: 7\n    name: meter\n    protocol: grpc\n    parameters:\n      endpoint: {endpoint}\n{extra}"),
    );
    write(
        d.path(),
        "comsrv/7/telemetry.csv",
        "point_id,signal_name,scale\n1,Energy,0.01\n2,Power,1\n",
    );
    write(
        d.path(),
        "comsrv/7/mapping/telemetry_mapping.csv",
        "point_id,address,description\n1,00000000,total active energy\n2,\"ac.power, phase A\",\n",
    );
    d
}

#[test]
fn a_grpc_channel_loads_with_plugin_addresses() {
    let d = grpc_dir(
        "http://127.0.0.1:50051",
        "      timeout_ms: 300\n      poll_interval_ms: 200\n",
    );
    let c = load_dir(d.path()).unwrap();
    let ch = &c.channels[0];
    assert_eq!(ch.config.protocol, Protocol::Grpc);
    assert_eq!(
        ch.config.plugin_endpoint(),
        Some(PluginEndpoint::Http("http://127.0.0.1:50051".into()))
    );
    let addrs: Vec<String> = ch
        .points
        .iter()
        .map(|p| match &p.source {
            Some(Source::Plugin(m)) => m.address.clone(),
            other => panic!("not a plugin mapping: {other:?}"),
        })
        .collect();
    assert_eq!(addrs, ["00000000", "ac.power, phase A"]);
}

#[test]
fn grpc_endpoints_are_checked() {
    assert_eq!(
        parse_endpoint("unix:///run/voltage/m.sock"),
        Ok(PluginEndpoint::Unix("/run/voltage/m.sock".into()))
    );
    for (bad, why) in [
        ("https://127.0.0.1:50051", "TLS"),
        ("http://127.0.0.1", "host:port"),
        ("http://127.0.0.1:0", "host:port"),
        ("http://127.0.0.1:50051/x", "no path"),
        ("unix://relative.sock", "absolute"),
        ("127.0.0.1:50051", "expected http"),
    ] {
        let e = parse_endpoint(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let d = grpc_dir("tcp://x:1", "");
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("comsrv.yaml:2:1: channel 7 (grpc): parameters.endpoint: \"tcp://x:1\""),
        "{e}"
    );
}

#[test]
fn modbus_parameters_on_a_grpc_channel_and_endpoint_elsewhere_are_errors() {
    let d = grpc_dir("http://127.0.0.1:50051", "      retries: 2\n");
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(e.contains("parameters.retries does not apply"), "{e}");
    let d = tcp_dir();
    write(
        d.path(),
        "comsrv/comsrv.yaml",
        "channels:\n  - id: 1001\n    name: pcs\n    protocol: modbus_tcp\n    parameters:\n      host: h\n      endpoint: http://h:1\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(e.contains("parameters.endpoint does not apply"), "{e}");
}

#[test]
fn a_grpc_mapping_row_without_address_or_with_modbus_columns_is_located() {
    let d = grpc_dir("http://127.0.0.1:50051", "");
    write(
        d.path(),
        "comsrv/7/mapping/telemetry_mapping.csv",
        "point_id,address\n1,\n2,x\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("telemetry_mapping.csv:2:1: address is empty for point 1"),
        "{e}"
    );
    write(
        d.path(),
        "comsrv/7/mapping/telemetry_mapping.csv",
        "point_id,slave_id,address\n1,1,x\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(e.contains("slave_id"), "{e}");
}

#[test]
fn the_default_history_log_lives_under_the_data_directory() {
    let d = tcp_dir();
    write(
        d.path(),
        "voltage.yaml",
        "schema_version: 2\ndata_dir: /data/site\n",
    );
    write(d.path(), "hissrv/hissrv.yaml", "sources: []\n");
    let c = load_dir(d.path()).unwrap();
    let h = c.hissrv.as_ref().expect("hissrv configured");
    assert!(
        Path::new(&h.wal.dir).is_relative(),
        "a default log dir outside data_dir ignores the board's data partition: {}",
        h.wal.dir
    );
    assert_eq!(c.data_dir.join(&h.wal.dir), Path::new("/data/site/wal"));
}

#[test]
fn a_history_source_is_a_channel_or_a_model() {
    let d = tcp_dir();
    write(
        d.path(),
        "hissrv/hissrv.yaml",
        "sources:\n  - {channel: 1001, interval_ms: 0}\n  - {model: pcs_1, points: [dc_voltage]}\n",
    );
    let c = load_dir(d.path()).unwrap();
    let s = &c.hissrv.as_ref().unwrap().sources;
    assert_eq!(
        (s[0].channel, s[1].model.as_deref()),
        (Some(1001), Some("pcs_1"))
    );
    write(
        d.path(),
        "hissrv/hissrv.yaml",
        "sources:\n  - {channel: 1001, model: pcs_1}\n  - {interval_ms: 0}\n  - {channel: 1001, points: [x]}\n",
    );
    let e = load_dir(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("sources[0]: give either channel or model"),
        "{e}"
    );
    assert!(
        e.contains("sources[1]: give either channel or model"),
        "{e}"
    );
    assert!(e.contains("sources[2].points names model points"), "{e}");
}
