//! Modbus RTU over serial lines (socat pty pairs). These tests need real serial ioctls, which
//! qemu-user does not translate: the cross run skips every test whose name starts with `rtu_`.
