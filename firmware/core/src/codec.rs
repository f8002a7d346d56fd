//! Register value codecs: Modbus registers to engineering values and back.
//!
//! Decoding is total: every combination of data type, byte order and register slice either
//! yields a value or a [`CodecError`], never a panic, because the slice comes from a device.
//! Encoding is the exact inverse and exists for the simulator, tests and (later) writes.

use crate::types::{ByteOrder, DataType};

/// Why a register slice could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("{data_type} needs {needed} registers, got {got}")]
    ShortRead {
        data_type: DataType,
        needed: u16,
        got: usize,
    },
    #[error("bit position {0} is outside 0..=15")]
    BadBit(u8),
    #[error("value {value} does not fit {data_type}")]
    OutOfRange { value: f64, data_type: DataType },
}

/// Puts the registers into big-endian byte order (ABCD...) for `order`.
fn to_big_endian(regs: &[u16], order: ByteOrder) -> Vec<u8> {
    let mut words: Vec<u16> = regs.to_vec();
    if order.word_swap() {
        words.reverse();
    }
    let mut out = Vec::with_capacity(words.len() * 2);
    for w in words {
        let w = if order.byte_swap() { w.swap_bytes() } else { w };
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// The inverse of [`to_big_endian`].
fn from_big_endian(bytes: &[u8], order: ByteOrder) -> Vec<u16> {
    let mut words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            let w = u16::from_be_bytes([c[0], c[1]]);
            if order.byte_swap() {
                w.swap_bytes()
            } else {
                w
            }
        })
        .collect();
    if order.word_swap() {
        words.reverse();
    }
    words
}

/// Decodes the raw value of one point from its registers (`regs` starts at the point's address).
///
/// `bit` selects one bit of the first register for `Bool`; without it a `Bool` is true when the
/// (16-bit) register is non-zero. 64-bit integers above 2^53 lose precision as `f64`.
pub fn decode(
    data_type: DataType,
    order: ByteOrder,
    regs: &[u16],
    bit: Option<u8>,
) -> Result<f64, CodecError> {
    let needed = data_type.registers();
    if regs.len() < needed as usize {
        return Err(CodecError::ShortRead {
            data_type,
            needed,
            got: regs.len(),
        });
    }
    let regs = &regs[..needed as usize];
    if data_type == DataType::Bool {
        let w = if order.byte_swap() {
            regs[0].swap_bytes()
        } else {
            regs[0]
        };
        return match bit {
            Some(b) if b > 15 => Err(CodecError::BadBit(b)),
            Some(b) => Ok(((w >> b) & 1) as f64),
            None => Ok(if w != 0 { 1.0 } else { 0.0 }),
        };
    }
    let b = to_big_endian(regs, order);
    Ok(match data_type {
        DataType::U16 => u16::from_be_bytes([b[0], b[1]]) as f64,
        DataType::I16 => i16::from_be_bytes([b[0], b[1]]) as f64,
        DataType::U32 => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DataType::I32 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DataType::F32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
        DataType::U64 => u64::from_be_bytes(b[..8].try_into().expect("8 bytes")) as f64,
        DataType::I64 => i64::from_be_bytes(b[..8].try_into().expect("8 bytes")) as f64,
        DataType::F64 => f64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        DataType::Bool => unreachable!("handled above"),
    })
}

