//! Host allow-lists: the hosts a credential may be sent to. The model's API
//! key and the Twilio account's credentials go only to hosts the operator's
//! configuration names, never to a host chosen over the API or named in a
//! webhook.
//!
//! A pattern is a host name (`api.openai.com`), an IP address (`127.0.0.1`,
//! `::1`), or `*.` and a domain (`*.twiliocdn.com`: any name below it, not the
//! domain itself). Ports are not part of a pattern. Names compare without case.

/// Why a URL may not receive a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Not an absolute http(s) URL with a host.
    #[error("`{0}` is not an http(s) URL with a host")]
    BadUrl(String),
    /// The host is not on the list.
    #[error("host `{0}` is not allowed")]
    NotAllowed(String),
}

/// A checked list of host patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostList(Vec<String>);

/// Why a pattern is refused, if it is; for configuration checks.
pub fn pattern_problem(p: &str) -> Option<String> {
    let name = p.strip_prefix("*.").unwrap_or(p);
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    // A colon belongs to an IPv6 address only: `host:port` would never match.
    let ok = ok && (!name.contains(':') || name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::Ipv6Addr>().is_ok());
    (!ok).then(|| format!("`{p}` is not a host name, an IP address or `*.` and a domain (no scheme, port or path)"))
}

fn normal(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

impl HostList {
    /// A list of `patterns` (checked with [`pattern_problem`] beforehand).
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> HostList {
        HostList(patterns.into_iter().map(|p| normal(p.as_ref())).collect())
    }

    /// Whether `host` (as a URL names it) matches a pattern.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = normal(host);
        self.0.iter().any(|p| match p.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.'),
            None => *p == host,
        })
    }

    /// The host of `url` when it may receive the credential: the URL is parsed
    /// as the HTTP client parses it, so `https://allowed@other/` names `other`.
    pub fn check_url(&self, url: &str) -> Result<String, HostError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| HostError::BadUrl(url.chars().take(200).collect()))?;
        let host = match (parsed.scheme(), parsed.host_str()) {
            ("http" | "https", Some(h)) if !h.is_empty() => h.to_string(),
            _ => return Err(HostError::BadUrl(url.chars().take(200).collect())),
        };
        if self.allows_host(&host) {
            Ok(host)
        } else {
            Err(HostError::NotAllowed(host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_wildcards_and_addresses_match_exactly() {
        let l = HostList::new(["api.openai.com", "*.twiliocdn.com", "127.0.0.1", "::1"]);
        assert!(l.allows_host("API.OpenAI.com"));
        assert!(l.allows_host("mms.twiliocdn.com") && l.allows_host("a.b.twiliocdn.com"));
        assert!(!l.allows_host("twiliocdn.com"), "a wildcard is below the domain only");
        assert!(!l.allows_host("eviltwiliocdn.com") && !l.allows_host("api.openai.com.evil.test"));
        assert!(l.allows_host("[::1]"));
        assert_eq!(l.check_url("http://127.0.0.1:9/v1"), Ok("127.0.0.1".into()));
        assert_eq!(l.check_url("https://api.openai.com@evil.test/v1"), Err(HostError::NotAllowed("evil.test".into())));
        assert_eq!(l.check_url("https://evil.test/api.openai.com"), Err(HostError::NotAllowed("evil.test".into())));
        assert!(matches!(l.check_url("file:///etc/passwd"), Err(HostError::BadUrl(_))));
        assert!(matches!(l.check_url("not a url"), Err(HostError::BadUrl(_))));
        assert!(!HostList::default().allows_host("api.openai.com"), "an empty list allows nothing");
    }

    #[test]
    fn patterns_are_checked() {
        for ok in ["api.openai.com", "*.twilio.com", "127.0.0.1", "::1", "[::1]", "localhost"] {
            assert_eq!(pattern_problem(ok), None, "{ok}");
        }
        for bad in ["", "*", "*.", "https://api.openai.com", "api.openai.com/v1", "a b", ".com", "host:80/", "127.0.0.1:8080"] {
            assert!(pattern_problem(bad).is_some(), "{bad:?} accepted");
        }
    }
}
