//! Leases: which node serves which shard right now.

use super::{BoxFuture, ClusterStatus};
use utalk_storage::model::MessageFormat;

/// Who owns which shard: each shard has at most one owner at a time, which
/// alone writes its entities and answers requests forwarded to it.
pub trait Leases: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// Whether this node holds `shard`'s lease with time to spare. A node
    /// that could not renew answers false before the lease runs out.
    fn owns(&self, shard: u32) -> bool;

    /// A change of the owned shards: resolves when the set may have changed.
    fn ownership_changed(&self) -> BoxFuture<'_, ()>;

    /// A number that changes each time this node takes `shard`'s lease anew
    /// (`None` while it does not own it), so an entity loaded under one lease
    /// can tell that it lost and regained the shard in between.
    fn lease_epoch(&self, shard: u32) -> Option<u64>;

    /// Where this node stands.
    fn status(&self) -> ClusterStatus;

    /// The live nodes whose build does not read messages in `format`, as
    /// last announced (within a quarter lease); empty when every one does.
    /// A format is written only once this is empty.
    fn not_reading(&self, format: MessageFormat) -> Vec<String>;
}

/// Whether this node does the work that must run once in the cluster (the
/// WhatsApp outbox, media downloads, the stock scan): the owner of shard 0,
/// whose lease makes it one node at a time.
pub fn leads(leases: &dyn Leases) -> bool {
    leases.owns(0)
}
