//! The vocabulary shared by point tables, mappings and Redis: point types, register data types,
//! byte orders and Modbus function codes.
//!
//! Names accepted here are exactly the names the point tables use (plus the long aliases that
//! VoltageEMS tables carry). An unknown name is an error listing the accepted ones, never a
//! silent default.

use std::fmt;
use std::str::FromStr;

/// The four kinds of point of the four-telemetry model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PointType {
    /// Telemetry (measurements), Redis suffix `T`.
    Telemetry,
    /// Signals (binary states), Redis suffix `S`.
    Signal,
    /// Controls (binary commands), Redis suffix `C`.
    Control,
    /// Adjustments (setpoints), Redis suffix `A`.
    Adjustment,
}

impl PointType {
    pub const ALL: [PointType; 4] = [
        PointType::Telemetry,
        PointType::Signal,
        PointType::Control,
        PointType::Adjustment,
    ];

    /// The one-letter suffix used in Redis keys (`comsrv:{ch}:T`).
    pub fn letter(self) -> &'static str {
        match self {
            PointType::Telemetry => "T",
            PointType::Signal => "S",
            PointType::Control => "C",
            PointType::Adjustment => "A",
        }
    }

    /// The lower-case name used in file names and `:config:{name}` keys.
    pub fn name(self) -> &'static str {
        match self {
            PointType::Telemetry => "telemetry",
            PointType::Signal => "signal",
            PointType::Control => "control",
            PointType::Adjustment => "adjustment",
        }
    }

    /// Binary point types carry 0/1 values.
    pub fn is_binary(self) -> bool {
        matches!(self, PointType::Signal | PointType::Control)
    }
}

impl fmt::Display for PointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a value as it sits in device registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    pub const NAMES: &'static str =
        "bool, u16, i16, u32, i32, u64, i64, f32, f64 (or uint16, int16, uint32, int32, uint64, int64, float32, float64)";

    /// How many 16-bit registers one value occupies.
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "bool" | "boolean" | "bit" => DataType::Bool,
            "u16" | "uint16" => DataType::U16,
            "i16" | "int16" => DataType::I16,
            "u32" | "uint32" => DataType::U32,
            "i32" | "int32" => DataType::I32,
            "u64" | "uint64" => DataType::U64,
            "i64" | "int64" => DataType::I64,
            "f32" | "float32" | "float" => DataType::F32,
            "f64" | "float64" | "double" => DataType::F64,
            _ => {
                return Err(format!(
                    "unknown data type {s:?}; expected one of {}",
                    DataType::NAMES
                ))
            }
        })
    }
}

/// How the bytes of a multi-byte value are laid out across registers.
///
/// Letters name the bytes of the big-endian value (A = most significant). Worked example for the
/// 32-bit value `0x11223344` (A=0x11, B=0x22, C=0x33, D=0x44), registers as read from the wire:
///
/// | order | register 0 | register 1 | usual name |
/// |-------|-----------|-----------|------------|
/// | ABCD  | `0x1122`  | `0x3344`  | big endian |
/// | DCBA  | `0x4433`  | `0x2211`  | little endian |
/// | BADC  | `0x2211`  | `0x4433`  | bytes swapped in each word |
/// | CDAB  | `0x3344`  | `0x1122`  | words swapped ("word little endian") |
///
/// For 64-bit values the same two rules apply to four registers (CDAB reverses the word order,
/// BADC swaps the bytes in each word, DCBA does both). For 16-bit values only the byte swap
/// matters: `AB` is accepted as ABCD and `BA` as BADC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum ByteOrder {
    #[default]
    ABCD,
    DCBA,
    BADC,
    CDAB,
}

impl ByteOrder {
    /// Whether the order of the 16-bit words is reversed relative to big endian.
    pub fn word_swap(self) -> bool {
        matches!(self, ByteOrder::DCBA | ByteOrder::CDAB)
    }

    /// Whether the two bytes inside each word are swapped relative to big endian.
    pub fn byte_swap(self) -> bool {
        matches!(self, ByteOrder::DCBA | ByteOrder::BADC)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ByteOrder::ABCD => "ABCD",
            ByteOrder::DCBA => "DCBA",
            ByteOrder::BADC => "BADC",
            ByteOrder::CDAB => "CDAB",
        }
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ByteOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "ABCD" | "AB" | "ABCDEFGH" | "BIG_ENDIAN" => ByteOrder::ABCD,
            "DCBA" | "HGFEDCBA" | "LITTLE_ENDIAN" => ByteOrder::DCBA,
            "BADC" | "BA" | "BADCFEHG" => ByteOrder::BADC,
            "CDAB" | "GHEFCDAB" => ByteOrder::CDAB,
            _ => {
                return Err(format!(
                    "unknown byte order {s:?}; expected one of ABCD, DCBA, BADC, CDAB (AB, BA for 16-bit)"
                ))
            }
        })
    }
}

/// The Modbus read function a mapping row is polled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ReadFunction {
    /// FC 1
    Coils,
    /// FC 2
    DiscreteInputs,
    /// FC 3
    HoldingRegisters,
    /// FC 4
    InputRegisters,
}

impl ReadFunction {
    pub fn code(self) -> u8 {
        match self {
            ReadFunction::Coils => 1,
            ReadFunction::DiscreteInputs => 2,
            ReadFunction::HoldingRegisters => 3,
            ReadFunction::InputRegisters => 4,
        }
    }

    /// Bit functions read single bits; register functions read 16-bit words.
    pub fn is_bits(self) -> bool {
        matches!(self, ReadFunction::Coils | ReadFunction::DiscreteInputs)
    }

    /// The read function for a function code as written in a mapping. Write codes map to the
    /// read that returns the same object, so control and adjustment points are read back:
    /// 5 and 15 (coils) read with 1, 6 and 16 (holding registers) read with 3.
    pub fn from_code(code: u8) -> Option<ReadFunction> {
        match code {
            1 | 5 | 15 => Some(ReadFunction::Coils),
            2 => Some(ReadFunction::DiscreteInputs),
            3 | 6 | 16 => Some(ReadFunction::HoldingRegisters),
            4 => Some(ReadFunction::InputRegisters),
            _ => None,
        }
    }
}

impl fmt::Display for ReadFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FC{:02}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_data_type_names_are_the_same_type() {
        assert_eq!("uint16".parse::<DataType>().unwrap(), DataType::U16);
        assert_eq!("FLOAT32".parse::<DataType>().unwrap(), DataType::F32);
        assert_eq!("f64".parse::<DataType>().unwrap(), DataType::F64);
    }

    #[test]
    fn unknown_data_type_is_an_error_listing_the_valid_names() {
        let e = "uint17".parse::<DataType>().unwrap_err();
        assert!(e.contains("uint17") && e.contains("u16"), "{e}");
    }

    #[test]
    fn unknown_byte_order_is_an_error() {
        assert!("ACBD".parse::<ByteOrder>().is_err());
        assert_eq!("ba".parse::<ByteOrder>().unwrap(), ByteOrder::BADC);
    }

    #[test]
    fn write_function_codes_read_back_the_same_object() {
        assert_eq!(ReadFunction::from_code(5), Some(ReadFunction::Coils));
        assert_eq!(
            ReadFunction::from_code(16),
            Some(ReadFunction::HoldingRegisters)
        );
        assert_eq!(ReadFunction::from_code(7), None);
    }
}
