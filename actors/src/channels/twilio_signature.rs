//! Twilio's request signatures (`X-Twilio-Signature`): HMAC-SHA1 over the
//! URL and the sorted parameters. Kept apart from the API client so that it
//! depends on hmac, sha1 and base64 alone and can be fuzzed on its own
//! (`tests/fuzz`).

use base64::Engine;
use hmac::{Hmac, Mac};

type HmacSha1 = Hmac<sha1::Sha1>;

/// The signature Twilio sends for a form-encoded request to `url` with `params`:
/// base64 of HMAC-SHA1, keyed by the auth token, over the URL followed by every
/// parameter name and value, sorted by name.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // A repeated name with the same value counts once, as in Twilio's libraries.
    sorted.sort();
    sorted.dedup();
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = HmacSha1::new_from_slice(auth_token.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(url.as_bytes());
    for (k, v) in sorted {
        m.update(k.as_bytes());
        m.update(v.as_bytes());
    }
    m
}

/// Whether `header` is Twilio's signature of the request; compared in
/// constant time. Like Twilio's own libraries, the URL is also tried with
/// its default port added or removed, since proxies differ in which they pass.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    std::iter::once(url.to_string()).chain(port_variant(url)).any(|u| mac(auth_token, &u, params).verify_slice(&given).is_ok())
}

/// `url` with its scheme's default port toggled: added when absent, removed when present.
pub(crate) fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let with = format!(":{port}");
    if let Some(host) = authority.strip_suffix(&with) {
        Some(format!("{scheme}://{host}{tail}"))
    } else if authority.contains(':') && !authority.ends_with(']') {
        None
    } else {
        Some(format!("{scheme}://{authority}{with}{tail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [("From", "whatsapp:+14155550100"), ("Body", "hola"), ("MessageSid", "SM1"), ("NumMedia", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signature_covers_url_and_every_parameter() {
        let url = "https://chat.example.com/webhooks/twilio/whatsapp";
        let sig = signature("token", url, &params());
        assert!(verify("token", url, &params(), &sig));
        assert!(!verify("other-token", url, &params(), &sig));
        assert!(!verify("token", "https://chat.example.com/webhooks/twilio/status", &params(), &sig));
        let mut changed = params();
        changed[1].1 = "adios".into();
        assert!(!verify("token", url, &changed, &sig));
        let mut extra = params();
        extra.push(("X".into(), "1".into()));
        assert!(!verify("token", url, &extra, &sig));
        assert!(!verify("token", url, &params(), "not base64!"));
        assert!(!verify("token", url, &params(), ""));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let url = "https://chat.example.com/hook";
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(signature("t", url, &params()), signature("t", url, &reversed));
    }

    #[test]
    fn default_port_variants_are_accepted() {
        let sig = signature("t", "https://chat.example.com:443/hook?a=1", &params());
        assert!(verify("t", "https://chat.example.com/hook?a=1", &params(), &sig));
        let sig = signature("t", "http://chat.example.com/hook", &params());
        assert!(verify("t", "http://chat.example.com:80/hook", &params(), &sig));
        let sig = signature("t", "https://chat.example.com:8443/hook", &params());
        assert!(!verify("t", "https://chat.example.com/hook", &params(), &sig));
        assert_eq!(port_variant("https://h:8443/x"), None);
    }
}
