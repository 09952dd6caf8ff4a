//! How a node reaches NATS: server URLs (credentials kept out of logs), TLS, node id.

use super::ClusterError;
use std::time::Duration;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// Comma-separated `nats://` URLs of the NATS servers.
    pub urls: String,
    /// This node's id: letters, digits, `-` and `_`.
    pub node_id: String,
    /// Copies of the log and the buckets (3 in production; at most the number of servers).
    pub replicas: usize,
    /// How long a lease lasts without renewal; failover takes about this long.
    pub lease: Duration,
    /// How long a job lock lasts without renewal.
    pub lock_ttl: Duration,
    /// Whether this process is a node that takes shards; a command-line
    /// tool that only appends to the log is not.
    pub member: bool,
    /// TLS towards the NATS servers, beyond what `tls://` URLs ask for.
    pub tls: NatsTls,
}

/// TLS settings of the connection to NATS.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    /// PEM file of the authority that signed the servers' certificates;
    /// setting it requires TLS on every URL.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM certificate and key this node shows the servers (when they verify clients).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The user and password (or token, a user without a password) that the
/// first URL carrying any names, as in `nats://user:pass@host:4222`.
pub(super) fn url_credentials(urls: &[String]) -> Result<Option<(String, Option<String>)>, ClusterError> {
    for u in urls {
        let Some((_, rest)) = u.split_once("://") else { continue };
        let authority = rest.split('/').next().unwrap_or(rest);
        let Some((userinfo, _)) = authority.rsplit_once('@') else { continue };
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| ClusterError::Protocol("a NATS URL's user or password is not valid percent-encoding".into()))
        };
        return Ok(Some(match userinfo.split_once(':') {
            Some((user, pass)) => (decode(user)?, Some(decode(pass)?)),
            None => (decode(userinfo)?, None),
        }));
    }
    Ok(None)
}

/// `%XX` escapes of a URL's user or password, decoded.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `urls` with any password replaced by `***`, fit for logs and errors.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let Some((scheme, rest)) = u.split_once("://") else { return u.to_string() };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or("***", |(user, _)| user);
                    format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
                }
                None => u.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            urls: String::new(),
            node_id: String::new(),
            replicas: 3,
            lease: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(30),
            member: true,
            tls: NatsTls::default(),
        }
    }
}

/// Whether `id` can name a node (it becomes part of keys and subjects).
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_first_url_that_names_any() {
        let urls = |s: &[&str]| s.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(url_credentials(&urls(&["nats://a:4222", "nats://b:4222"])).unwrap(), None);
        assert_eq!(
            url_credentials(&urls(&["nats://a:4222", "tls://utalk:p%40ss%3Aw@b:4222/"])).unwrap(),
            Some(("utalk".into(), Some("p@ss:w".into())))
        );
        assert_eq!(url_credentials(&urls(&["nats://s3cr3t-token@a:4222"])).unwrap(), Some(("s3cr3t-token".into(), None)));
        assert!(matches!(url_credentials(&urls(&["nats://u:%zz@a:4222"])), Err(ClusterError::Protocol(_))));
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_urls("nats://utalk:s3cret@n1:4222, nats://n2:4222,tls://tok@n3:4222/x"),
            "nats://utalk:***@n1:4222,nats://n2:4222,tls://***:***@n3:4222/x"
        );
    }
}
