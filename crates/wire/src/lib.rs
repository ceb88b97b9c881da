//! DRBD 8.4 wire protocol (protocol version 101): headers and packets, no sockets.
