//! The log through its API on real files: round trips, sequence numbers, cursors, eviction,
//! queries, fsync policies, and a property test over appends, commits, reopens and crashes.

use super::*;
use proptest::prelude::*;
use std::path::Path;

pub(crate) fn rec(i: u64) -> Record {
    Record {
        ts_ns: 1_700_000_000_000_000_000 + i as i64,
        channel: 1 + (i % 3) as u32,
        kind: b'T',
        point: (i % 7) as u32,
        value: i as f64 * 0.5,
    }
}

pub(crate) fn recs(range: std::ops::Range<u64>) -> Vec<Record> {
    range.map(rec).collect()
}

pub(crate) fn cfg(dir: &Path, max: u64, seg: u64, fsync: Fsync) -> WalConfig {
    let mut c = WalConfig::new(dir);
    c.max_bytes = max;
    c.segment_bytes = seg;
    c.fsync = fsync;
    c
}

pub(crate) fn open(dir: &Path, max: u64, seg: u64) -> (Wal, RecoveryReport) {
    Wal::open(cfg(dir, max, seg, Fsync::Never)).unwrap()
}

pub(crate) fn all(w: &Wal) -> Vec<(u64, Record)> {
    w.read_from(0, usize::MAX).unwrap()
}

pub(crate) fn seqs(v: &[(u64, Record)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

#[test]
fn appended_records_come_back_in_order_after_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!((r.records, r.next_seq, r.segments), (0, 0, 0));
    let want = recs(0..500);
    assert_eq!(w.append(&want[..200]).unwrap(), 199);
    assert_eq!(w.append(&want[200..]).unwrap(), 499);
    drop(w);
    let (w, r) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!((r.records, r.first_seq, r.next_seq), (500, 0, 500));
    assert_eq!((r.truncated_bytes, r.corrupt_records), (0, 0));
    let got = all(&w);
    assert_eq!(seqs(&got), (0..500).collect::<Vec<_>>());
    assert!(got.iter().all(|(s, r)| *r == want[*s as usize]));
    let five = w.read_from(123, 5).unwrap();
    assert_eq!(seqs(&five), vec![123, 124, 125, 126, 127]);
    assert!(w.read_from(500, 10).unwrap().is_empty());
    assert!(w.read_from(0, 0).unwrap().is_empty());
}

#[test]
fn sequence_numbers_continue_across_segments_and_reopens() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 2000);
    for i in 0..30 {
        w.append(&recs(i * 10..i * 10 + 10)).unwrap();
    }
    assert!(w.stats().segments > 3);
    drop(w);
    let (mut w, r) = open(d.path(), 1 << 30, 2000);
    assert_eq!(r.next_seq, 300);
    assert_eq!(w.append(&[rec(300)]).unwrap(), 300);
    let got = all(&w);
    assert_eq!(seqs(&got), (0..301).collect::<Vec<_>>());
    assert!(got.iter().all(|(s, r)| *r == rec(*s)));
    // Reads that start inside a later segment, and around the index's steps.
    for from in [0, 63, 64, 65, 150, 299, 300] {
        assert_eq!(w.read_from(from, 3).unwrap()[0].0, from);
    }
}

