//! The client's IP: the socket peer, unless the peer is a trusted proxy, in
//! which case `X-Forwarded-For` is read from the right, skipping trusted hops.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use poem::Request;

pub struct ClientIpResolver {
    trusted_proxies: Vec<IpNet>,
}

impl ClientIpResolver {
    pub fn new(trusted_proxies: Vec<IpNet>) -> Self {
        ClientIpResolver { trusted_proxies }
    }

    pub fn resolve(&self, req: &Request) -> IpAddr {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|addr| addr.ip().to_canonical())
            // Not a TCP peer (e.g. a Unix socket): one shared bucket.
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        self.client_of(peer, &forwarded)
    }

    fn client_of(&self, peer: IpAddr, forwarded: &str) -> IpAddr {
        let mut client = peer;
        // Rightmost first: only hops added by trusted proxies can be believed.
        for hop in forwarded.rsplit(',') {
            if !self.is_trusted(client) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => break,
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(trusted: &[&str]) -> ClientIpResolver {
        ClientIpResolver::new(trusted.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_forge_forwarded_for() {
        let r = resolver(&["10.0.0.0/8"]);
        assert_eq!(r.client_of(ip("203.0.113.9"), "1.2.3.4"), ip("203.0.113.9"));
        assert_eq!(
            resolver(&[]).client_of(ip("10.0.0.1"), "1.2.3.4"),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let r = resolver(&["10.0.0.0/8"]);
        assert_eq!(r.client_of(ip("10.0.0.1"), "1.2.3.4"), ip("1.2.3.4"));
        // The client forged the leftmost entry; the proxy chain appended the real one.
        assert_eq!(
            r.client_of(ip("10.0.0.1"), "6.6.6.6, 1.2.3.4, 10.0.0.2"),
            ip("1.2.3.4")
        );
        assert_eq!(r.client_of(ip("10.0.0.1"), ""), ip("10.0.0.1"));
        assert_eq!(
            r.client_of(ip("10.0.0.1"), "garbage, 10.0.0.3"),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonical() {
        let r = resolver(&["127.0.0.1/32"]);
        assert_eq!(
            r.client_of(ip("127.0.0.1"), "::ffff:198.51.100.7"),
            ip("198.51.100.7")
        );
    }
}
