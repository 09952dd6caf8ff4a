//! Secrets utalk generates for itself when the operator sets none.

use crate::config::Secret;
use base64::Engine;
use rand::RngCore;
use utalk_actors::StoreWriter;
use utalk_storage::{Batch, Db, Map};

/// The secret kept under `key` in the database's meta map, generated (48
/// random bytes) and stored on first use. `what` and `setting` name it in
/// the log line that says so.
pub async fn stored_or_generated(db: &Db, writer: &StoreWriter, key: &[u8], what: &str, setting: &str) -> anyhow::Result<Secret> {
    if let Some(v) = db.get_raw(Map::Meta, key)? {
        return Ok(Secret::new(String::from_utf8(v).map_err(|_| anyhow::anyhow!("stored {what} is not UTF-8"))?));
    }
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut b = Batch::new();
    b.put_raw(Map::Meta, key.to_vec(), s.clone().into_bytes());
    writer.commit(b).await?;
    tracing::info!("generated {what} and stored it in the data directory (set {setting} to manage it yourself)");
    Ok(Secret::new(s))
}
