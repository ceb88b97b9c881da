//! The rdbd node daemon as a library: resources, NBD exports, control socket, status file.
