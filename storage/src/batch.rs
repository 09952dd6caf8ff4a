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
}
