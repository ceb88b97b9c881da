//! The replication engine: sans-I/O state machines of DRBD 8.4 and their drivers.
