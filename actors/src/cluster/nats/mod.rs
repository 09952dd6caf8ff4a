//! The cluster seam over NATS JetStream.
//!
//! - **Leases**: key `s.<shard>` in the bucket `utalk_shards`, whose keys
//!   expire `lease` after their last write. A node creates the key to take a
//!   shard and renews it with a compare-and-set on its revision every quarter
//!   lease; it counts a shard as its own only until `lease - lease/5` after
//!   the last renewal it *sent*, so it stops serving before the key can
//!   expire on the servers. Which node should own a shard is decided by
//!   rendezvous hashing over the live nodes (keys in `utalk_nodes`,
//!   refreshed like leases), so shards spread evenly and move only when
//!   nodes come or go.
//! - **Log**: the stream `UTALK_LOG` on `utalk.log.>`, file storage,
//!   replicated `replicas` ways. Appends carry `Nats-Expected-Last-Subject-Sequence`
//!   (the fence) and `Nats-Msg-Id` (deduplication within two minutes).
//! - **Forwarding**: core request/reply on `utalk.req.<shard>`, subscribed only by the owner.
//! - **Events**: core publish on `utalk.ev.<topic>`.
//! - **Job locks**: key `l.<name>` in `utalk_locks`, renewed while held.
//! - **Files** (media): objects in the object store `utalk_media`, replicated like the log.
//!
//! One file per job: [`settings`], [`leases`], [`log`], [`forwarding`],
//! [`events`], [`locks`], [`stash`], [`blobs`]; this file connects and
//! holds what they share.

mod blobs;
mod events;
mod forwarding;
mod leases;
mod locks;
mod log;
mod settings;
mod stash;

use settings::url_credentials;
pub use settings::{redact_urls, valid_node_id, NatsSettings, NatsTls};

use super::{Cluster, ClusterError, LogStream, SHARDS};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::Client;
use leases::{lease_loop, Lease};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const LOG_STREAM: &str = "UTALK_LOG";

struct Inner {
    node_id: String,
    client: Client,
    js: jetstream::Context,
    log: stream::Stream,
    shards: kv::Store,
    nodes: kv::Store,
    locks: kv::Store,
    /// Dropped socket sessions, kept for recovery on any node.
    stash: kv::Store,
    /// Media files, readable by every node.
    files: ObjectStore,
    lease: Duration,
    lock_ttl: Duration,
    owned: Mutex<HashMap<u32, Lease>>,
    live: Mutex<Vec<String>>,
    /// The newest message format each node announced it reads (nodes of
    /// builds before schema 7 announce none).
    formats: Mutex<HashMap<String, u16>>,
    /// Leases are being taken ([`NatsCluster::join`]).
    joined: std::sync::atomic::AtomicBool,
    /// The node left: no lease round may take shards again.
    left: std::sync::atomic::AtomicBool,
    /// Held by a lease round for its whole length, and by a leave: a round
    /// that began before the leave could otherwise take a shard back after
    /// the leave gave it up, holding it until the lease lapsed.
    round: tokio::sync::Mutex<()>,
    changed: Notify,
    /// Woken each time the connection to NATS is made again: answers to
    /// requests sent on the old connection are lost, so waiting for them
    /// stops at once instead of running into the request timeout.
    reconnected: Arc<Notify>,
}

impl Inner {
    fn owns(&self, shard: u32) -> bool {
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).get(&shard).is_some_and(|l| l.valid_until > Instant::now())
    }

    /// How many times this node's connection to NATS has been made.
    fn connects(&self) -> u64 {
        self.client.statistics().connects.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The end of a lease whose renewal was sent at `sent`.
    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.lease - self.lease / 5
    }

    fn set_owned(&self, shard: u32, lease: Option<Lease>) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let was = owned.contains_key(&shard);
        match lease {
            Some(l) => {
                owned.insert(shard, l);
            }
            None => {
                owned.remove(&shard);
            }
        }
        if was != owned.contains_key(&shard) {
            drop(owned);
            self.changed.notify_waiters();
        }
    }
}

/// A node of a NATS JetStream cluster.
#[derive(Clone)]
pub struct NatsCluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster").field("node_id", &self.inner.node_id).finish()
    }
}

/// The object store of media files.
const FILES_BUCKET: &str = "utalk_media";

/// How long stashed values live: longer than any sensible socket recovery window.
const STASH_TTL: Duration = Duration::from_secs(600);

