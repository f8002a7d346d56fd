//! Recovery on damaged files: torn tails at every byte, flipped bytes, zero-filled blocks,
//! damaged headers, overlapping segments, foreign versions, and arbitrary bytes (no panics).

use crate::tests::{all, cfg, open, rec, recs, seqs};
use crate::*;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Three segments of 10 records each (30 records, seqs 0..30).
fn three_segments(dir: &Path) -> Vec<PathBuf> {
    let (mut w, _) = open(dir, 1 << 30, 250);
    for i in 0..3 {
        w.append(&recs(i * 10..i * 10 + 10)).unwrap();
    }
    drop(w);
    let files = seg_files(dir);
    assert_eq!(files.len(), 3);
    files
}

#[test]
fn a_torn_tail_at_every_byte_offset_is_cut_back_to_the_last_whole_record() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 250);
    w.append(&recs(0..20)).unwrap();
    w.append(&recs(20..23)).unwrap();
    let whole = w.segments.last().unwrap().span.bytes;
    w.append(&[rec(23)]).unwrap();
    drop(w);
    let last = seg_files(d.path()).pop().unwrap();
    let bytes = fs::read(&last).unwrap();
    assert!(bytes.len() as u64 > whole + 8);
    for len in whole as usize..bytes.len() {
        fs::write(&last, &bytes[..len]).unwrap();
        let (mut w, r) = open(d.path(), 1 << 30, 250);
        let cut = (len - whole as usize) as u64;
        assert_eq!((r.records, r.next_seq), (23, 23), "length {len}");
        assert_eq!(
            (r.truncated_bytes, r.corrupt_records),
            (cut, 0),
            "length {len}"
        );
        assert_eq!(fs::metadata(&last).unwrap().len(), whole, "cut on disk");
        assert_eq!(seqs(&all(&w)), (0..23).collect::<Vec<_>>());
        assert_eq!(w.append(&[rec(99)]).unwrap(), 23, "the sequence goes on");
        drop(w);
        let (w, r) = open(d.path(), 1 << 30, 250);
        assert_eq!((r.truncated_bytes, r.next_seq), (0, 24));
        assert_eq!(all(&w).last().unwrap().1, rec(99));
    }
}

#[test]
fn a_segment_torn_while_it_was_being_created_is_emptied_and_reused() {
    let d = tempfile::tempdir().unwrap();
    three_segments(d.path());
    for header in [&b""[..], b"VW", b"\0\0\0\0\0\0\0\0"] {
        let newest = d.path().join("00000000000000000030.seg");
        fs::write(&newest, header).unwrap();
        let (mut w, r) = open(d.path(), 1 << 30, 250);
        assert_eq!((r.next_seq, r.records, r.corrupt_records), (30, 30, 0));
        assert_eq!(r.truncated_bytes, header.len() as u64);
        assert_eq!(w.append(&[rec(30)]).unwrap(), 30);
        assert_eq!(seqs(&all(&w)), (0..31).collect::<Vec<_>>());
    }
}

#[test]
fn a_flipped_byte_in_the_newest_segment_is_counted_as_corrupt_and_cut_off() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&recs(0..10)).unwrap();
    drop(w);
    let path = seg_files(d.path()).pop().unwrap();
    let mut b = fs::read(&path).unwrap();
    let frame = (b.len() - 5) / 10;
    let at = 5 + 4 * frame + 12; // inside the payload of record 4
    b[at] ^= 0x40;
    fs::write(&path, &b).unwrap();
    let (mut w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!((r.records, r.corrupt_records), (4, 1), "{r:?}");
    assert_eq!(r.truncated_bytes, 6 * frame as u64);
    assert_eq!(seqs(&all(&w)), vec![0, 1, 2, 3]);
    assert_eq!(w.append(&[rec(4)]).unwrap(), 4);
}

#[test]
fn a_zero_filled_tail_is_a_torn_write_not_corruption() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&recs(0..10)).unwrap();
    drop(w);
    let path = seg_files(d.path()).pop().unwrap();
    let mut b = fs::read(&path).unwrap();
    b.extend_from_slice(&[0; 4096]);
    fs::write(&path, &b).unwrap();
    let (_, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!(
        (r.records, r.truncated_bytes, r.corrupt_records),
        (10, 4096, 0)
    );
}

