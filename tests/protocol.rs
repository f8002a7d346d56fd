//! Protocol testing (seed sections 3.1 and 3.2): Modbus TCP against the project's simulator and
//! against pymodbus (a peer the firmware did not write), and the virtual protocol.
