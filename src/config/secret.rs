//! Secret values in the configuration: never printed or logged, and
//! checked for being placeholders where production needs real ones.

use serde::{Deserialize, Serialize};

/// A secret value: never printed by `Debug` or logged.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Why `secret` is not fit to sign tokens in production, if it is not:
/// a placeholder from a sample or a tutorial, or too little variety to be random.
pub fn weakness(secret: &str) -> Option<&'static str> {
    let lower = secret.to_ascii_lowercase();
    const PLACEHOLDERS: [&str; 8] = ["change", "secret", "example", "default", "password", "replace", "your-", "xxxx"];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("it looks like a placeholder");
    }
    let distinct: std::collections::BTreeSet<char> = secret.chars().collect();
    if distinct.len() < 12 {
        return Some("it has too few different characters to be random");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_patterns_are_weak_random_is_not() {
        assert!(weakness("change-me-change-me-change-me-change-me").is_some());
        assert!(weakness("my-super-secret-jwt-key-for-prod-2026!!").is_some());
        assert!(weakness(&"ab".repeat(20)).is_some());
        assert!(weakness("3qJ9vX2mLp8TzR4wYc6NbF1hKd5GsA7e").is_none());
    }
}
