//! Who is on the other end: the client IP behind trusted reverse proxies
//! (PITFALLS 26), and the address block a rate limit counts against.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

/// An IP address block (`192.0.2.0/24`, `2001:db8::/32`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// Parses an address or a CIDR block; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Self> {
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => ipnet::IpNet::from(text.parse::<IpAddr>().ok()?),
        };
        Some(Self(canonical(net)))
    }

    /// Whether `ip` lies in the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) as the IPv4 block it
/// maps, so that it matches the canonical addresses it is compared with.
fn canonical(net: ipnet::IpNet) -> ipnet::IpNet {
    let ipnet::IpNet::V6(v6) = net else {
        return net;
    };
    match (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
        (Some(v4), Some(prefix)) => ipnet::Ipv4Net::new(v4, prefix).map_or(net, ipnet::IpNet::V4),
        _ => net,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// nearest `X-Forwarded-For` hop that is not itself a trusted proxy.
///
/// Only the rightmost entries are believed: everything left of the first
/// untrusted hop was written by the client and can say anything.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // A garbled entry: stop at the last address we could trust.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// Parses one `X-Forwarded-For` entry: an address, possibly with a port
/// (`192.0.2.1:1234`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    None
}

/// The key a rate limit counts against: the IPv4 address, or the /64 of an
/// IPv6 address (one subscriber's allocation).
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let odd = IpNet::parse("192.168.1.128/25").unwrap();
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.1.100")));
        assert!(
            IpNet::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8:1::1"))
        );
        assert!(IpNet::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("10.0.0.0/+8").is_none());
        assert!(IpNet::parse("nope").is_none());
        assert!(IpNet::parse("10.0.0.0/").is_none());
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.9.8.7")));
        assert!(!mapped.contains(ip("11.0.0.1")));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        // Through two trusted hops, the first untrusted address is the client;
        // the spoofed leftmost entry is never reached.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("203.0.113.7")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        let mut garbled = HeaderMap::new();
        garbled.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, junk"),
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &garbled, &trusted),
            ip("10.0.0.1")
        );
        let mut ported = HeaderMap::new();
        ported.insert(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::5]:443"),
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &ported, &trusted),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn ipv6_rate_limit_by_64() {
        assert_eq!(
            rate_limit_key(ip("2001:db8:1:2:aaaa::1")),
            rate_limit_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_eq!(rate_limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
