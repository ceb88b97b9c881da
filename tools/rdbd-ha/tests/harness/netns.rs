//! Two network namespaces joined by a veth pair, created by the test and deleted on
//! drop (the same shape as `rdbd_tests::netns::NetPair`, kept here so that
//! `cargo test -p rdbd-ha` needs no other crate). The link can be cut and healed, and a
//! test can open a socket inside either namespace.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Namespaces `ns[i]` with interface `veth[i]` holding `addr[i]/8`.
pub struct NetPair {
    pub ns: [String; 2],
    pub veth: [String; 2],
    pub addr: [String; 2],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetPair {
    pub fn new() -> NetPair {
        // Unique per process and pair; interface names stay within IFNAMSIZ.
        let n = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst) % 100
        );
        let ns = [format!("rha{n}a"), format!("rha{n}b")];
        let veth = [format!("rh{n}a"), format!("rh{n}b")];
        let addr = ["10.213.0.1".to_string(), "10.214.0.1".to_string()];
        for name in &ns {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", &veth[0], "netns", &ns[0], "type", "veth", "peer", "name", &veth[1],
            "netns", &ns[1],
        ]);
        for i in 0..2 {
            ip(&[
                "-n",
                &ns[i],
                "addr",
                "add",
                &format!("{}/8", addr[i]),
                "dev",
                &veth[i],
            ]);
            ip(&["-n", &ns[i], "link", "set", &veth[i], "up"]);
        }
        NetPair { ns, veth, addr }
    }

    /// `[(namespace, interface); 2]` for `harness::Options::netns`.
    pub fn nodes(&self) -> [(String, String); 2] {
        [0, 1].map(|i| (self.ns[i].clone(), self.veth[i].clone()))
    }

    /// `program` run inside namespace `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[i], program]);
        c
    }

    /// Both ends down: a partition.
    pub fn cut(&self) {
        for i in 0..2 {
            ip(&["-n", &self.ns[i], "link", "set", &self.veth[i], "down"]);
        }
    }

    /// Both ends up again.
    pub fn heal(&self) {
        for i in 0..2 {
            ip(&["-n", &self.ns[i], "link", "set", &self.veth[i], "up"]);
        }
    }

    /// Runs `make` on a thread that entered namespace `i` (setns only changes the
    /// calling thread), so sockets it creates live in that namespace.
    pub fn inside<T: Send + 'static>(
        &self,
        i: usize,
        make: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.ns[i]);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns(2) on this thread with a namespace fd we keep open for the call.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            make()
        })
        .join()
        .expect("thread in the namespace")
    }

    /// A UDP socket in namespace `i` bound to `0.0.0.0:port` (SO_REUSEADDR, so it can
    /// share rdbd-ha's port) and to the namespace's veth.
    pub fn udp_socket(&self, i: usize, port: u16) -> UdpSocket {
        let dev = self.veth[i].clone();
        self.inside(i, move || {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind_device(Some(dev.as_bytes())).unwrap();
            let any = std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, port);
            s.bind(&any.into()).unwrap();
            s.into()
        })
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for name in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}
