use super::*;
use proptest::prelude::*;

fn rec(i: u64) -> Record {
    Record {
        ts_ns: 1_700_000_000_000_000_000 + i as i64,
        channel: 1 + (i % 3) as u32,
        kind: b'T',
        point: (i % 7) as u32,
        value: i as f64 * 0.5,
    }
}

fn open(dir: &Path, max: u64, seg: u64) -> (Wal, RecoveryReport) {
    let mut c = WalConfig::new(dir);
    c.max_bytes = max;
    c.segment_bytes = seg;
    c.fsync = Fsync::Never;
    Wal::open(c).unwrap()
}

fn all(w: &Wal) -> Vec<(u64, Record)> {
    w.read_from(0, usize::MAX).unwrap()
}

#[test]
fn appended_records_come_back_in_order_after_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!(r.next_seq, 0);
    let recs: Vec<Record> = (0..500).map(rec).collect();
    assert_eq!(w.append(&recs[..200]).unwrap(), 199);
    assert_eq!(w.append(&recs[200..]).unwrap(), 499);
    drop(w);
    let (w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!((r.records, r.next_seq, r.truncated_bytes), (500, 500, 0));
    let got = all(&w);
    assert_eq!(got.len(), 500);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (s, r))| *s == i as u64 && *r == recs[i]));
    assert_eq!(
        w.read_from(123, 5)
            .unwrap()
            .iter()
            .map(|x| x.0)
            .collect::<Vec<_>>(),
        vec![123, 124, 125, 126, 127]
    );
}

#[test]
fn sequence_numbers_continue_across_segments_and_reopens() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 2000);
    for i in 0..30 {
        w.append(&(i * 10..i * 10 + 10).map(rec).collect::<Vec<_>>())
            .unwrap();
    }
    assert!(w.stats().segments > 3);
    drop(w);
    let (mut w, _) = open(d.path(), 1 << 30, 2000);
    assert_eq!(w.append(&[rec(300)]).unwrap(), 300);
    let got = all(&w);
    assert_eq!(got.len(), 301);
    assert!(got.iter().enumerate().all(|(i, (s, _))| *s == i as u64));
}

#[test]
fn a_torn_tail_at_every_byte_offset_is_cut_back_to_the_last_whole_record() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&(0..3).map(rec).collect::<Vec<_>>()).unwrap();
    let full = w.stats().bytes;
    w.append(&[rec(3)]).unwrap();
    let path = w.segments[0].path.clone();
    let bytes = fs::read(&path).unwrap();
    drop(w);
    for len in full as usize..bytes.len() {
        fs::write(&path, &bytes[..len]).unwrap();
        let (mut w, r) = open(d.path(), 1 << 30, 1 << 20);
        assert_eq!(
            (r.records, r.truncated_bytes),
            (3, (len - full as usize) as u64),
            "length {len}"
        );
        assert_eq!(all(&w).len(), 3);
        assert_eq!(
            w.append(&[rec(9)]).unwrap(),
            3,
            "appending after recovery continues the sequence"
        );
        drop(w);
        let (w, _) = open(d.path(), 1 << 30, 1 << 20);
        assert_eq!(all(&w).last().unwrap().1, rec(9));
    }
}

#[test]
fn a_flipped_byte_is_detected_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&(0..10).map(rec).collect::<Vec<_>>()).unwrap();
    let path = w.segments[0].path.clone();
    drop(w);
    let mut b = fs::read(&path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    fs::write(&path, &b).unwrap();
    let (w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert!(r.truncated_bytes > 0, "{r:?}");
    assert!(r.records < 10 && r.records >= 4, "{r:?}");
    assert_eq!(all(&w).len() as u64, r.records);
}

#[test]
fn eviction_keeps_the_budget_and_counts_what_each_sink_lost() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 6000, 2000);
    assert_eq!(w.cursor("influxdb").unwrap(), 0);
    for i in 0..100 {
        w.append(&(i * 10..i * 10 + 10).map(rec).collect::<Vec<_>>())
            .unwrap();
        if i == 5 {
            w.commit("influxdb", 60).unwrap();
        }
    }
    let s = w.stats();
    assert!(s.bytes <= 6000 + 2000, "{s:?}");
    assert!(s.evicted_records > 0);
    assert_eq!(s.first_seq + (s.next_seq - s.first_seq), 1000);
    let sink = &s.sinks[0];
    assert_eq!(sink.cursor, s.first_seq);
    assert_eq!(sink.lost_records, s.first_seq - 60);
    assert_eq!(
        w.read_from(0, 1).unwrap()[0].0,
        s.first_seq,
        "reads start at the oldest retained record"
    );
    drop(w);
    let (mut w, _) = open(d.path(), 6000, 2000);
    assert_eq!(
        w.stats().sinks[0].lost_records,
        sink.lost_records,
        "lost counts survive a reopen"
    );
    assert_eq!(w.cursor("influxdb").unwrap(), sink.cursor);
}

