//! Bank storage and fault-plan tests.

use super::*;

#[test]
fn unset_reads_zero_and_set_round_trips() {
    let bank = Bank::new();
    assert_eq!(bank.holding(1, 10), 0);
    bank.set_holding(1, 10, 1234);
    bank.set_input(1, 10, 77);
    bank.set_coil(1, 10, true);
    bank.set_discrete(2, 10, true);
    assert_eq!(bank.holding(1, 10), 1234);
    assert_eq!(bank.input(1, 10), 77);
    assert!(bank.coil(1, 10));
    assert!(!bank.discrete(1, 10));
    assert!(bank.discrete(2, 10));
    assert_eq!(bank.holding(2, 10), 0, "units are independent");
}

#[test]
fn set_many_stops_at_address_limit() {
    let bank = Bank::new();
    bank.set_holdings(1, 65534, &[1, 2, 3, 4]);
    assert_eq!(bank.holding(1, 65534), 1);
    assert_eq!(bank.holding(1, 65535), 2);
    assert_eq!(bank.holding(1, 0), 0, "no wrap-around");
}

#[test]
fn read_range_fills_gaps_with_zero() {
    let bank = Bank::new();
    bank.set_inputs(3, 100, &[5, 6]);
    bank.set_input(3, 104, 9);
    let mut out = [0xFFFF; 6];
    bank.read_range(3, Table::Input, 99, 6, &mut out);
    assert_eq!(out, [0, 5, 6, 0, 0, 9]);
}

#[test]
fn delay_last_call_wins() {
    let bank = Bank::new();
    let d = Duration::from_millis(50);
    bank.set_delay(Some(4), d);
    assert_eq!(bank.response_delay(4), d);
    assert_eq!(bank.response_delay(5), Duration::ZERO);
    bank.set_delay(None, 2 * d);
    assert_eq!(bank.response_delay(4), 2 * d);
    bank.set_delay(Some(4), Duration::ZERO);
    assert_eq!(bank.response_delay(4), Duration::ZERO);
    assert_eq!(bank.response_delay(5), 2 * d);
    bank.clear_faults();
    assert_eq!(bank.response_delay(5), Duration::ZERO);
}

#[test]
fn exception_overlap_is_half_open() {
    let bank = Bank::new();
    bank.add_exception(1, 3, 10, 5, 2); // [10, 15)
    assert_eq!(bank.injected_exception(1, 3, 0, 10), None);
    assert_eq!(bank.injected_exception(1, 3, 0, 11), Some(2));
    assert_eq!(bank.injected_exception(1, 3, 14, 1), Some(2));
    assert_eq!(bank.injected_exception(1, 3, 15, 100), None);
    assert_eq!(bank.injected_exception(1, 4, 10, 1), None, "other fc");
    assert_eq!(bank.injected_exception(2, 3, 10, 1), None, "other unit");
    bank.add_exception(1, 3, 65535, 1, 4);
    assert_eq!(bank.injected_exception(1, 3, 65530, 6), Some(4));
}

#[test]
fn silent_units_have_no_delay() {
    let bank = Bank::new();
    bank.set_delay(None, Duration::from_secs(1));
    bank.set_silent(7, true);
    assert!(bank.is_silent(7));
    assert_eq!(bank.response_delay(7), Duration::ZERO);
    bank.set_silent(7, false);
    assert!(!bank.is_silent(7));
}
