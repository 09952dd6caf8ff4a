//! The client's address: the peer, or, when the peer is a proxy the
//! configuration trusts, the address that proxy says it forwarded for.
//!
//! Forwarding headers are believed only from trusted peers: anyone can send
//! `X-Forwarded-For`, and believing it from everyone would let one client pose
//! as any number of addresses (escaping per-address throttles) or as another
//! client (locking that client out).

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// Hops read from a forwarding header at most; a longer chain is cut there.
const MAX_HOPS: usize = 32;

/// The proxies whose forwarding headers are believed (`http.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A `trusted_proxies` entry that is neither an address nor a CIDR range.
#[derive(Debug, thiserror::Error)]
#[error("http.trusted_proxies: `{0}` is not an address or a CIDR range such as 10.0.0.0/8 or fd00::/8")]
pub struct BadProxyEntry(pub String);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and ranges (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, BadProxyEntry> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>().or_else(|_| e.parse::<IpAddr>().map(IpNet::from)).map_err(|_| BadProxyEntry(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request from `peer` with `headers`.
    ///
    /// From a trusted peer, the forwarded chain is read from the right (the
    /// hop nearest to us) and the first address not trusted is the client:
    /// entries left of it were written by the client itself and prove nothing.
    /// `Forwarded` (RFC 7239) is preferred to `X-Forwarded-For` when both are sent.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // A hop we cannot read (`unknown`, an obfuscated name, garbage):
                // nothing left of it can be trusted, so the last hop read stands.
                None => break,
            }
        }
        Some(client)
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack socket's view) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The forwarded-for hops, leftmost first, at most [`MAX_HOPS`] of the nearest.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").filter_map(|v| v.to_str().ok()).collect();
    let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim()))
                })
            })
            .map(Option::flatten)
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| parse_node(h.trim()))
            .collect()
    };
    let skip = hops.len().saturating_sub(MAX_HOPS);
    hops.into_iter().skip(skip).collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<IpAddr>().ok().map(canonical);
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(t.client(Some(ip("9.9.9.9")), &h), Some(ip("9.9.9.9")));
        assert_eq!(TrustedProxies::default().client(Some(ip("10.0.0.1")), &h), Some(ip("10.0.0.1")));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        // The client wrote 6.6.6.6 itself; the load balancer appended what it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 5.5.5.5, 10.1.2.3")]);
        assert_eq!(t.client(Some(ip("192.168.1.1")), &h), Some(ip("5.5.5.5")));
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(t.client(Some(ip("10.0.0.9")), &h), Some(ip("5.5.5.5")));
    }

    #[test]
    fn forwarded_is_read_with_ports_quotes_and_ipv6() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=7.7.7.7;proto=https, for=\"[2001:db8::1]:4711\""), ("x-forwarded-for", "8.8.8.8")]);
        assert_eq!(t.client(Some(ip("10.0.0.1")), &h), Some(ip("2001:db8::1")));
        let h = headers(&[("forwarded", "for=4.4.4.4:1234")]);
        assert_eq!(t.client(Some(ip("10.0.0.1")), &h), Some(ip("4.4.4.4")));
    }

    #[test]
    fn unreadable_hops_and_missing_headers_stop_at_the_last_known_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(t.client(Some(ip("10.0.0.1")), &headers(&[])), Some(ip("10.0.0.1")));
        let h = headers(&[("x-forwarded-for", "3.3.3.3, garbage, 10.0.0.2")]);
        assert_eq!(t.client(Some(ip("10.0.0.1")), &h), Some(ip("10.0.0.2")));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client(Some(ip("10.0.0.1")), &h), Some(ip("10.0.0.1")));
    }

    #[test]
    fn a_long_chain_is_read_only_near_us() {
        let t = trusted(&["10.0.0.0/8"]);
        let mut chain = vec!["1.1.1.1".to_string()];
        chain.extend((0..100).map(|i| format!("10.0.{}.{}", i / 250, i % 250)));
        let value = HeaderValue::from_str(&chain.join(",")).unwrap();
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static("x-forwarded-for"), value);
        // All the nearest 32 hops are trusted, so the farthest of them stands.
        assert!(t.client(Some(ip("10.0.0.1")), &h).is_some_and(|c| t.trusts(c)));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_ranges_and_bad_entries_are_refused() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(t.client(Some(ip("::ffff:127.0.0.1")), &h), Some(ip("5.5.5.5")));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