/// Encodes a raw value into registers for `data_type` and `order`. Integers are rounded to the
/// nearest whole number and must fit the type.
pub fn encode(data_type: DataType, order: ByteOrder, value: f64) -> Result<Vec<u16>, CodecError> {
    let range_err = || CodecError::OutOfRange { value, data_type };
    let int = |lo: f64, hi: f64| -> Result<f64, CodecError> {
        let r = value.round();
        if r.is_finite() && r >= lo && r <= hi {
            Ok(r)
        } else {
            Err(range_err())
        }
    };
    let bytes: Vec<u8> = match data_type {
        DataType::Bool => {
            let w: u16 = if value != 0.0 { 1 } else { 0 };
            return Ok(vec![if order.byte_swap() { w.swap_bytes() } else { w }]);
        }
        DataType::U16 => (int(0.0, u16::MAX as f64)? as u16).to_be_bytes().to_vec(),
        DataType::I16 => (int(i16::MIN as f64, i16::MAX as f64)? as i16)
            .to_be_bytes()
            .to_vec(),
        DataType::U32 => (int(0.0, u32::MAX as f64)? as u32).to_be_bytes().to_vec(),
        DataType::I32 => (int(i32::MIN as f64, i32::MAX as f64)? as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (int(0.0, u64::MAX as f64)? as u64).to_be_bytes().to_vec(),
        DataType::I64 => (int(i64::MIN as f64, i64::MAX as f64)? as i64)
            .to_be_bytes()
            .to_vec(),
        DataType::F32 => {
            if value.is_finite() && value.abs() > f32::MAX as f64 {
                return Err(range_err());
            }
            (value as f32).to_be_bytes().to_vec()
        }
        DataType::F64 => value.to_be_bytes().to_vec(),
    };
    Ok(from_big_endian(&bytes, order))
}

/// Applies `value = raw * scale + offset`.
pub fn engineering(raw: f64, scale: f64, offset: f64) -> f64 {
    raw * scale + offset
}

/// The inverse of [`engineering`]; `None` when `scale` is zero.
pub fn raw_from_engineering(value: f64, scale: f64, offset: f64) -> Option<f64> {
    if scale == 0.0 {
        None
    } else {
        Some((value - offset) / scale)
    }
}

/// Formats a value the way Redis stores it: six decimals (`1234.000000`). Non-finite values
/// (a NaN float register) are stored as `nan`, `inf` or `-inf` so readers can tell them apart.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        let s = format!("{v:.6}");
        if s == "-0.000000" {
            "0.000000".to_string()
        } else {
            s
        }
    }
}

