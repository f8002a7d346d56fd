//! `voltage check-board` on every board file of the repository and on broken ones, and the
//! configuration schema as the command line reports it (migrated, refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn voltage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voltage"))
        .args(args)
        .output()
        .expect("run voltage")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn board_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("board-configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.push(root().join("qemu/config/board.toml"));
    v.sort();
    v
}

#[test]
fn every_board_file_checks_clean() {
    let files = board_files();
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let o = voltage(&["check-board", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
        assert!(text(&o).contains(": OK (board "), "{}", text(&o));
    }
}

#[test]
fn the_required_boards_exist_with_their_targets() {
    for (board, triple) in [
        ("qemuarm64", "aarch64-unknown-linux-gnu"),
        ("raspberrypi4-64", "aarch64-unknown-linux-gnu"),
        ("imx6ullevk", "armv7-unknown-linux-gnueabihf"),
    ] {
        let f = root().join(format!("board-configs/{board}.toml"));
        let o = voltage(&["check-board", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("{triple}, MACHINE {board}")),
            "{}",
            text(&o)
        );
    }
}

fn broken(name: &str, body: &str) -> (bool, String) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join(name);
    std::fs::write(&f, body).unwrap();
    let o = voltage(&["check-board", f.to_str().unwrap()]);
    (o.status.success(), text(&o))
}

#[test]
fn broken_board_files_fail_with_located_errors() {
    let (ok, out) = broken(
        "typo.toml",
        "board = \"x\"\n[ports.rs485-1]\ndevice = \"/dev/ttyS1\"\nbaudrate = 9600\n",
    );
    assert!(!ok);
    assert!(
        out.contains("typo.toml:4:1: unknown field `baudrate`"),
        "{out}"
    );

    let (ok, out) = broken(
        "delay.toml",
        "board = \"x\"\n\n[ports.a]\ndevice = \"/dev/ttyS1\"\n[ports.a.rs485]\ndelay_before_send_ms = 500\n",
    );
    assert!(!ok);
    assert!(
        out.contains("delay.toml:3:1: ports.a: rs485.delay_before_send_ms = 500: the kernel accepts at most 100 ms"),
        "{out}"
    );

    let (ok, out) = broken("newer.toml", "schema_version = 7\nboard = \"x\"\n");
    assert!(!ok);
    assert!(
        out.contains("schema_version 7 is newer than this firmware reads"),
        "{out}"
    );

    let (ok, out) = broken("missing.toml", "description = \"no name\"\n");
    assert!(!ok);
    assert!(out.contains("missing field `board`"), "{out}");

    let o = voltage(&["check-board", "/nonexistent/board.toml"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("reading /nonexistent/board.toml"),
        "{}",
        text(&o)
    );
}

fn config_dir(voltage_yaml: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("voltage.yaml"), voltage_yaml).unwrap();
    d
}

#[test]
fn an_old_config_is_migrated_and_a_newer_one_refused() {
    let d = config_dir("redis: {url: redis://127.0.0.1:6379}\n");
    let o = voltage(&["check-config", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("migrated: schema 1 -> 2"), "{}", text(&o));

    let d = config_dir("schema_version: 2\n");
    let o = voltage(&["check-config", d.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("migrated"), "{}", text(&o));

    let d = config_dir("schema_version: 3\n");
    let o = voltage(&["check-config", d.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(
            "voltage.yaml:1:17: schema_version 3 is newer than this firmware reads (up to 2)"
        ),
        "{}",
        text(&o)
    );
    // The daemon refuses it before touching Redis or the serial lines.
    let o = voltage(&["run", "--config", d.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("schema_version 3 is newer"),
        "{}",
        text(&o)
    );
}

#[test]
fn board_override_replaces_the_configured_board() {
    let d = config_dir("schema_version: 2\nboard: nonexistent.toml\n");
    let o = voltage(&["check-config", d.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("board: cannot read"), "{}", text(&o));
    let board = root().join("board-configs/qemuarm64.toml");
    let o = voltage(&[
        "check-config",
        "--board",
        board.to_str().unwrap(),
        d.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = voltage(&[
        "check-config",
        "--board",
        "/nonexistent.toml",
        d.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--board: board: cannot read /nonexistent.toml"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_yocto_layers_default_config_checks_with_every_target_board() {
    let layer_cfg = root().join("yocto-layer/meta-voltage/recipes-voltage/voltage/files/config");
    for f in board_files() {
        if !std::fs::read_to_string(&f).unwrap().contains("[target]") {
            continue;
        }
        let d = tempfile::tempdir().unwrap();
        for rel in ["voltage.yaml", "comsrv/comsrv.yaml", "hissrv/hissrv.yaml"] {
            let to = d.path().join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(layer_cfg.join(rel), to).unwrap();
        }
        std::fs::copy(&f, d.path().join("board.toml")).unwrap();
        let o = voltage(&["check-config", d.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
        assert!(!text(&o).contains("migrated"), "{}", text(&o));
    }
}