/// Runs `make` (creating or opening the stream or a bucket) again while
/// NATS is unavailable, for up to 30 s: servers started together elect a
/// JetStream leader first, and a node started with them waits for it rather
/// than exiting.
async fn when_ready<T, Fut>(what: &str, mut make: impl FnMut() -> Fut) -> Result<T, ClusterError>
where
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match make().await {
            Err(ClusterError::Unavailable(e)) if Instant::now() < until => {
                tracing::info!(what, error = %e, "waiting for NATS JetStream to be ready");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

/// The JetStream error code inside `err`, if the server gave one.
fn js_code(err: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(je) = e.downcast_ref::<jetstream::Error>() {
            return Some(je.error_code().0);
        }
        cur = e.source();
    }
    None
}

/// "Wrong last sequence", and its variant for a write racing one still in flight.
const WRONG_LAST_SEQUENCE: [u64; 2] = [10071, 10164];
/// Transient: a duplicate still in flight, or a fence check before a new leader is ready.
const TRANSIENT: [u64; 2] = [10158, 10163];

impl NatsCluster {
    /// Connects, makes sure the log stream and buckets exist, and starts taking leases.
    pub async fn connect(settings: NatsSettings) -> Result<NatsCluster, ClusterError> {
        if !valid_node_id(&settings.node_id) {
            return Err(ClusterError::Protocol(format!("node id `{}` must be 1 to 64 letters, digits, - or _", settings.node_id)));
        }
        let urls: Vec<String> = settings.urls.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if urls.is_empty() {
            return Err(ClusterError::Protocol("no NATS server URL given".into()));
        }
        let mut options = async_nats::ConnectOptions::new();
        match url_credentials(&urls)? {
            Some((user, Some(pass))) => options = options.user_and_password(user, pass),
            Some((token, None)) => options = options.token(token),
            None => {}
        }
        if let Some(ca) = &settings.tls.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &settings.tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        let reconnected = Arc::new(Notify::new());
        let on_connect = reconnected.clone();
        let client = options
            .event_callback(move |event| {
                let on_connect = on_connect.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        on_connect.notify_waiters();
                    }
                }
            })
            .name(format!("utalk-{}", settings.node_id))
            .connection_timeout(Duration::from_secs(3))
            .request_timeout(Some(Duration::from_secs(5)))
            .ping_interval(Duration::from_secs(5))
            .max_reconnects(None)
            .connect(urls.as_slice())
            .await
            .map_err(unavailable)?;
        let js = jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client.clone());
        let config = stream::Config {
            name: LOG_STREAM.into(),
            subjects: vec!["utalk.log.>".into()],
            storage: StorageType::File,
            num_replicas: settings.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let existing = if settings.member { None } else { js.get_stream(LOG_STREAM).await.ok() };
        let log = match existing {
            Some(s) => s,
            None => when_ready(LOG_STREAM, || Self::create_log(&js, config.clone())).await?,
        };
        let bucket = |name: &str, max_age: Duration| kv::Config {
            bucket: name.into(),
            history: 1,
            max_age,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            ..Default::default()
        };
        // A tool that is not a node takes the buckets as the nodes made them.
        let open = |config: kv::Config| {
            let js = js.clone();
            async move {
                if !settings.member {
                    if let Ok(kv) = js.get_key_value(&config.bucket).await {
                        return Ok(kv);
                    }
                }
                // A bucket made with another lease (an older setting, or by a tool) takes this node's.
                js.create_or_update_key_value(config).await.map_err(unavailable)
            }
        };
        let opened = |config: kv::Config| {
            let open = &open;
            async move { when_ready(&config.bucket.clone(), || open(config.clone())).await }
        };
        let shards = opened(bucket("utalk_shards", settings.lease)).await?;
        let nodes = opened(bucket("utalk_nodes", settings.lease)).await?;
        let locks = opened(bucket("utalk_locks", settings.lock_ttl)).await?;
        let stash = opened(bucket("utalk_stash", STASH_TTL)).await?;
        let files = when_ready(FILES_BUCKET, || async {
            match js.get_object_store(FILES_BUCKET).await {
                Ok(store) => Ok(store),
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: FILES_BUCKET.into(),
                        storage: StorageType::File,
                        num_replicas: settings.replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(unavailable),
            }
        })
        .await?;
        let inner = Arc::new(Inner {
            node_id: settings.node_id,
            client,
            js,
            log,
            shards,
            nodes,
            locks,
            stash,
            files,
            lease: settings.lease,
            lock_ttl: settings.lock_ttl,
            owned: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
            formats: Mutex::new(HashMap::new()),
            joined: std::sync::atomic::AtomicBool::new(false),
            left: std::sync::atomic::AtomicBool::new(false),
            round: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            reconnected,
        });
        Ok(NatsCluster { inner })
    }

    /// Starts taking leases: announces the node and takes its share of the
    /// shards. A node calls it once it has caught up with the log, so that it
    /// owns nothing it could not serve yet; calling it again does nothing.
    pub fn join(&self) {
        if !self.inner.joined.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(lease_loop(Arc::downgrade(&self.inner)));
        }
    }

    /// Makes the log stream, or brings one made by an older version (or with
    /// other replicas) to this configuration.
    async fn create_log(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream, ClusterError> {
        match js.create_stream(config.clone()).await {
            Ok(s) => Ok(s),
            Err(e) => match e.kind() {
                CreateStreamErrorKind::JetStream(je) if je.error_code() == ErrorCode::STREAM_NAME_EXIST => {
                    js.update_stream(&config).await.map_err(unavailable)?;
                    js.get_stream(LOG_STREAM).await.map_err(unavailable)
                }
                _ => Err(unavailable(format!("cannot create the log stream: {e}"))),
            },
        }
    }

    /// Gives up every lease and the node's presence, so that others take over
    /// at once instead of after a lease period; for a graceful stop.
    pub async fn leave(&self) {
        self.inner.left.store(true, std::sync::atomic::Ordering::Release);
        // Any round under way finishes first; none starts after (it sees `left`).
        let _round = self.inner.round.lock().await;
        let owned: Vec<(u32, Lease)> = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        self.inner.changed.notify_waiters();
        for (shard, lease) in owned {
            let _ = self.inner.shards.delete_expect_revision(format!("s.{shard}"), Some(lease.revision)).await;
        }
        let _ = self.inner.nodes.delete(format!("n.{}", self.inner.node_id)).await;
    }

    /// Waits until this node owns at least one shard and every shard has an owner, up to `timeout`.
    pub async fn settled(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            let mine = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner()).len();
            let mut all = true;
            for shard in 0..SHARDS {
                match self.inner.shards.entry(format!("s.{shard}")).await {
                    Ok(Some(e)) if e.operation == kv::Operation::Put => {}
                    _ => {
                        all = false;
                        break;
                    }
                }
            }
            if mine > 0 && all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Cluster for NatsCluster {
    fn log(&self) -> Option<Arc<dyn LogStream>> {
        Some(Arc::new(self.clone()))
    }
}
