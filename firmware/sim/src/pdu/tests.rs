//! PDU engine tests: every function code, every exception path, malformed bodies.

use super::*;
use crate::bank::Bank;

fn req(function: u8, a: u16, b: u16) -> Vec<u8> {
    let mut pdu = vec![function];
    pdu.extend_from_slice(&a.to_be_bytes());
    pdu.extend_from_slice(&b.to_be_bytes());
    pdu
}

fn multi(function: u8, start: u16, qty: u16, data: &[u8]) -> Vec<u8> {
    let mut pdu = req(function, start, qty);
    pdu.push(data.len() as u8);
    pdu.extend_from_slice(data);
    pdu
}

fn answer(bank: &Bank, unit: u8, pdu: &[u8]) -> Vec<u8> {
    handle_pdu(bank, unit, pdu).expect("expected a response")
}

#[test]
fn read_holding_registers_returns_values_and_zero_gaps() {
    let bank = Bank::new();
    bank.set_holdings(1, 100, &[0x1234, 0xABCD]);
    let resp = answer(&bank, 1, &req(3, 99, 4));
    assert_eq!(resp, vec![3, 8, 0, 0, 0x12, 0x34, 0xAB, 0xCD, 0, 0]);
}

#[test]
fn read_input_registers_uses_input_table() {
    let bank = Bank::new();
    bank.set_holding(1, 0, 1);
    bank.set_input(1, 0, 2);
    assert_eq!(answer(&bank, 1, &req(4, 0, 1)), vec![4, 2, 0, 2]);
    assert_eq!(answer(&bank, 1, &req(3, 0, 1)), vec![3, 2, 0, 1]);
}

#[test]
fn read_coils_packs_lsb_first() {
    let bank = Bank::new();
    // coils 20..=29: on at 20, 22, 27, 29
    for a in [20, 22, 27, 29] {
        bank.set_coil(1, a, true);
    }
    let resp = answer(&bank, 1, &req(1, 20, 10));
    assert_eq!(resp, vec![1, 2, 0b1000_0101, 0b0000_0010]);
}

#[test]
fn read_discrete_inputs_uses_discrete_table() {
    let bank = Bank::new();
    bank.set_discrete(2, 0, true);
    bank.set_coil(2, 1, true);
    assert_eq!(answer(&bank, 2, &req(2, 0, 2)), vec![2, 1, 0b01]);
}

#[test]
fn max_quantities_are_accepted() {
    let bank = Bank::new();
    assert_eq!(answer(&bank, 1, &req(1, 0, 2000)).len(), 2 + 250);
    assert_eq!(answer(&bank, 1, &req(2, 0, 2000)).len(), 2 + 250);
    assert_eq!(answer(&bank, 1, &req(3, 0, 125)).len(), 2 + 250);
    assert_eq!(answer(&bank, 1, &req(4, 65411, 125)).len(), 2 + 250);
}

#[test]
fn write_single_coil_updates_bank_and_echoes() {
    let bank = Bank::new();
    let pdu = req(5, 7, 0xFF00);
    assert_eq!(answer(&bank, 1, &pdu), pdu);
    assert!(bank.coil(1, 7));
    let pdu = req(5, 7, 0x0000);
    assert_eq!(answer(&bank, 1, &pdu), pdu);
    assert!(!bank.coil(1, 7));
}

#[test]
fn write_single_coil_rejects_other_values() {
    let bank = Bank::new();
    assert_eq!(answer(&bank, 1, &req(5, 7, 0x0001)), vec![0x85, 3]);
    assert!(!bank.coil(1, 7));
}

#[test]
fn write_single_register_updates_bank_and_echoes() {
    let bank = Bank::new();
    let pdu = req(6, 65535, 0xBEEF);
    assert_eq!(answer(&bank, 4, &pdu), pdu);
    assert_eq!(bank.holding(4, 65535), 0xBEEF);
}

#[test]
fn write_multiple_coils_updates_bank() {
    let bank = Bank::new();
    bank.set_coil(1, 10, true);
    let resp = answer(&bank, 1, &multi(15, 10, 10, &[0b1100_1010, 0b01]));
    assert_eq!(resp, req(15, 10, 10));
    let got: Vec<bool> = (10..20).map(|a| bank.coil(1, a)).collect();
    let want = [
        false, true, false, true, false, false, true, true, true, false,
    ];
    assert_eq!(got, want);
}