#[test]
fn eviction_keeps_the_budget_and_counts_what_each_sink_lost() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 6000, 2000);
    assert_eq!(w.cursor("influxdb").unwrap(), 0);
    assert_eq!(w.cursor("mqtt").unwrap(), 0);
    for i in 0..100 {
        w.append(&recs(i * 10..i * 10 + 10)).unwrap();
        if i == 5 {
            w.commit("influxdb", 60).unwrap();
        }
    }
    let s = w.stats();
    assert!(s.bytes <= 6000 && s.bytes > 4000, "{s:?}");
    assert_eq!(s.next_seq, 1000);
    assert_eq!(
        s.evicted_records, s.first_seq,
        "every record below first_seq is counted"
    );
    assert!(s.evicted_bytes > 20_000, "{s:?}");
    let influx = &s.sinks[0];
    assert_eq!(
        (influx.sink.as_str(), influx.cursor),
        ("influxdb", s.first_seq)
    );
    assert_eq!(influx.lost_records, s.first_seq - 60, "it had delivered 60");
    assert_eq!(influx.records, 1000 - s.first_seq);
    assert_eq!(s.sinks[1].lost_records, s.first_seq);
    drop(w);
    let (mut w, r) = open(d.path(), 6000, 2000);
    assert_eq!(r.first_seq, s.first_seq);
    assert_eq!(
        w.stats(),
        s,
        "cursors, lost counts and eviction totals survive a reopen"
    );
    assert_eq!(w.cursor("influxdb").unwrap(), s.first_seq);
}

#[test]
fn segments_are_an_eighth_of_the_budget_so_a_small_budget_holds() {
    assert_eq!(
        segment_bytes_for(64 << 20),
        4 << 20,
        "the default budget keeps 4 MiB"
    );
    assert_eq!(segment_bytes_for(1 << 20), 128 << 10);
    assert_eq!(segment_bytes_for(100 << 10), 64 << 10, "never below 64 KiB");
    assert_eq!(segment_bytes_for(1 << 40), 4 << 20, "never above 4 MiB");
    let d = tempfile::tempdir().unwrap();
    let mut c = WalConfig::new(d.path()).with_budget(1 << 20);
    c.fsync = Fsync::Never;
    let (mut w, _) = Wal::open(c).unwrap();
    let mut most = 0;
    for i in 0..1000 {
        w.append(&recs(i * 100..i * 100 + 100)).unwrap();
        most = most.max(w.stats().bytes);
    }
    let s = w.stats();
    assert!(s.evicted_records > 0, "{s:?}");
    assert!(
        most <= (1 << 20) + (128 << 10) + 4096,
        "the log stays within its budget plus one segment (and a batch): {most}"
    );
}

#[test]
fn read_from_an_evicted_position_starts_at_the_oldest_retained_record() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 3000, 1000);
    for i in 0..20 {
        w.append(&recs(i * 10..i * 10 + 10)).unwrap();
    }
    let first = w.first_seq();
    assert!(first > 0);
    let got = w.read_from(0, 5).unwrap();
    assert_eq!(seqs(&got), (first..first + 5).collect::<Vec<_>>());
    assert_eq!(got[0].1, rec(first));
    assert_eq!(
        w.cursor("late").unwrap(),
        first,
        "a new sink starts at the oldest record"
    );
}

#[test]
fn cursors_persist_across_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&recs(0..50)).unwrap();
    assert_eq!(w.cursor("mqtt").unwrap(), 0);
    w.commit("mqtt", 20).unwrap();
    w.commit("http", 5).unwrap();
    drop(w);
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    assert_eq!(w.cursor("mqtt").unwrap(), 20);
    assert_eq!(w.cursor("http").unwrap(), 5, "commit registers a new sink");
    let text = fs::read_to_string(d.path().join("cursors/mqtt")).unwrap();
    assert_eq!(text, "20 0\n");
    let m = w
        .stats()
        .sinks
        .into_iter()
        .find(|x| x.sink == "mqtt")
        .unwrap();
    assert_eq!((m.records, m.oldest_ts_ns), (30, Some(rec(20).ts_ns)));
}

#[test]
fn a_commit_beyond_the_end_of_the_log_or_backwards_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 1 << 20);
    w.append(&recs(0..50)).unwrap();
    w.commit("mqtt", 20).unwrap();
    let e = w.commit("mqtt", 51).unwrap_err();
    assert!(
        matches!(&e, WalError::BadCursor { sink, requested: 51, valid } if sink == "mqtt" && valid == "20..=50"),
        "{e}"
    );
    assert!(matches!(
        w.commit("mqtt", 19),
        Err(WalError::BadCursor { .. })
    ));
    assert!(matches!(w.cursor("../x"), Err(WalError::BadSink(_))));
    assert!(matches!(w.commit("", 1), Err(WalError::BadSink(_))));
    assert_eq!(
        w.cursor("mqtt").unwrap(),
        20,
        "a refused commit changes nothing"
    );
    w.commit("mqtt", 50).unwrap();
}

