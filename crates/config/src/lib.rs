//! drbd.conf and TOML configuration model and parsers for rdbd.