#[test]
fn cursors_persist_and_bad_commits_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&(0..50).map(rec).collect::<Vec<_>>()).unwrap();
    assert_eq!(w.cursor("mqtt").unwrap(), 0);
    w.commit("mqtt", 20).unwrap();
    assert!(matches!(
        w.commit("mqtt", 51),
        Err(WalError::BadCursor { .. })
    ));
    assert!(matches!(
        w.commit("mqtt", 10),
        Err(WalError::BadCursor { .. })
    ));
    assert!(matches!(w.cursor("../x"), Err(WalError::BadSink(_))));
    drop(w);
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!(w.cursor("mqtt").unwrap(), 20);
    assert_eq!(
        w.cursor("http").unwrap(),
        0,
        "a new sink starts at the oldest record"
    );
    let s = w.stats();
    let m = s.sinks.iter().find(|x| x.sink == "mqtt").unwrap();
    assert_eq!(m.records, 30);
    assert_eq!(m.oldest_ts_ns, Some(rec(20).ts_ns));
}

#[test]
fn query_returns_one_point_in_a_time_range_oldest_first() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 3000);
    w.append(&(0..300).map(rec).collect::<Vec<_>>()).unwrap();
    let base = rec(0).ts_ns;
    let got = w.query(2, b'T', 3, base + 10, base + 200).unwrap();
    let want: Vec<Record> = (10..200)
        .map(rec)
        .filter(|r| r.channel == 2 && r.point == 3)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn fsync_always_syncs_every_append_and_never_does_not() {
    let d = tempfile::tempdir().unwrap();
    let mut c = WalConfig::new(d.path());
    c.fsync = Fsync::Always;
    let (mut w, _) = Wal::open(c).unwrap();
    let before = w.syncs();
    for i in 0..5 {
        w.append(&[rec(i)]).unwrap();
    }
    assert_eq!(w.syncs() - before, 5);
    let d2 = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d2.path(), 1 << 30, 1 << 20);
    let before = w.syncs();
    for i in 0..5 {
        w.append(&[rec(i)]).unwrap();
    }
    assert_eq!(w.syncs() - before, 0);
}

#[test]
#[ignore]
fn measure_append_throughput() {
    for (name, f) in [
        ("never", Fsync::Never),
        ("interval 1s", Fsync::Interval(Duration::from_secs(1))),
        ("always", Fsync::Always),
    ] {
        let d = tempfile::tempdir().unwrap();
        let mut c = WalConfig::new(d.path());
        c.fsync = f;
        c.max_bytes = 1 << 30;
        let (mut w, _) = Wal::open(c).unwrap();
        let batch: Vec<Record> = (0..100).map(rec).collect();
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(2) {
            w.append(&batch).unwrap();
            n += 100;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "fsync {name:12}: {:>10.0} records/s, {:>8.0} batches/s, {:.1} bytes/record",
            n as f64 / secs,
            n as f64 / 100.0 / secs,
            w.stats().bytes as f64 / n as f64
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_record_between_the_slowest_cursor_and_the_end_stays_readable(ops in proptest::collection::vec((1usize..40, 0u64..50, any::<bool>()), 1..30)) {
        let d = tempfile::tempdir().unwrap();
        let (mut w, _) = open(d.path(), 1 << 30, 1500);
        let mut next = 0u64;
        for (n, adv, reopen) in ops {
            w.append(&(next..next + n as u64).map(rec).collect::<Vec<_>>()).unwrap();
            next += n as u64;
            let c = w.cursor("a").unwrap();
            w.commit("a", (c + adv).min(next)).unwrap();
            if reopen {
                drop(w);
                w = open(d.path(), 1 << 30, 1500).0;
            }
            let c = w.cursor("a").unwrap();
            let got = w.read_from(c, usize::MAX).unwrap();
            prop_assert_eq!(got.len() as u64, next - c);
            for (i, (s, r)) in got.iter().enumerate() {
                prop_assert_eq!(*s, c + i as u64);
                prop_assert_eq!(*r, rec(*s));
            }
        }
    }
}