#[test]
fn query_returns_one_point_in_a_time_range_oldest_first() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = open(d.path(), 1 << 30, 3000);
    w.append(&recs(0..300)).unwrap();
    // A late sample of the same point with an older timestamp still comes out in time order.
    let mut late = rec(20);
    late.value = -1.0;
    w.append(&[late]).unwrap();
    let base = rec(0).ts_ns;
    let got = w.query(3, b'T', 6, base + 10, base + 200).unwrap();
    let mut want: Vec<Record> = recs(10..200)
        .into_iter()
        .filter(|r| r.channel == 3 && r.point == 6)
        .collect();
    assert_eq!(want[0], rec(20));
    want.insert(1, late);
    assert_eq!(got, want);
    assert!(w.query(3, b'S', 6, base, base + 300).unwrap().is_empty());
    assert!(w
        .query(3, b'T', 6, base + 20, base + 20)
        .unwrap()
        .is_empty());
}

fn syncs_for(fsync: Fsync, appends: u64) -> u64 {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = Wal::open(cfg(d.path(), 1 << 30, 1 << 20, fsync)).unwrap();
    for i in 0..appends {
        w.append(&[rec(i)]).unwrap();
    }
    w.syncs()
}

#[test]
fn fsync_always_syncs_before_every_append_returns_and_never_leaves_it_to_the_os() {
    assert_eq!(syncs_for(Fsync::Always, 5), 5);
    assert_eq!(syncs_for(Fsync::Never, 5), 0);
}

#[test]
fn fsync_interval_syncs_only_when_the_last_fsync_is_older_than_the_interval() {
    assert_eq!(syncs_for(Fsync::Interval(Duration::from_secs(3600)), 5), 0);
    assert_eq!(syncs_for(Fsync::Interval(Duration::ZERO), 5), 5);
    let d = tempfile::tempdir().unwrap();
    let ms = Duration::from_millis(30);
    let (mut w, _) = Wal::open(cfg(d.path(), 1 << 30, 1 << 20, Fsync::Interval(ms))).unwrap();
    w.append(&[rec(0)]).unwrap();
    assert_eq!(w.syncs(), 0);
    assert!(!w.sync_if_due().unwrap());
    std::thread::sleep(ms);
    assert!(
        w.sync_if_due().unwrap(),
        "a timer bounds the window when appends stop"
    );
    assert_eq!(w.syncs(), 1);
}

#[test]
fn under_fsync_always_a_commit_survives_a_crash() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path(), 1 << 30, 1 << 20, Fsync::Always);
    let (mut w, _) = Wal::open(c.clone()).unwrap();
    w.append(&recs(0..10)).unwrap();
    w.commit("influxdb", 3).unwrap();
    w.commit("influxdb", 7).unwrap();
    std::mem::forget(w); // no drop, no final sync: what kill -9 leaves
    let (mut w, r) = Wal::open(c).unwrap();
    assert_eq!(r.next_seq, 10);
    assert_eq!(w.cursor("influxdb").unwrap(), 7);
}