#[test]
fn write_multiple_registers_updates_bank() {
    let bank = Bank::new();
    let resp = answer(&bank, 9, &multi(16, 65534, 2, &[0, 1, 0xFF, 0xFE]));
    assert_eq!(resp, req(16, 65534, 2));
    assert_eq!(bank.holding(9, 65534), 1);
    assert_eq!(bank.holding(9, 65535), 0xFFFE);
}

#[test]
fn unknown_function_is_exception_01() {
    let bank = Bank::new();
    for function in [0u8, 7, 8, 17, 22, 23, 43, 0x7F, 0x80, 0xFF] {
        let resp = answer(&bank, 1, &[function, 0, 0, 0, 1]);
        assert_eq!(resp, vec![function | 0x80, 1], "fc {function}");
    }
    assert_eq!(answer(&bank, 1, &[0x2B]), vec![0xAB, 1]);
}

#[test]
fn quantity_out_of_range_is_exception_03() {
    let bank = Bank::new();
    let cases = [
        (1, 0),
        (1, 2001),
        (2, 0),
        (2, 2001),
        (3, 0),
        (3, 126),
        (4, 0),
        (4, 126),
    ];
    for (function, qty) in cases {
        let resp = answer(&bank, 1, &req(function, 0, qty));
        assert_eq!(resp, vec![function | 0x80, 3], "fc {function} qty {qty}");
    }
    // FC15: 1969 coils needs 247 bytes, still too many.
    let resp = answer(&bank, 1, &multi(15, 0, 1969, &[0; 247]));
    assert_eq!(resp, vec![0x8F, 3]);
    assert_eq!(answer(&bank, 1, &multi(15, 0, 0, &[])), vec![0x8F, 3]);
    let resp = answer(&bank, 1, &multi(16, 0, 124, &[0; 248]));
    assert_eq!(resp, vec![0x90, 3]);
    assert_eq!(answer(&bank, 1, &multi(16, 0, 0, &[])), vec![0x90, 3]);
}

#[test]
fn write_limits_are_accepted() {
    let bank = Bank::new();
    assert_eq!(answer(&bank, 1, &multi(15, 0, 1968, &[0xFF; 246]))[0], 15);
    assert!(bank.coil(1, 1967));
    assert!(!bank.coil(1, 1968));
    assert_eq!(answer(&bank, 1, &multi(16, 0, 123, &[0x01; 246]))[0], 16);
    assert_eq!(bank.holding(1, 122), 0x0101);
}

#[test]
fn range_past_65535_is_exception_02() {
    let bank = Bank::new();
    for function in [1u8, 2, 3, 4] {
        let resp = answer(&bank, 1, &req(function, 65535, 2));
        assert_eq!(resp, vec![function | 0x80, 2], "fc {function}");
        // exactly to the end is fine
        assert_eq!(answer(&bank, 1, &req(function, 65535, 1))[0], function);
    }
    assert_eq!(answer(&bank, 1, &multi(15, 65535, 2, &[3])), vec![0x8F, 2]);
    assert_eq!(
        answer(&bank, 1, &multi(16, 65535, 2, &[0; 4])),
        vec![0x90, 2]
    );
    assert_eq!(bank.holding(1, 65535), 0, "rejected write must not apply");
}

#[test]
fn quantity_is_checked_before_address() {
    let bank = Bank::new();
    assert_eq!(answer(&bank, 1, &req(3, 65535, 200)), vec![0x83, 3]);
}

#[test]
fn truncated_or_padded_bodies_are_exception_03() {
    let bank = Bank::new();
    for function in [1u8, 2, 3, 4, 5, 6] {
        for body_len in [0usize, 1, 2, 3, 5, 10] {
            let mut pdu = req(function, 0, 1);
            pdu.resize(1 + body_len, 0);
            if body_len == 4 {
                continue;
            }
            let resp = answer(&bank, 1, &pdu);
            assert_eq!(
                resp,
                vec![function | 0x80, 3],
                "fc {function} len {body_len}"
            );
        }
    }
    for function in [15u8, 16] {
        for len in 0..5 {
            let pdu = &multi(function, 0, 1, &[0, 0])[..1 + len];
            assert_eq!(answer(&bank, 1, pdu), vec![function | 0x80, 3]);
        }
    }
}

