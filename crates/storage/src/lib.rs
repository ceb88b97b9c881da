//! Local storage engine: io_uring with a pread/pwrite fallback, O_DIRECT.
