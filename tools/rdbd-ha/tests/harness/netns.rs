//! Two network namespaces joined by a veth pair: `rdbd_tests::netns::NetPair` (created by
//! the test, deleted on drop, the link cut and healed, code run inside a namespace), plus
//! what only rdbd-ha's tests need from it ([`HaNetPair`]).

use std::net::UdpSocket;

pub use rdbd_tests::netns::NetPair;

/// rdbd-ha's uses of a [`NetPair`].
pub trait HaNetPair {
    /// `[(namespace, interface); 2]` for `harness::Options::netns`.
    fn nodes(&self) -> [(String, String); 2];

    /// A UDP socket in namespace `i` bound to `0.0.0.0:port` (SO_REUSEADDR, so it can
    /// share rdbd-ha's port) and to the namespace's veth.
    fn udp_socket(&self, i: usize, port: u16) -> UdpSocket;
}

impl HaNetPair for NetPair {
    fn nodes(&self) -> [(String, String); 2] {
        [0, 1].map(|i| (self.ns[i].clone(), self.veth[i].clone()))
    }

    fn udp_socket(&self, i: usize, port: u16) -> UdpSocket {
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