/// Formats a binary value (`0` or `1`), applying `reverse`.
pub fn format_binary(v: f64, reverse: bool) -> String {
    let on = v != 0.0;
    if on != reverse { "1" } else { "0" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORDERS: [ByteOrder; 4] = [
        ByteOrder::ABCD,
        ByteOrder::DCBA,
        ByteOrder::BADC,
        ByteOrder::CDAB,
    ];

    #[test]
    fn worked_example_of_every_byte_order_for_0x11223344() {
        let expect = [
            (ByteOrder::ABCD, [0x1122, 0x3344]),
            (ByteOrder::DCBA, [0x4433, 0x2211]),
            (ByteOrder::BADC, [0x2211, 0x4433]),
            (ByteOrder::CDAB, [0x3344, 0x1122]),
        ];
        for (order, regs) in expect {
            assert_eq!(
                decode(DataType::U32, order, &regs, None).unwrap(),
                0x1122_3344 as f64,
                "{order}"
            );
            assert_eq!(
                encode(DataType::U32, order, 0x1122_3344 as f64).unwrap(),
                regs
            );
        }
    }

    #[test]
    fn float32_1_5_in_each_order() {
        // 1.5f32 = 0x3FC00000
        assert_eq!(
            decode(DataType::F32, ByteOrder::ABCD, &[0x3FC0, 0x0000], None).unwrap(),
            1.5
        );
        assert_eq!(
            decode(DataType::F32, ByteOrder::CDAB, &[0x0000, 0x3FC0], None).unwrap(),
            1.5
        );
        assert_eq!(
            decode(DataType::F32, ByteOrder::BADC, &[0xC03F, 0x0000], None).unwrap(),
            1.5
        );
        assert_eq!(
            decode(DataType::F32, ByteOrder::DCBA, &[0x0000, 0xC03F], None).unwrap(),
            1.5
        );
    }

    #[test]
    fn sixty_four_bit_word_swap_reverses_all_four_words() {
        let regs = [0x0004, 0x0003, 0x0002, 0x0001];
        assert_eq!(
            decode(DataType::U64, ByteOrder::CDAB, &regs, None).unwrap(),
            0x0001_0002_0003_0004u64 as f64
        );
    }

    #[test]
    fn signed_values_are_sign_extended() {
        assert_eq!(
            decode(DataType::I16, ByteOrder::ABCD, &[0xFFFF], None).unwrap(),
            -1.0
        );
        assert_eq!(
            decode(DataType::I32, ByteOrder::ABCD, &[0xFFFF, 0xFFFE], None).unwrap(),
            -2.0
        );
    }

    #[test]
    fn bool_reads_one_bit_or_the_whole_register() {
        assert_eq!(
            decode(DataType::Bool, ByteOrder::ABCD, &[0b100], Some(2)).unwrap(),
            1.0
        );
        assert_eq!(
            decode(DataType::Bool, ByteOrder::ABCD, &[0b100], Some(1)).unwrap(),
            0.0
        );
        assert_eq!(
            decode(DataType::Bool, ByteOrder::ABCD, &[0x0100], None).unwrap(),
            1.0
        );
        assert_eq!(
            decode(DataType::Bool, ByteOrder::ABCD, &[1], Some(16)),
            Err(CodecError::BadBit(16))
        );
    }

    #[test]
    fn short_slices_are_errors_not_panics() {
        assert!(matches!(
            decode(DataType::F64, ByteOrder::ABCD, &[1, 2, 3], None),
            Err(CodecError::ShortRead {
                needed: 4,
                got: 3,
                ..
            })
        ));
        assert!(decode(DataType::U16, ByteOrder::ABCD, &[], None).is_err());
    }

    #[test]
    fn encode_rejects_values_that_do_not_fit() {
        assert!(encode(DataType::U16, ByteOrder::ABCD, 70000.0).is_err());
        assert!(encode(DataType::I16, ByteOrder::ABCD, -40000.0).is_err());
        assert!(encode(DataType::U32, ByteOrder::ABCD, f64::NAN).is_err());
    }

    #[test]
    fn six_decimal_format_and_binary_reverse() {
        assert_eq!(format_value(1234.0), "1234.000000");
        assert_eq!(format_value(-0.0000001), "0.000000");
        assert_eq!(format_value(f64::NAN), "nan");
        assert_eq!(format_binary(1.0, false), "1");
        assert_eq!(format_binary(1.0, true), "0");
        assert_eq!(format_binary(0.0, true), "1");
    }

    #[test]
    fn scale_and_offset_round_trip() {
        let raw = raw_from_engineering(engineering(123.0, 0.1, -40.0), 0.1, -40.0).unwrap();
        assert!((raw - 123.0).abs() < 1e-9);
        assert_eq!(raw_from_engineering(1.0, 0.0, 0.0), None);
    }

    proptest! {
        #[test]
        fn integers_round_trip_in_every_order(v in any::<i32>(), o in 0usize..4) {
            let order = ORDERS[o];
            let regs = encode(DataType::I32, order, v as f64).unwrap();
            prop_assert_eq!(decode(DataType::I32, order, &regs, None).unwrap(), v as f64);
        }

        #[test]
        fn f64_round_trips_bit_exact_in_every_order(v in any::<f64>().prop_filter("finite", |v| v.is_finite()), o in 0usize..4) {
            let order = ORDERS[o];
            let regs = encode(DataType::F64, order, v).unwrap();
            prop_assert_eq!(decode(DataType::F64, order, &regs, None).unwrap().to_bits(), v.to_bits());
        }

        #[test]
        fn decode_never_panics(regs in proptest::collection::vec(any::<u16>(), 0..6), o in 0usize..4, bit in proptest::option::of(0u8..20)) {
            for dt in [DataType::Bool, DataType::U16, DataType::I16, DataType::U32, DataType::I32,
                       DataType::U64, DataType::I64, DataType::F32, DataType::F64] {
                let _ = decode(dt, ORDERS[o], &regs, bit);
            }
        }
    }
}