#[test]
fn byte_count_mismatch_is_exception_03() {
    let bank = Bank::new();
    // FC16 qty 2 needs 4 bytes: byte count says 3
    assert_eq!(
        answer(&bank, 1, &multi(16, 0, 2, &[0, 1, 2])),
        vec![0x90, 3]
    );
    // byte count right, data short
    let mut pdu = multi(16, 0, 2, &[0, 1, 2, 3]);
    pdu.pop();
    assert_eq!(answer(&bank, 1, &pdu), vec![0x90, 3]);
    // data long
    let mut pdu = multi(16, 0, 2, &[0, 1, 2, 3]);
    pdu.push(9);
    assert_eq!(answer(&bank, 1, &pdu), vec![0x90, 3]);
    // FC15 9 coils need 2 bytes
    assert_eq!(answer(&bank, 1, &multi(15, 0, 9, &[0xFF])), vec![0x8F, 3]);
    assert_eq!(
        answer(&bank, 1, &multi(15, 0, 8, &[0xFF, 0])),
        vec![0x8F, 3]
    );
    assert_eq!(bank.holding(1, 0), 0);
    assert!(!bank.coil(1, 0));
}

#[test]
fn injected_exception_applies_to_overlapping_ranges_only() {
    let bank = Bank::new();
    bank.set_holdings(1, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    bank.add_exception(1, 3, 5, 2, 4);
    assert_eq!(
        answer(&bank, 1, &req(3, 0, 5)),
        vec![3, 10, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5]
    );
    assert_eq!(answer(&bank, 1, &req(3, 0, 6)), vec![0x83, 4]);
    assert_eq!(answer(&bank, 1, &req(3, 6, 1)), vec![0x83, 4]);
    assert_eq!(
        answer(&bank, 1, &req(3, 7, 3)),
        vec![3, 6, 0, 8, 0, 9, 0, 10]
    );
    assert_eq!(answer(&bank, 1, &req(4, 5, 1))[0], 4, "other function");
    assert_eq!(answer(&bank, 2, &req(3, 5, 1))[0], 3, "other unit");
}

#[test]
fn injected_exception_blocks_writes() {
    let bank = Bank::new();
    bank.add_exception(1, 6, 10, 1, 2);
    bank.add_exception(1, 16, 20, 1, 0x0B);
    assert_eq!(answer(&bank, 1, &req(6, 10, 99)), vec![0x86, 2]);
    assert_eq!(bank.holding(1, 10), 0);
    assert_eq!(answer(&bank, 1, &req(6, 11, 99)), req(6, 11, 99));
    assert_eq!(
        answer(&bank, 1, &multi(16, 18, 3, &[0; 6])),
        vec![0x90, 0x0B]
    );
    bank.clear_faults();
    assert_eq!(answer(&bank, 1, &req(6, 10, 99)), req(6, 10, 99));
    assert_eq!(bank.holding(1, 10), 99);
}

#[test]
fn silent_unit_gets_no_response_but_is_counted() {
    let bank = Bank::new();
    bank.set_silent(3, true);
    assert_eq!(handle_pdu(&bank, 3, &req(3, 0, 1)), None);
    assert_eq!(handle_pdu(&bank, 3, &[0xFF, 1, 2]), None);
    assert!(handle_pdu(&bank, 4, &req(3, 0, 1)).is_some());
    assert_eq!(bank.requests(), 3);
    bank.set_silent(3, false);
    assert!(handle_pdu(&bank, 3, &req(3, 0, 1)).is_some());
}

#[test]
fn empty_pdu_is_dropped() {
    let bank = Bank::new();
    assert_eq!(handle_pdu(&bank, 1, &[]), None);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Cheap deterministic fuzz: every function code with many body shapes.
    let bank = Bank::new();
    let mut seed: u32 = 0x1234_5678;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..20_000 {
        let len = (next() % 260) as usize;
        let mut pdu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = pdu.first_mut() {
            *first %= 20; // bias towards implemented function codes
        }
        if let Some(resp) = handle_pdu(&bank, 1, &pdu) {
            assert!(!resp.is_empty() && resp.len() <= 253);
            assert_eq!(resp[0] & 0x7F, pdu[0] & 0x7F);
        }
    }
}
