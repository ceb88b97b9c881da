//! How a [`crate::LocalDisk`] is opened: engine choice, `O_DIRECT`, read-only.

/// Which I/O engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// io_uring when the kernel allows it, else the synchronous fallback.
    #[default]
    Auto,
    /// io_uring or fail to open.
    IoUring,
    /// `pread`/`pwrite` on a small thread pool.
    Sync,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Engine::Auto),
            "io_uring" | "io-uring" | "iouring" | "uring" => Ok(Engine::IoUring),
            "sync" | "threads" => Ok(Engine::Sync),
            _ => Err(format!(
                "unknown storage engine '{s}' (expected auto, io_uring or sync)"
            )),
        }
    }
}

/// Options for [`crate::LocalDisk::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// Open with `O_DIRECT` (bypass the page cache). Falls back to buffered
    /// I/O with a warning when the file system refuses `O_DIRECT`.
    pub direct: bool,
    /// Open read-only; writes, discards and write-zeroes are refused.
    pub read_only: bool,
    /// The I/O engine.
    pub engine: Engine,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            direct: true,
            read_only: false,
            engine: Engine::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_direct_read_write_auto() {
        let o = DiskOptions::default();
        assert!(o.direct && !o.read_only);
        assert_eq!(o.engine, Engine::Auto);
        assert_eq!("io_uring".parse::<Engine>(), Ok(Engine::IoUring));
        assert_eq!("SYNC".parse::<Engine>(), Ok(Engine::Sync));
        assert!("aio".parse::<Engine>().is_err());
    }
}
