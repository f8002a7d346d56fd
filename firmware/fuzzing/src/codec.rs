//! Register value codecs: every data type and byte order, from registers a device sent and from
//! values the engineering side asks to write.

use arbitrary::{Arbitrary, Unstructured};
use voltage_core::codec;
use voltage_core::types::{ByteOrder, DataType};

const TYPES: [DataType; 9] = [
    DataType::Bool,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
];
const ORDERS: [ByteOrder; 4] = [
    ByteOrder::ABCD,
    ByteOrder::DCBA,
    ByteOrder::BADC,
    ByteOrder::CDAB,
];

#[derive(Debug, Arbitrary)]
struct Case {
    data_type: u8,
    order: u8,
    regs: Vec<u16>,
    bit: Option<u8>,
    value: f64,
    scale: f64,
    offset: f64,
    /// The names of a type and an order as a CSV cell would give them.
    names: (String, String),
}

pub fn check(data: &[u8]) {
    let Ok(c) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let dt = TYPES[c.data_type as usize % TYPES.len()];
    let order = ORDERS[c.order as usize % ORDERS.len()];
    let _ = c.names.0.parse::<DataType>();
    let _ = c.names.1.parse::<ByteOrder>();
    // The parsers accept their own names.
    assert_eq!(dt.as_str().parse::<DataType>(), Ok(dt));
    assert_eq!(order.as_str().parse::<ByteOrder>(), Ok(order));

    let n = dt.registers() as usize;
    match codec::decode(dt, order, &c.regs, c.bit) {
        Err(codec::CodecError::ShortRead { got, .. }) => assert!(got < n && got == c.regs.len()),
        Err(codec::CodecError::BadBit(b)) => assert!(dt == DataType::Bool && b > 15),
        Err(e) => panic!("decode refused {:?} as {dt} {order}: {e}", c.regs),
        Ok(v) => {
            assert!(c.regs.len() >= n);
            if dt == DataType::Bool {
                assert!(v == 0.0 || v == 1.0, "a bool decoded as {v}");
            } else if !v.is_nan()
                && (matches!(dt, DataType::F32 | DataType::F64) || v.abs() < 9.0e15)
            {
                // decode∘encode: the registers come back (64-bit integers above 2^53 and NaN
                // payloads are not exact as f64).
                let back = codec::encode(dt, order, v).expect("a decoded value encodes");
                assert_eq!(back, c.regs[..n], "{dt} {order}: {v} does not round trip");
            }
            let _ = codec::format_value(v);
        }
    }

    // encode∘decode: a value that fits comes back (integers rounded).
    if let Ok(regs) = codec::encode(dt, order, c.value) {
        assert_eq!(regs.len(), n, "{dt} encoded into {} registers", regs.len());
        let v = codec::decode(dt, order, &regs, None).expect("encoded registers decode");
        let want = match dt {
            DataType::Bool => (c.value != 0.0) as u8 as f64,
            DataType::F32 => c.value as f32 as f64,
            DataType::F64 => c.value,
            _ => c.value.round(),
        };
        let same = v == want || (v.is_nan() && want.is_nan());
        let wide = matches!(dt, DataType::U64 | DataType::I64) && want.abs() >= 9.0e15;
        assert!(
            same || wide,
            "{dt} {order}: {} encoded, {v} decoded",
            c.value
        );
    }

    let eng = codec::engineering(c.value, c.scale, c.offset);
    assert_eq!(
        codec::raw_from_engineering(eng, c.scale, c.offset).is_none(),
        c.scale == 0.0
    );
    let _ = codec::format_binary(c.value, c.bit.is_some());
}
