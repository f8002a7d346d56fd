use super::*;
use crate::types::{ByteOrder, DataType};
use proptest::prelude::*;

fn m(slave: u8, fc: u8, addr: u16, dt: DataType) -> ModbusMapping {
    ModbusMapping {
        slave_id: slave,
        function_code: fc,
        register_address: addr,
        data_type: dt,
        byte_order: ByteOrder::ABCD,
        bit_position: None,
    }
}

fn run(maps: &[ModbusMapping], lim: PlanLimits) -> Vec<ReadBlock> {
    let pts: Vec<(usize, &ModbusMapping)> = maps.iter().enumerate().collect();
    plan(&pts, |_| lim.clone())
}

#[test]
fn adjacent_points_of_one_slave_merge_into_one_read() {
    let maps = [
        m(1, 3, 0, DataType::U16),
        m(1, 3, 1, DataType::F32),
        m(1, 3, 3, DataType::U64),
    ];
    let b = run(&maps, PlanLimits::default());
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].start, b[0].count), (0, 7));
    assert_eq!(b[0].tcp_response_bytes(), 9 + 14);
}

#[test]
fn slaves_and_functions_never_share_a_read() {
    let maps = [
        m(1, 3, 0, DataType::U16),
        m(2, 3, 1, DataType::U16),
        m(1, 4, 1, DataType::U16),
        m(1, 1, 0, DataType::Bool),
    ];
    let b = run(&maps, PlanLimits::default());
    assert_eq!(b.len(), 4);
    assert_eq!(
        b.iter()
            .map(|b| (b.slave, b.function.code()))
            .collect::<Vec<_>>(),
        vec![(1, 1), (1, 3), (1, 4), (2, 3)]
    );
}

#[test]
fn a_gap_larger_than_max_gap_starts_a_new_read() {
    let maps = [
        m(1, 3, 0, DataType::U16),
        m(1, 3, 9, DataType::U16),
        m(1, 3, 30, DataType::U16),
    ];
    let b = run(
        &maps,
        PlanLimits {
            max_gap: 8,
            ..Default::default()
        },
    );
    assert_eq!(
        b.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>(),
        vec![(0, 10), (30, 1)]
    );
    let b = run(
        &maps,
        PlanLimits {
            max_gap: 7,
            ..Default::default()
        },
    );
    assert_eq!(b.len(), 3);
}

#[test]
fn reads_respect_the_register_and_bit_limits() {
    let maps: Vec<_> = (0..300).map(|a| m(1, 3, a, DataType::U16)).collect();
    let b = run(&maps, PlanLimits::default());
    assert_eq!(
        b.iter().map(|b| b.count).collect::<Vec<_>>(),
        vec![125, 125, 50]
    );
    let bits: Vec<_> = (0..4100).map(|a| m(1, 2, a, DataType::Bool)).collect();
    let b = run(&bits, PlanLimits::default());
    assert_eq!(
        b.iter().map(|b| b.count).collect::<Vec<_>>(),
        vec![2000, 2000, 100]
    );
    assert_eq!(b[0].payload_bytes(), 250);
}

#[test]
fn a_read_never_spans_a_no_cross_address() {
    let maps = [
        m(1, 3, 98, DataType::U16),
        m(1, 3, 99, DataType::U16),
        m(1, 3, 100, DataType::U16),
        m(1, 3, 101, DataType::U16),
    ];
    let b = run(
        &maps,
        PlanLimits {
            no_cross: vec![100],
            ..Default::default()
        },
    );
    assert_eq!(
        b.iter().map(|b| b.range()).collect::<Vec<_>>(),
        vec!["98..=99", "100..=101"]
    );
}

#[test]
fn a_32_bit_value_is_never_cut_by_the_limit() {
    let maps = [m(1, 3, 0, DataType::U16), m(1, 3, 1, DataType::U32)];
    let b = run(
        &maps,
        PlanLimits {
            max_registers: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        b.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>(),
        vec![(0, 1), (1, 2)]
    );
}

#[test]
fn bits_of_one_register_share_the_read() {
    let mut a = m(1, 3, 5, DataType::Bool);
    a.bit_position = Some(0);
    let mut c = a.clone();
    c.bit_position = Some(7);
    let b = run(&[a, c], PlanLimits::default());
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].start, b[0].count, b[0].points.len()), (5, 1, 2));
}

#[test]
fn split_halves_a_block_and_stops_at_one_point() {
    let maps = [
        m(1, 3, 0, DataType::U16),
        m(1, 3, 1, DataType::U16),
        m(1, 3, 4, DataType::U32),
    ];
    let b = run(&maps, PlanLimits::default());
    let (l, r) = b[0].split().unwrap();
    assert_eq!((l.start, l.count, r.start, r.count), (0, 1, 1, 5));
    let (rl, rr) = r.split().unwrap();
    assert_eq!(
        (rl.range(), rr.range()),
        ("1..=1".to_string(), "4..=5".to_string())
    );
    assert!(rl.split().is_none());
}

proptest! {
    #[test]
    fn every_point_is_read_exactly_once_and_within_limits(
        addrs in proptest::collection::vec((1u8..4, 0u16..400, 0usize..3), 1..200),
        max_regs in 4u16..=125, gap in 0u16..20
    ) {
        let types = [DataType::U16, DataType::F32, DataType::F64];
        let maps: Vec<_> = addrs.iter().map(|(s, a, t)| m(*s, 3, *a, types[*t])).collect();
        let lim = PlanLimits { max_registers: max_regs, max_gap: gap, no_cross: vec![200], ..Default::default() };
        let blocks = run(&maps, lim);
        let mut seen = vec![0; maps.len()];
        for b in &blocks {
            prop_assert!(b.count <= max_regs);
            let crosses = |s: u16, n: u32| s < 200 && 200 < s as u32 + n;
            prop_assert!(!crosses(b.start, b.count as u32) || b.points.iter().any(|p| crosses(p.address, p.width as u32)));
            for p in &b.points {
                seen[p.index] += 1;
                prop_assert_eq!(maps[p.index].slave_id, b.slave);
                prop_assert!(p.address >= b.start && p.address as u32 + p.width as u32 <= b.start as u32 + b.count as u32);
            }
        }
        prop_assert!(seen.iter().all(|c| *c == 1));
    }
}
