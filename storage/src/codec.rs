//! The value envelope: `0xA7 · version (u16, big-endian) · MessagePack with named fields`.
//!
//! The version lets a newer build read records written by an older schema:
//! [`Record::upgrade`] decodes an old version into the current type. Named
//! fields (not positional arrays) keep added optional fields readable both ways.
//! A record may read a version newer than the one [`encode`] writes
//! ([`Record::WRITES`]): its new format is written, by code of its own, only
//! once every build that may read the data reads it (messages: the model's
//! `message_format`).

use crate::error::CodecError;
use serde::de::DeserializeOwned;
use serde::Serialize;

const TAG: u8 = 0xA7;

/// A type stored as a value in some map.
pub trait Record: Serialize + DeserializeOwned {
    /// Name used in errors.
    const KIND: &'static str;
    /// The newest version this build reads.
    const VERSION: u16 = 1;
    /// The version [`encode`] writes, with its fields named as the type
    /// names them: [`Self::VERSION`] unless the newest format is written
    /// only on a condition, by the record's own code.
    const WRITES: u16 = Self::VERSION;

    /// Reads a record written with a `version` other than [`Self::WRITES`],
    /// up to [`Self::VERSION`].
    ///
    /// # Errors
    /// The default knows no other versions.
    fn upgrade(version: u16, _payload: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::UnknownVersion { kind: Self::KIND, found: version, supported: Self::VERSION })
    }
}

/// Encodes a record in the envelope.
pub fn encode<V: Record>(value: &V) -> Result<Vec<u8>, CodecError> {
    encode_as(V::KIND, V::WRITES, value)
}

/// Encodes `value` in the envelope as `version` of `kind`, its fields named.
pub(crate) fn encode_as<T: Serialize + ?Sized>(kind: &'static str, version: u16, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    out.push(TAG);
    out.extend_from_slice(&version.to_be_bytes());
    rmp_serde::encode::write_named(&mut out, value).map_err(|source| CodecError::Encode { kind, source })?;
    Ok(out)
}

/// The version of the envelope in `bytes`, when it is one.
pub fn version_of(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [TAG, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Decodes a record from the envelope, upgrading older versions.
pub fn decode<V: Record>(bytes: &[u8]) -> Result<V, CodecError> {
    let (&tag, rest) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if tag != TAG {
        return Err(CodecError::BadEnvelope(tag));
    }
    if rest.len() < 2 {
        return Err(CodecError::Truncated);
    }
    let version = u16::from_be_bytes([rest[0], rest[1]]);
    let payload = &rest[2..];
    if version == V::WRITES {
        rmp_serde::from_slice(payload).map_err(|source| CodecError::Decode { kind: V::KIND, source })
    } else if version > V::VERSION {
        Err(CodecError::UnknownVersion { kind: V::KIND, found: version, supported: V::VERSION })
    } else {
        V::upgrade(version, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1 {
        name: String,
    }
    impl Record for V1 {
        const KIND: &'static str = "sample";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        name: String,
        #[serde(default)]
        lang: Option<String>,
    }
    impl Record for V2 {
        const KIND: &'static str = "sample";
        const VERSION: u16 = 2;
        fn upgrade(version: u16, payload: &[u8]) -> Result<Self, CodecError> {
            match version {
                1 => {
                    let old: V1 = rmp_serde::from_slice(payload).map_err(|source| CodecError::Decode { kind: "sample", source })?;
                    Ok(V2 { name: old.name, lang: Some("es".into()) })
                }
                _ => Err(CodecError::UnknownVersion { kind: Self::KIND, found: version, supported: 2 }),
            }
        }
    }

    #[test]
    fn envelope_bytes_are_pinned() {
        let bytes = encode(&V1 { name: "a".into() }).unwrap();
        // tag, version 1, fixmap(1) {"name": "a"}
        assert_eq!(bytes, vec![0xA7, 0, 1, 0x81, 0xA4, b'n', b'a', b'm', b'e', 0xA1, b'a']);
    }

    #[test]
    fn old_records_upgrade_and_newer_ones_are_refused() {
        let v1 = encode(&V1 { name: "x".into() }).unwrap();
        let up: V2 = decode(&v1).unwrap();
        assert_eq!(up, V2 { name: "x".into(), lang: Some("es".into()) });
        let v2 = encode(&up).unwrap();
        assert!(matches!(decode::<V1>(&v2), Err(CodecError::UnknownVersion { found: 2, .. })));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decode::<V1>(&[]), Err(CodecError::Truncated)));
        assert!(matches!(decode::<V1>(&[1, 2, 3]), Err(CodecError::BadEnvelope(1))));
        assert!(matches!(decode::<V1>(&[TAG, 0, 1, 0xc1]), Err(CodecError::Decode { .. })));
    }
}
