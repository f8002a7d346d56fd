//! The layer's A/B health gate and RAUC post-install handler (shell scripts in
//! `yocto-layer/meta-voltage/recipes-voltage/voltage/files/`), run with this `voltage` binary
//! against a comsrv stand-in that answers `/health` and `/channels`. `rauc` and `systemctl`
//! are recorders (the commands the gate gives them are what is checked): the boot loader's side
//! of the same contract runs in a real U-Boot in `scripts/uboot-ab`.
//!
//! The point of the trial: only the boot of a freshly installed slot may condemn it, and only
//! for channels that polled before the update. A proven slot whose meter dies is confirmed
//! good, never sent into a fall-back loop.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEALTHY: &str = r#"{"status":"healthy","service":{"name":"comsrv","port":6000}}"#;
/// Channel 1001 polls, the meter on 1003 does not answer.
const METER_DEAD: &str = r#"[{"id":1001,"name":"pcs","connected":true},{"id":1003,"name":"meter","connected":false,"last_error":"timeout"}]"#;

fn files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../yocto-layer/meta-voltage/recipes-voltage/voltage/files")
}

/// A comsrv stand-in on an ephemeral port: `health` for `GET /health`, `channels` otherwise.
fn comsrv(health: &'static str, channels: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let body = if req.starts_with("GET /health ") {
                health
            } else {
                channels
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A controller's view for the scripts: config dir, data partition, /proc/cmdline, and a PATH
/// with this `voltage` and recording `rauc`/`systemctl`.
struct Unit {
    dir: tempfile::TempDir,
}

impl Unit {
    fn new(comsrv_port: u16, booted: &str) -> Unit {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("config")).unwrap();
        std::fs::write(
            p.join("config/voltage.yaml"),
            format!("schema_version: 2\nservices:\n  comsrv: {{port: {comsrv_port}}}\n"),
        )
        .unwrap();
        std::fs::write(
            p.join("cmdline"),
            format!("console=ttyAMA0 root=PARTLABEL=rootfs{booted} ro rauc.slot={booted}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(p.join("bin")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_voltage"), p.join("bin/voltage")).unwrap();
        for tool in ["rauc", "systemctl"] {
            let f = p.join("bin").join(tool);
            std::fs::write(
                &f,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >>\"{}\"\n",
                    p.join("calls").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Unit { dir }
    }

    fn trial(&self) -> PathBuf {
        self.dir.path().join("data/ab-trial")
    }

    fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let p = self.dir.path();
        let path = format!(
            "{}:{}",
            p.join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        Command::new("sh")
            .arg(files().join(script))
            .env("PATH", path)
            .env("VOLTAGE_CONFIG", p.join("config"))
            .env("VOLTAGE_AB_TRIAL", self.trial())
            .env("VOLTAGE_CMDLINE", p.join("cmdline"))
            .env("VOLTAGE_HEALTH_DEADLINE", "0")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn gate(&self) -> Output {
        self.run("voltage-health-gate", &[])
    }

    /// The handler as RAUC runs it after installing into the slot `bootname` (index 2).
    fn post_install(&self, bootname: &str) -> Output {
        self.run(
            "voltage-rauc-post-install",
            &[
                ("RAUC_TARGET_SLOTS", "2"),
                ("RAUC_SLOT_CLASS_2", "rootfs"),
                ("RAUC_SLOT_BOOTNAME_2", bootname),
            ],
        )
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn open_trial(&self, text: &str) {
        std::fs::create_dir_all(self.trial().parent().unwrap()).unwrap();
        std::fs::write(self.trial(), text).unwrap();
    }
}

fn log(o: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_proven_slot_is_confirmed_good_even_with_a_dead_meter() {
    let unit = Unit::new(comsrv(HEALTHY, METER_DEAD), "A");
    let o = unit.gate();
    assert!(o.status.success(), "{}", log(&o));
    assert_eq!(unit.calls(), vec!["rauc status mark-good booted"]);
    assert!(log(&o).contains("channel 1003 (meter)"), "{}", log(&o));
}

#[test]
fn the_post_install_handler_records_the_slot_and_the_channels_polling() {
    let unit = Unit::new(comsrv(HEALTHY, METER_DEAD), "A");
    let o = unit.post_install("B");
    assert!(o.status.success(), "{}", log(&o));
    let trial = std::fs::read_to_string(unit.trial()).unwrap();
    let ids: Vec<&str> = trial.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(trial.starts_with("# slot=B\n"), "{trial}");
    assert_eq!(ids, vec!["1001"], "{trial}");
    assert!(unit.calls().is_empty(), "{:?}", unit.calls());
}

#[test]
fn a_trial_passes_when_the_channels_that_polled_before_still_poll() {
    let unit = Unit::new(comsrv(HEALTHY, METER_DEAD), "B");
    assert!(unit.post_install("B").status.success());
    let o = unit.gate();
    assert!(o.status.success(), "{}", log(&o));
    assert_eq!(unit.calls(), vec!["rauc status mark-good booted"]);
    assert!(!unit.trial().exists(), "the trial is over");
    assert!(log(&o).contains("slot B passed its trial"), "{}", log(&o));
}

#[test]
fn a_trial_fails_when_a_channel_that_polled_before_is_silent() {
    let unit = Unit::new(comsrv(HEALTHY, METER_DEAD), "B");
    unit.open_trial("# slot=B\n1001\n1003\n");
    let o = unit.gate();
    assert_eq!(o.status.code(), Some(1), "{}", log(&o));
    assert_eq!(
        unit.calls(),
        vec![
            "systemctl status --no-pager voltage.service",
            "rauc status mark-bad booted",
            "systemctl reboot"
        ]
    );
    assert!(
        !unit.trial().exists(),
        "the previous slot must not judge itself"
    );
    assert!(log(&o).contains("channel 1003 (meter)"), "{}", log(&o));
}

#[test]
fn a_trial_fails_when_the_daemon_does_not_answer() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unit = Unit::new(port, "B");
    assert!(
        unit.post_install("B").status.success(),
        "no daemon: empty baseline"
    );
    let o = unit.gate();
    assert_eq!(o.status.code(), Some(1), "{}", log(&o));
    assert!(unit
        .calls()
        .contains(&"rauc status mark-bad booted".to_string()));
}

#[test]
fn the_previous_slot_after_a_trial_that_never_booted_is_kept() {
    // The update into B never reached user space; U-Boot used up B's attempts and booted A.
    let unit = Unit::new(comsrv(HEALTHY, METER_DEAD), "A");
    unit.open_trial("# slot=B\n1001\n1003\n");
    let o = unit.gate();
    assert!(o.status.success(), "{}", log(&o));
    assert_eq!(unit.calls(), vec!["rauc status mark-good booted"]);
    assert!(!unit.trial().exists());
    assert!(log(&o).contains("the update did not boot"), "{}", log(&o));
}