/// Collects every event's fields as text.
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0 += &format!("{}={:?} ", f.name(), v);
            }
        }
        let mut t = Text(format!("{} ", event.metadata().level()));
        event.record(&mut t);
        self.0.lock().unwrap().push(t.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_corrupt_record_in_an_older_segment_ends_its_readable_part_and_is_logged_with_file_and_offset()
{
    let d = tempfile::tempdir().unwrap();
    let files = three_segments(d.path());
    let mut b = fs::read(&files[0]).unwrap();
    let frame = (b.len() - 5) / 10;
    let at = 5 + 6 * frame; // the length field of record 6
    b[at + 8] ^= 0xff; // a payload byte: the checksum fails
    fs::write(&files[0], &b).unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (w, r) =
        tracing::subscriber::with_default(Capture(logs.clone()), || open(d.path(), 1 << 30, 250));
    assert_eq!(
        (r.records, r.corrupt_records, r.truncated_bytes),
        (26, 1, 0)
    );
    assert_eq!((r.first_seq, r.next_seq), (0, 30));
    let want: Vec<u64> = (0..6).chain(10..30).collect();
    assert_eq!(seqs(&all(&w)), want, "the next segment goes on");
    assert_eq!(
        fs::read(&files[0]).unwrap(),
        b,
        "an older segment is not rewritten"
    );
    let logs = logs.lock().unwrap();
    let name = files[0].display().to_string();
    assert!(
        logs.iter().any(|l| l.starts_with("WARN")
            && l.contains(&name)
            && l.contains(&format!("offset={at} "))
            && l.contains("checksum")),
        "{logs:#?}"
    );
    let s = w.stats();
    assert_eq!(s.first_seq, 0);
    drop(w);
    let (mut w, _) = open(d.path(), 1 << 30, 250);
    w.commit("influxdb", 3).unwrap();
    let b = w.stats().sinks[0].clone();
    assert_eq!(b.records, 23, "the gap is not counted as backlog");
}

#[test]
fn a_segment_overlapping_the_next_one_is_capped_and_the_surplus_counted() {
    let d = tempfile::tempdir().unwrap();
    let files = three_segments(d.path());
    // The middle segment now claims to start at 15: its last 5 records would take 20..25.
    fs::rename(&files[1], d.path().join("00000000000000000015.seg")).unwrap();
    let (w, r) = open(d.path(), 1 << 30, 250);
    assert_eq!((r.records, r.corrupt_records), (25, 5), "{r:?}");
    let got = all(&w);
    assert_eq!(seqs(&got), (0..10).chain(15..30).collect::<Vec<_>>());
    assert_eq!(got[10].1, rec(10), "the file's own first records are kept");
    assert_eq!(got[15].1, rec(20));
}

#[test]
fn an_unknown_format_version_is_refused_and_left_untouched() {
    let d = tempfile::tempdir().unwrap();
    let files = three_segments(d.path());
    let mut b = fs::read(&files[2]).unwrap();
    b[4] = 2;
    fs::write(&files[2], &b).unwrap();
    let e = Wal::open(cfg(d.path(), 1 << 30, 250, Fsync::Never))
        .err()
        .unwrap();
    assert!(matches!(e, WalError::Version { version: 2, .. }), "{e}");
    assert_eq!(fs::read(&files[2]).unwrap(), b);
}

#[test]
fn an_unreadable_cursor_file_restarts_its_sink_at_the_oldest_record() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&recs(0..10)).unwrap();
    w.commit("mqtt", 6).unwrap();
    w.commit("http", 4).unwrap();
    drop(w);
    fs::write(d.path().join("cursors/mqtt"), b"\xff\x00garbage").unwrap();
    fs::write(d.path().join("cursors/http"), b"99 0\n").unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!(w.cursor("mqtt").unwrap(), 0, "re-delivery rather than loss");
    assert_eq!(
        w.cursor("http").unwrap(),
        10,
        "a cursor past a lost tail moves back"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_bytes_in_any_segment_never_panic_and_leave_an_appendable_log(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let files = three_segments(d.path());
        let mut b = fs::read(&files[which]).unwrap();
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] = *v;
        }
        let cut = cut.index(b.len() + 1);
        b.truncate(cut);
        b.extend_from_slice(&tail);
        fs::write(&files[which], &b).unwrap();
        let (mut w, r) = match Wal::open(cfg(d.path(), 1 << 30, 250, Fsync::Never)) {
            Ok(x) => x,
            Err(WalError::Version { .. }) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let got = all(&w);
        prop_assert_eq!(got.len() as u64, r.records);
        prop_assert!(got.windows(2).all(|p| p[0].0 < p[1].0));
        let next = r.next_seq;
        prop_assert_eq!(w.append(&[rec(1000)]).unwrap(), next);
        drop(w);
        let (w, r2) = open(d.path(), 1 << 30, 250);
        prop_assert_eq!((r2.truncated_bytes, r2.next_seq), (0, next + 1));
        prop_assert_eq!(all(&w).last().map(|x| x.1), Some(rec(1000)));
    }
}