#[test]
fn under_an_interval_a_crash_makes_a_sink_re_deliver_never_skip() {
    let d = tempfile::tempdir().unwrap();
    let hour = Fsync::Interval(Duration::from_secs(3600));
    let c = cfg(d.path(), 1 << 30, 1 << 20, hour);
    let (mut w, _) = Wal::open(c.clone()).unwrap();
    w.append(&recs(0..10)).unwrap();
    assert_eq!(w.cursor("influxdb").unwrap(), 0); // registered: written at once
    w.commit("influxdb", 3).unwrap(); // within the interval: kept in memory
    std::mem::forget(w);
    let (mut w, _) = Wal::open(c.clone()).unwrap();
    assert_eq!(w.cursor("influxdb").unwrap(), 0, "0..3 is delivered again");
    w.commit("influxdb", 5).unwrap();
    w.sync().unwrap();
    std::mem::forget(w);
    let (mut w, _) = Wal::open(c.clone()).unwrap();
    assert_eq!(
        w.cursor("influxdb").unwrap(),
        5,
        "sync writes moved cursors"
    );
    w.set_cursor_persist_interval(Duration::ZERO);
    w.commit("influxdb", 9).unwrap();
    std::mem::forget(w);
    assert_eq!(Wal::open(c).unwrap().0.cursor("influxdb").unwrap(), 9);
}

#[test]
fn the_log_can_be_moved_to_a_blocking_task() {
    fn send<T: Send + 'static>() {}
    send::<Wal>();
}

#[derive(Debug, Clone)]
enum Op {
    Append(u64),
    Commit(usize, u64),
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..60).prop_map(Op::Append),
        3 => (0usize..2, 0u64..80).prop_map(|(s, n)| Op::Commit(s, n)),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn every_record_between_the_slowest_cursor_and_the_end_stays_readable(
        ops in proptest::collection::vec(op(), 1..40),
        always in any::<bool>(),
        small in any::<bool>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let policy = if always { Fsync::Always } else { Fsync::Never };
        let c = cfg(d.path(), if small { 4000 } else { 1 << 30 }, 1500, policy);
        let sinks = ["influxdb", "mqtt"];
        let mut w = Wal::open(c.clone()).unwrap().0;
        // The model: records appended, and per sink its cursor and lost count.
        let (mut next, mut cur, mut lost) = (0u64, [0u64; 2], [0u64; 2]);
        for o in ops {
            match o {
                Op::Append(n) => {
                    let f0 = w.first_seq();
                    prop_assert_eq!(w.append(&recs(next..next + n)).unwrap(), next + n - 1);
                    next += n;
                    let f1 = w.first_seq();
                    for s in 0..2 {
                        lost[s] += f1.saturating_sub(cur[s].max(f0));
                        cur[s] = cur[s].max(f1);
                    }
                }
                Op::Commit(s, n) => {
                    cur[s] = (cur[s] + n).min(next);
                    w.commit(sinks[s], cur[s]).unwrap();
                }
                Op::Reopen => {
                    drop(w);
                    w = Wal::open(c.clone()).unwrap().0;
                }
                Op::Crash => {
                    std::mem::forget(w);
                    w = Wal::open(c.clone()).unwrap().0;
                }
            }
            let st = w.stats();
            prop_assert_eq!(st.next_seq, next);
            prop_assert_eq!(st.evicted_records, if small { st.first_seq } else { 0 });
            for s in 0..2 {
                let got = w.cursor(sinks[s]).unwrap();
                prop_assert!(got >= st.first_seq && got <= cur[s], "{} {} {:?}", got, cur[s], st);
                if always {
                    prop_assert_eq!(got, cur[s], "Always: every commit is durable");
                }
                cur[s] = got;
                let b = w.stats().sinks.into_iter().find(|b| b.sink == sinks[s]).unwrap();
                prop_assert_eq!(b.lost_records, lost[s]);
                prop_assert_eq!(b.records, next - got);
            }
            let min = cur[0].min(cur[1]);
            let got = w.read_from(min, usize::MAX).unwrap();
            prop_assert_eq!(got.len() as u64, next - min);
            for (i, (seq, r)) in got.iter().enumerate() {
                prop_assert_eq!(*seq, min + i as u64);
                prop_assert_eq!(*r, rec(*seq));
            }
        }
    }
}
