//! RS-485 direction control through the kernel (`TIOCSRS485` with `struct serial_rs485`).
//!
//! With kernel RS-485 mode the UART driver toggles RTS (wired to the transceiver's driver
//! enable) exactly around each frame, with the configured delays: far more precise than
//! toggling RTS from user space. Ports without it (a pty, USB adapters with automatic direction)
//! answer ENOTTY/EINVAL: the caller logs that once and goes on.

use std::os::fd::RawFd;
use voltage_core::config::Rs485Config;

/// `struct serial_rs485` from `<linux/serial.h>` (32 bytes on every architecture).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SerialRs485 {
    pub flags: u32,
    pub delay_rts_before_send: u32,
    pub delay_rts_after_send: u32,
    pub padding: [u32; 5],
}

pub const SER_RS485_ENABLED: u32 = 1 << 0;
pub const SER_RS485_RTS_ON_SEND: u32 = 1 << 1;
pub const SER_RS485_RTS_AFTER_SEND: u32 = 1 << 2;
pub const SER_RS485_RX_DURING_TX: u32 = 1 << 4;

/// `TIOCSRS485` on the generic ioctl layout (x86, ARM, AArch64, RISC-V).
pub const TIOCSRS485: u32 = 0x542F;

nix::ioctl_write_ptr_bad!(tiocsrs485, TIOCSRS485, SerialRs485);

impl SerialRs485 {
    pub fn from_config(c: &Rs485Config) -> SerialRs485 {
        let mut flags = 0;
        if c.enabled {
            flags |= SER_RS485_ENABLED;
        }
        if c.rts_on_send {
            flags |= SER_RS485_RTS_ON_SEND;
        }
        if c.rts_after_send {
            flags |= SER_RS485_RTS_AFTER_SEND;
        }
        if c.rx_during_tx {
            flags |= SER_RS485_RX_DURING_TX;
        }
        SerialRs485 {
            flags,
            delay_rts_before_send: c.delay_before_send_ms,
            delay_rts_after_send: c.delay_after_send_ms,
            padding: [0; 5],
        }
    }
}

/// Applies `c` to the open port `fd`.
pub fn apply(fd: RawFd, c: &Rs485Config) -> nix::Result<()> {
    let s = SerialRs485::from_config(c);
    // SAFETY: `fd` is an open descriptor owned by the caller for the duration of the call, and
    // `s` is a valid, properly laid out `struct serial_rs485` that the kernel only reads.
    unsafe { tiocsrs485(fd, &s) }.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn serial_rs485_matches_the_kernel_abi() {
        assert_eq!(size_of::<SerialRs485>(), 32);
        assert_eq!(offset_of!(SerialRs485, flags), 0);
        assert_eq!(offset_of!(SerialRs485, delay_rts_before_send), 4);
        assert_eq!(offset_of!(SerialRs485, delay_rts_after_send), 8);
        assert_eq!(offset_of!(SerialRs485, padding), 12);
        assert_eq!(TIOCSRS485, 0x542F);
    }

    #[test]
    fn config_flags_follow_the_kernel_bits() {
        let s = SerialRs485::from_config(&Rs485Config {
            enabled: true,
            rts_on_send: true,
            rts_after_send: false,
            delay_before_send_ms: 2,
            delay_after_send_ms: 3,
            rx_during_tx: true,
        });
        assert_eq!(s.flags, 0b10011);
        assert_eq!((s.delay_rts_before_send, s.delay_rts_after_send), (2, 3));
    }

    #[test]
    fn a_pty_refuses_rs485_mode_with_an_error_not_a_crash() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        use std::os::fd::AsRawFd;
        assert!(apply(pty.master.as_raw_fd(), &Rs485Config::default()).is_err());
    }
}
