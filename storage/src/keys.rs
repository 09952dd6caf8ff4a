//! Order-preserving key encoding.
//!
//! Integers are big-endian, UUIDs their 16 raw bytes, strings their UTF-8
//! bytes followed by a 0x00 terminator (strings holding NUL are refused), so
//! that the byte order of keys is the order of the tuples they encode and a
//! prefix of parts is a range-scan prefix.

use crate::error::CodecError;
use uuid::Uuid;

/// Builds a key part by part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// An empty key.
    pub fn new() -> Self {
        Key(Vec::with_capacity(32))
    }
    /// Appends a big-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends one byte (an enum code).
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// Appends a signed timestamp so that negative values sort first.
    pub fn i64(self, v: i64) -> Self {
        self.u64((v as u64) ^ (1 << 63))
    }
    /// Appends a UUID's 16 bytes.
    pub fn uuid(mut self, v: Uuid) -> Self {
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    /// Appends a string and its terminator.
    ///
    /// # Errors
    /// A string containing NUL cannot be ordered correctly and is refused.
    pub fn str(mut self, v: &str) -> Result<Self, CodecError> {
        if v.as_bytes().contains(&0) {
            return Err(CodecError::BadKey("string part contains NUL"));
        }
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(0);
        Ok(self)
    }
    /// Appends raw bytes (fixed-width parts such as hashes).
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Takes the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads a key part by part, in the order it was built.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts reading `key`.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::BadKey("key shorter than its layout"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    /// Reads a timestamp written by [`Key::i64`].
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok((self.u64()? ^ (1 << 63)) as i64)
    }
    /// Reads a UUID.
    pub fn uuid(&mut self) -> Result<Uuid, CodecError> {
        let b = self.take(16)?;
        Uuid::from_slice(b).map_err(|_| CodecError::BadKey("uuid"))
    }
    /// Reads a terminated string.
    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let end = self.rest.iter().position(|b| *b == 0).ok_or(CodecError::BadKey("unterminated string part"))?;
        let s = std::str::from_utf8(&self.rest[..end]).map_err(|_| CodecError::BadKey("string part is not UTF-8"))?;
        self.rest = &self.rest[end + 1..];
        Ok(s)
    }
    /// Whether every part was read.
    pub fn is_done(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_key_bytes_are_pinned() {
        let conv = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let k = Key::new().uuid(conv).u64(258);
        assert_eq!(k.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn string_parts_are_terminated_and_nul_is_refused() {
        assert_eq!(Key::new().str("ab").unwrap().u8(7).as_bytes(), b"ab\0\x07");
        assert!(Key::new().str("a\0b").is_err());
    }

    #[test]
    fn byte_order_follows_tuple_order() {
        let a = Uuid::from_u128(1);
        let mut keys: Vec<Vec<u8>> = [(a, 300u64), (a, 2), (a, 1 << 40), (Uuid::from_u128(2), 0)]
            .iter()
            .map(|(u, s)| Key::new().uuid(*u).u64(*s).into_bytes())
            .collect();
        keys.sort();
        let decoded: Vec<(Uuid, u64)> = keys
            .iter()
            .map(|k| {
                let mut r = KeyReader::new(k);
                (r.uuid().unwrap(), r.u64().unwrap())
            })
            .collect();
        assert_eq!(decoded, vec![(a, 2), (a, 300), (a, 1 << 40), (Uuid::from_u128(2), 0)]);
        let mut t = [Key::new().i64(5), Key::new().i64(-5), Key::new().i64(0)];
        t.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        let vals: Vec<i64> = t.iter().map(|k| KeyReader::new(k.as_bytes()).i64().unwrap()).collect();
        assert_eq!(vals, vec![-5, 0, 5]);
    }

    #[test]
    fn short_keys_are_an_error_not_a_panic() {
        let mut r = KeyReader::new(&[1, 2, 3]);
        assert!(r.u64().is_err());
        assert!(KeyReader::new(b"abc").str().is_err());
    }
}
