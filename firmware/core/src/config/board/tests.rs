use super::*;

const GOOD: &str = r#"schema_version = 1
board = "edge-1"
description = "test board"

[target]
rust_target = "armv7-unknown-linux-gnueabihf"
yocto_machine = "imx6ullevk"

[ports.rs485-1]
device = "/dev/ttymxc1"
[ports.rs485-1.rs485]
enabled = true
delay_after_send_ms = 1

[ports.rs485-2]
device = "/dev/ttymxc2"
direction = "gpio"
direction_gpio = "gpiochip0:17"
[ports.rs485-2.rs485]
enabled = true

[ports.rs485-3]
device = "/dev/ttyUSB0"
direction = "auto"

[can.can-1]
interface = "can0"
bitrate = 500000

[gpio.do-1]
chip = "gpiochip1"
line = 4
direction = "output"

[defaults]
data_dir = "/data/voltage"
redis_url = "redis+unix:///run/redis/redis.sock"
"#;

fn errors(text: &str) -> String {
    check_board("b.toml", text).unwrap_err().to_string()
}

#[test]
fn a_complete_board_checks_clean() {
    let b = check_board("b.toml", GOOD).unwrap();
    assert_eq!(b.target.as_ref().unwrap().yocto_machine, "imx6ullevk");
    assert_eq!(b.ports["rs485-1"].direction(), Some(Direction::Rts));
    assert_eq!(b.ports["rs485-2"].direction(), Some(Direction::Gpio));
    assert_eq!(b.ports["rs485-3"].direction(), Some(Direction::Auto));
    assert_eq!(b.can["can-1"].bitrate, 500_000);
    assert_eq!(b.gpio["do-1"].direction, GpioDirection::Output);
    assert_eq!(b.defaults.data_dir.as_deref(), Some("/data/voltage"));
}

#[test]
fn a_board_without_schema_version_is_schema_1() {
    let b = check_board("b.toml", "board = \"x\"\n").unwrap();
    assert_eq!(b.schema_version, 1);
}

#[test]
fn a_newer_board_schema_is_refused() {
    let e = errors(&GOOD.replace("schema_version = 1", "schema_version = 2"));
    assert!(
        e.starts_with("b.toml:1:1: schema_version 2 is newer than this firmware reads (up to 1)"),
        "{e}"
    );
}

#[test]
fn an_unknown_target_is_located_at_its_table() {
    let e = errors(&GOOD.replace(
        "armv7-unknown-linux-gnueabihf",
        "armv7-unknown-linux-gnueabi",
    ));
    assert!(
        e.starts_with(
            "b.toml:5:1: target.rust_target \"armv7-unknown-linux-gnueabi\" is not a target"
        ),
        "{e}"
    );
}

#[test]
fn a_delay_beyond_the_kernel_limit_is_refused() {
    let e = errors(&GOOD.replace("delay_after_send_ms = 1", "delay_after_send_ms = 250"));
    assert!(
        e.contains("b.toml:9:1: ports.rs485-1: rs485.delay_after_send_ms = 250: the kernel accepts at most 100 ms"),
        "{e}"
    );
}

#[test]
fn a_direction_pin_that_never_changes_is_refused() {
    let e = errors(&GOOD.replace(
        "enabled = true\ndelay_after_send_ms = 1",
        "enabled = true\nrts_on_send = false\nrts_after_send = false",
    ));
    assert!(
        e.contains("ports.rs485-1: rs485.rts_on_send and rts_after_send are both false"),
        "{e}"
    );
}

#[test]
fn gpio_direction_needs_a_valid_pin() {
    let e = errors(&GOOD.replace("direction_gpio = \"gpiochip0:17\"\n", ""));
    assert!(
        e.contains("ports.rs485-2: direction = \"gpio\" needs direction_gpio"),
        "{e}"
    );
    let e = errors(&GOOD.replace("gpiochip0:17", "17"));
    assert!(
        e.contains("direction_gpio \"17\": write <gpiochip>:<line>"),
        "{e}"
    );
}

#[test]
fn auto_direction_with_kernel_mode_is_refused() {
    let e = errors(&GOOD.replace(
        "direction = \"auto\"",
        "direction = \"auto\"\n[ports.rs485-3.rs485]\nenabled = true",
    ));
    assert!(e.contains("ports.rs485-3: direction = \"auto\""), "{e}");
}

#[test]
fn rts_direction_without_kernel_mode_is_refused() {
    let e = errors(&GOOD.replace("direction = \"auto\"", "direction = \"rts\""));
    assert!(
        e.contains("ports.rs485-3: direction = \"rts\" needs kernel RS-485 mode"),
        "{e}"
    );
}

#[test]
fn two_ports_on_one_device_and_a_relative_device_are_refused() {
    let e = errors(&GOOD.replace("/dev/ttymxc2", "/dev/ttymxc1"));
    assert!(
        e.contains("ports.rs485-2: device /dev/ttymxc1 is also port rs485-1"),
        "{e}"
    );
    let e = errors(&GOOD.replace("/dev/ttyUSB0", "ttyUSB0"));
    assert!(
        e.contains("device \"ttyUSB0\" must be an absolute path"),
        "{e}"
    );
}

#[test]
fn a_can_bitrate_and_bad_defaults_are_refused() {
    let e = errors(&GOOD.replace("bitrate = 500000", "bitrate = 512000"));
    assert!(
        e.contains("can.can-1: bitrate 512000 is not a CAN bitrate"),
        "{e}"
    );
    let e = errors(&GOOD.replace("\"/data/voltage\"", "\"data\""));
    assert!(
        e.contains("defaults.data_dir \"data\" must be an absolute path"),
        "{e}"
    );
    let e = errors(&GOOD.replace("redis+unix:///run", "http:///run"));
    assert!(e.contains("defaults.redis_url"), "{e}");
}

#[test]
fn every_problem_is_listed_not_only_the_first() {
    let e = check_board(
        "b.toml",
        &GOOD
            .replace("bitrate = 500000", "bitrate = 1")
            .replace("/dev/ttyUSB0", "x"),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn a_syntax_error_is_located() {
    let e = errors("board = \"x\"\n[ports.a]\ndevice = /dev/x\n");
    assert!(e.starts_with("b.toml:3:"), "{e}");
}
