//! NBD protocol codec and pipelined async server.
