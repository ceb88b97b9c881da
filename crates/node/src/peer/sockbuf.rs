//! `sndbuf-size` and `rcvbuf-size` (net options): fixed kernel buffers for the
//! replication sockets, as DRBD's `drbd_setbufsize` sets them on the socket it connects
//! and the one it listens on (accepted sockets inherit them). 0, the default, leaves the
//! kernel's autotuning alone.
//!
//! DRBD writes `sk_sndbuf` / `sk_rcvbuf` directly and locks them; from user space the
//! same is `SO_SNDBUFFORCE` / `SO_RCVBUFFORCE` (root; the kernel doubles the value it is
//! given, so half the size is passed), falling back to `SO_SNDBUF` / `SO_RCVBUF` (capped
//! by `net.core.wmem_max` / `rmem_max`) without the privilege.

use std::os::fd::AsRawFd;

/// The buffer sizes of a resource's replication sockets (bytes; 0: autotuned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SocketBuffers {
    /// `sndbuf-size`.
    pub(crate) send_bytes: u32,
    /// `rcvbuf-size`.
    pub(crate) receive_bytes: u32,
}

impl SocketBuffers {
    /// The sizes from the net options.
    pub(crate) fn of(settings: &rdbd_config::Settings) -> Self {
        SocketBuffers {
            send_bytes: settings.sndbuf_size_bytes,
            receive_bytes: settings.rcvbuf_size_bytes,
        }
    }

    /// Sets the configured sizes on `sock` (before it connects or listens).
    pub(crate) fn apply(&self, sock: &impl AsRawFd) -> std::io::Result<()> {
        let fd = sock.as_raw_fd();
        if self.send_bytes > 0 {
            set_buffer(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, self.send_bytes)?;
        }
        if self.receive_bytes > 0 {
            set_buffer(
                fd,
                libc::SO_RCVBUFFORCE,
                libc::SO_RCVBUF,
                self.receive_bytes,
            )?;
        }
        Ok(())
    }
}

/// One buffer option: the forced one first, the capped one without CAP_NET_ADMIN.
fn set_buffer(
    fd: std::os::fd::RawFd,
    forced: libc::c_int,
    capped: libc::c_int,
    size_bytes: u32,
) -> std::io::Result<()> {
    // The kernel stores twice what it is given (its bookkeeping overhead).
    let value = libc::c_int::try_from(size_bytes / 2).unwrap_or(libc::c_int::MAX);
    let set = |option: libc::c_int| {
        // SAFETY: `fd` is an open socket owned by the caller for the duration of the
        // call, and `value` is a c_int whose size is passed with it.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    match set(forced) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => set(capped),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(sock: &impl AsRawFd, option: libc::c_int) -> i64 {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket and an int-sized out buffer with its length.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
        i64::from(value)
    }

    #[tokio::test]
    async fn configured_sizes_are_the_socket_buffers_and_zero_keeps_the_default() {
        let default = tokio::net::TcpSocket::new_v4().unwrap();
        let default_send = buffer(&default, libc::SO_SNDBUF);
        SocketBuffers::default().apply(&default).unwrap();
        assert_eq!(buffer(&default, libc::SO_SNDBUF), default_send);

        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        let sizes = SocketBuffers {
            send_bytes: 6 << 20,
            receive_bytes: 3 << 20,
        };
        sizes.apply(&sock).unwrap();
        // Root (the tests run as root) gets the sizes exactly, above wmem_max/rmem_max.
        assert_eq!(buffer(&sock, libc::SO_SNDBUF), 6 << 20);
        assert_eq!(buffer(&sock, libc::SO_RCVBUF), 3 << 20);
    }
}
