use crate::codec::{encode, Record};
use crate::error::CodecError;
use crate::keys::Key;
use crate::maps::Map;

/// One change in a [`Batch`].
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Put { map: Map, key: Vec<u8>, value: Vec<u8> },
    Delete { map: Map, key: Vec<u8> },
}

/// A set of changes that reach the disk together or not at all.
///
/// Values are encoded when they are added, on the caller's thread, so the
/// store writer only copies bytes. Secondary-index entries go in the same
/// batch as the record they index.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
    bytes: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Stores `value` under `key` in `map`.
    pub fn put<V: Record>(&mut self, map: Map, key: Key, value: &V) -> Result<&mut Self, CodecError> {
        let value = encode(value)?;
        Ok(self.put_raw(map, key.into_bytes(), value))
    }
    /// Stores already-encoded bytes (index entries, meta values).
    pub fn put_raw(&mut self, map: Map, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.bytes += key.len() + value.len();
        self.ops.push(Op::Put { map, key, value });
        self
    }
    /// Removes a raw key from `map` (keys read back from a scan).
    pub fn delete_raw(&mut self, map: Map, key: Vec<u8>) -> &mut Self {
        self.bytes += key.len();
        self.ops.push(Op::Delete { map, key });
        self
    }
    /// Removes `key` from `map`.
    pub fn delete(&mut self, map: Map, key: Key) -> &mut Self {
        let key = key.into_bytes();
        self.bytes += key.len();
        self.ops.push(Op::Delete { map, key });
        self
    }
    /// Appends every change of `other`.
    pub fn extend(&mut self, other: Batch) -> &mut Self {
        self.bytes += other.bytes;
        self.ops.extend(other.ops);
        self
    }
    /// Number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether the batch changes nothing (a barrier).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Approximate size in bytes of keys and values.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }
    /// The changes in order, for readers that follow what was written (the
    /// search index follows the records it indexes).
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> {
        self.ops.iter().map(|op| match op {
            Op::Put { map, key, value } => Change::Put { map: *map, key, value },
            Op::Delete { map, key } => Change::Delete { map: *map, key },
        })
    }
}

impl Change<'_> {
    /// The map it changes.
    pub fn map(&self) -> Map {
        match self {
            Change::Put { map, .. } | Change::Delete { map, .. } => *map,
        }
    }
}

/// One change of a [`Batch`], as [`Batch::changes`] shows it.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// `key` in `map` now holds `value`.
    Put {
        /// The map.
        map: Map,
        /// The key's bytes.
        key: &'a [u8],
        /// The encoded value.
        value: &'a [u8],
    },
    /// `key` was removed from `map`.
    Delete {
        /// The map.
        map: Map,
        /// The key's bytes.
        key: &'a [u8],
    },
}

/// Tag of the first (and so far only) wire layout of a batch.
const WIRE_V1: u8 = 1;

impl Batch {
    /// The batch as bytes for the replicated log: maps go by name, so the
    /// layout survives maps being added or reordered.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes + 8 + self.ops.len() * 24);
        out.push(WIRE_V1);
        out.extend_from_slice(&(self.ops.len() as u32).to_be_bytes());
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        for op in &self.ops {
            match op {
                Op::Put { map, key, value } => {
                    put(&[0]);
                    put(map.name().as_bytes());
                    put(key);
                    put(value);
                }
                Op::Delete { map, key } => {
                    put(&[1]);
                    put(map.name().as_bytes());
                    put(key);
                }
            }
        }
        out
    }

    /// Reads a batch written by [`Batch::to_wire`].
    pub fn from_wire(bytes: &[u8]) -> Result<Batch, CodecError> {
        let (&tag, mut rest) = bytes.split_first().ok_or(CodecError::Truncated)?;
        if tag != WIRE_V1 {
            return Err(CodecError::BadEnvelope(tag));
        }
        let mut take = |n: usize| -> Result<&[u8], CodecError> {
            if rest.len() < n {
                return Err(CodecError::Truncated);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| CodecError::Truncated)?) as usize;
        let mut chunk = || -> Result<Vec<u8>, CodecError> {
            let len = u32::from_be_bytes(take(4)?.try_into().map_err(|_| CodecError::Truncated)?) as usize;
            Ok(take(len)?.to_vec())
        };
        let mut batch = Batch::new();
        // A corrupt count must not reserve gigabytes: grow as ops actually parse.
        for _ in 0..count {
            let kind = chunk()?;
            let name = chunk()?;
            let map = Map::ALL.iter().copied().find(|m| m.name().as_bytes() == name.as_slice()).ok_or(CodecError::BadKey("unknown map"))?;
            let key = chunk()?;
            match kind.as_slice() {
                [0] => {
                    let value = chunk()?;
                    batch.put_raw(map, key, value);
                }
                [1] => {
                    batch.delete_raw(map, key);
                }
                _ => return Err(CodecError::BadKey("unknown batch operation")),
            }
        }
        Ok(batch)
    }
}

/// A batch travels inside log records and forwarded requests as its wire bytes.
impl serde::Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_wire())
    }
}

impl<'de> serde::Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        struct Wire;
        impl<'de> serde::de::Visitor<'de> for Wire {
            type Value = Batch;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a batch's wire bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Batch, E> {
                Batch::from_wire(v).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Batch::from_wire(&bytes).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_bytes(Wire)
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn a_batch_survives_the_wire_and_bad_bytes_are_refused() {
        let mut b = Batch::new();
        b.put_raw(Map::Meta, b"k1".to_vec(), b"v1".to_vec());
        b.delete_raw(Map::Messages, vec![1, 2, 3]);
        b.put_raw(Map::Users, Vec::new(), Vec::new());
        let wire = b.to_wire();
        let back = Batch::from_wire(&wire).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back.size_bytes(), b.size_bytes());
        assert_eq!(format!("{:?}", back.ops), format!("{:?}", b.ops));
        assert!(matches!(Batch::from_wire(&wire[..wire.len() - 1]), Err(CodecError::Truncated)));
        assert!(matches!(Batch::from_wire(&[9]), Err(CodecError::BadEnvelope(9))));
        assert!(Batch::from_wire(&[]).is_err());
        let mut bad = wire.clone();
        bad[14] = b'X'; // inside the first map name
        assert!(Batch::from_wire(&bad).is_err());
    }
}
