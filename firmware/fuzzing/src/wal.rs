//! History log recovery from arbitrary bytes: up to two segment files (the second after a gap or
//! overlapping the first) and a sink cursor file, as a crash or a bad disk may leave them.
//!
//! Opening never fails on their content, with one deliberate exception: a segment whose header
//! names a format version this build does not know (a newer firmware's log, met after a
//! rollback) is refused and left byte for byte as it was, not truncated as garbage (the WAL's
//! module doc). Otherwise what it recovers reads back in sequence; the recovered log takes
//! appends, and a reopen keeps them.

use voltage_wal::{Fsync, Record, Wal, WalConfig, WalError};

/// Input layout: `flags, first: u16 LE, second: u16 LE, split: u16 LE, bytes...`. Flag bit 0
/// starts the files with a valid header (`VWAL`, version 1) so the fuzzer reaches the frames,
/// bit 1 splits the bytes at `split` into a second segment starting at `second`, bit 2 makes
/// the last (up to 12) bytes a sink's cursor file.
const HEADER: &[u8] = b"VWAL\x01";

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Every segment file with its bytes, in name order.
fn segments(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("the log dir")
        .map(|e| e.expect("a dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let b = std::fs::read(&p).expect("a segment");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

fn config(dir: &std::path::Path) -> WalConfig {
    let mut c = WalConfig::new(dir);
    c.fsync = Fsync::Never;
    c
}

pub fn check(data: &[u8]) {
    if data.len() < 7 {
        return;
    }
    let flags = data[0];
    let u16_at = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]) as u64;
    let (first, second, split) = (u16_at(1), u16_at(3), u16_at(5) as usize);
    let mut bytes = &data[7..];
    let dir = tempfile::tempdir().expect("a temp dir");
    if flags & 4 != 0 {
        let (rest, cursor) = bytes.split_at(bytes.len().saturating_sub(12));
        let d = dir.path().join("cursors");
        std::fs::create_dir_all(&d).expect("cursor dir");
        std::fs::write(d.join("hissrv"), cursor).expect("write a cursor");
        bytes = rest;
    }
    // What was written, kept to compare with the files after a refusal (no re-read per run).
    let mut before = Vec::new();
    let mut write = |first: u64, b: &[u8]| {
        let mut f = if flags & 1 != 0 {
            HEADER.to_vec()
        } else {
            Vec::new()
        };
        f.extend_from_slice(b);
        let path = dir.path().join(seg_name(first));
        std::fs::write(&path, &f).expect("write a segment");
        before.push((path, f));
    };
    if flags & 2 != 0 && first != second {
        let (a, b) = bytes.split_at(split.min(bytes.len()));
        write(first, a);
        write(second, b);
    } else {
        write(first, bytes);
    }

    before.sort();
    let (wal, report) = match Wal::open(config(dir.path())) {
        Ok(x) => x,
        Err(WalError::Version { path, version }) => {
            let b = std::fs::read(&path).expect("the refused segment is still there");
            assert!(b.starts_with(&HEADER[..4]) && b[4] == version && version != HEADER[4]);
            assert_eq!(
                segments(dir.path()),
                before,
                "a refused log is left untouched"
            );
            return;
        }
        Err(e) => panic!("recovery never fails on content: {e}"),
    };
    assert!(report.first_seq <= report.next_seq);
    let all = wal
        .read_from(0, usize::MAX)
        .expect("recovered records read back");
    assert_eq!(all.len() as u64, report.records, "{report:?}");
    for (i, (seq, _)) in all.iter().enumerate() {
        if i > 0 {
            assert!(*seq > all[i - 1].0, "sequence not increasing: {all:?}");
        }
        assert!(*seq >= report.first_seq && *seq < report.next_seq);
    }
    let mut wal = wal;
    let cursor = wal.cursor("hissrv").expect("a cursor");
    assert!(cursor >= wal.first_seq() && cursor <= wal.next_seq());
    let rec = Record {
        ts_ns: 1,
        channel: 1001,
        kind: b'T',
        point: 1,
        value: 0.5,
    };
    let seq = wal.append(&[rec]).expect("the recovered log takes appends");
    drop(wal);
    let (wal, again) = Wal::open(config(dir.path())).expect("reopen");
    assert_eq!(again.next_seq, seq + 1, "{again:?}");
    let last = wal.read_from(seq, 1).expect("read the append");
    assert_eq!(last, vec![(seq, rec)]);
}
