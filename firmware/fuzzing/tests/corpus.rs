//! Replays every committed fuzz input, the seed corpus (`fuzz/corpus/<target>/`) and every crash
//! reproducer (`fuzz/regressions/<target>/`), through the same check as the fuzz target, on
//! stable: a crash the fuzzer once found stays a test of `cargo test --workspace`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// `(target, file)` for every file under `fuzz/<kind>/<target>/`.
fn inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let dir = root().join(kind);
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(&dir) else {
        return out;
    };
    for t in targets {
        let t = t.expect("a directory entry");
        let name = t.file_name().to_string_lossy().to_string();
        assert!(
            fuzzing::target(&name).is_some(),
            "{}: no fuzz target {name:?}",
            dir.display()
        );
        for f in std::fs::read_dir(t.path()).expect("a target directory") {
            out.push((name.clone(), f.expect("a file").path()));
        }
    }
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let all = inputs(kind);
    for (target, file) in &all {
        let data = std::fs::read(file).expect("a committed input");
        let check = fuzzing::target(target).expect("checked above");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails its check", file.display());
        }
    }
    all.len()
}

#[test]
fn every_target_has_a_seed_corpus_and_every_seed_passes() {
    for t in fuzzing::TARGETS {
        let dir = root().join("corpus").join(t.name);
        let n = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .count();
        assert!(n > 0, "{}: empty seed corpus", dir.display());
    }
    assert!(replay("corpus") >= fuzzing::TARGETS.len());
}

#[test]
fn every_crash_reproducer_passes() {
    replay("regressions");
}
