//! Receivers are chosen by admins over the API, so a subscription must not
//! become a way to reach what only the server can: loopback, private and
//! link-local addresses (cloud metadata among them) are refused, both when
//! the URL names such an address and when its name resolves to one at send
//! time (checked on every connection, so a name that changes its answer
//! after the check gets nowhere). `webhooks.allow_private_targets` lifts
//! this for receivers on the same network.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// Whether `ip` is one a receiver chosen over the API may not have.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Why `url` cannot be a receiver, if it cannot: not http(s), no host,
/// credentials in it, too long, or (unless `allow_private`) a private address.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, &'static str> {
    if url.len() > 2048 {
        return Err("url must have at most 2048 characters");
    }
    let u = reqwest::Url::parse(url).map_err(|_| "url is not a URL")?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err("url must be http or https");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url must not carry credentials; the signature authenticates deliveries");
    }
    let host = u.host_str().filter(|h| !h.is_empty()).ok_or("url has no host")?;
    if !allow_private {
        let private = "url names a loopback or private address (webhooks.allow_private_targets)";
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return Err(private);
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<IpAddr>().is_ok_and(is_private) {
            return Err(private);
        }
    }
    Ok(u)
}

/// A resolver that drops private addresses: a name with only those fails to connect.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| !is_private(a.ip())).collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves only to loopback or private addresses (webhooks.allow_private_targets)").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_odd_urls_are_refused_and_public_ones_pass() {
        for bad in [
            "ftp://example.com/x",
            "http://user:pw@example.com/x",
            "not a url",
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:192.168.0.1]/x",
            "http://localhost:8080/x",
            "http://100.64.0.1/x",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/utalk?k=1", false).is_ok());
        assert!(check_url("http://93.184.216.34/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok(), "allowed when the operator says so");
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(2048)), false).is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_private_answers() {
        let r = PublicOnly.resolve("localhost".parse().expect("name")).await;
        assert!(r.is_err(), "localhost resolves to loopback only");
    }
}
