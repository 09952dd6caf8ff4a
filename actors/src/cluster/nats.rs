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

use super::{BoxFuture, Cluster, ClusterError, ClusterStatus, Forwarded, JobLock, LogEntry, SHARDS};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::{CreateStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{Client, RequestErrorKind};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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
fn url_credentials(urls: &[String]) -> Result<Option<(String, Option<String>)>, ClusterError> {
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

const LOG_STREAM: &str = "UTALK_LOG";

#[derive(Debug, Clone, Copy)]
struct Lease {
    revision: u64,
    /// The revision that created the lease: it stays while renewals move `revision`.
    epoch: u64,
    valid_until: Instant,
}

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
    /// Leases are being taken ([`NatsCluster::join`]).
    joined: std::sync::atomic::AtomicBool,
    /// The node left: no lease round may take shards again.
    left: std::sync::atomic::AtomicBool,
    changed: Notify,
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

/// A stash key NATS accepts whatever the caller's key holds.
fn stash_key(key: &str) -> String {
    use sha2::Digest;
    format!("k.{}", hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16]))
}

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

/// Rendezvous score of `node` for `shard`: the live node with the highest score should own it.
fn score(node: &str, shard: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain(shard.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly on short inputs; a final avalanche spreads them.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The node that should own `shard` among `live`.
pub fn desired_owner(shard: u32, live: &[String]) -> Option<&str> {
    live.iter().max_by_key(|n| (score(n, shard), n.as_str())).map(String::as_str)
}

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
        let client = options
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
            joined: std::sync::atomic::AtomicBool::new(false),
            left: std::sync::atomic::AtomicBool::new(false),
            changed: Notify::new(),
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

/// Renews, takes and hands over leases every quarter lease while the cluster lives.
async fn lease_loop(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => i.lease / 4,
        None => return,
    };
    loop {
        let Some(i) = inner.upgrade() else { return };
        if let Err(e) = tick(&i).await {
            tracing::warn!(error = %e, "cluster lease round failed");
        }
        drop(i);
        tokio::time::sleep(period).await;
    }
}

async fn tick(i: &Inner) -> Result<(), ClusterError> {
    if i.left.load(std::sync::atomic::Ordering::Acquire) {
        return Ok(());
    }
    i.nodes.put(format!("n.{}", i.node_id), Bytes::from(i.node_id.clone())).await.map_err(unavailable)?;
    let mut keys = i.nodes.keys().await.map_err(unavailable)?;
    let mut live = Vec::new();
    while let Some(k) = keys.next().await {
        if let Some(n) = k.map_err(unavailable)?.strip_prefix("n.") {
            live.push(n.to_string());
        }
    }
    if !live.contains(&i.node_id) {
        live.push(i.node_id.clone());
    }
    live.sort();
    *i.live.lock().unwrap_or_else(|p| p.into_inner()) = live.clone();
    for shard in 0..SHARDS {
        let key = format!("s.{shard}");
        let mine = i.owned.lock().unwrap_or_else(|p| p.into_inner()).get(&shard).copied();
        let desired = desired_owner(shard, &live).unwrap_or(&i.node_id);
        match mine {
            // Another live node should have it: stop serving first, then let go.
            Some(lease) if desired != i.node_id => {
                i.set_owned(shard, None);
                let _ = i.shards.delete_expect_revision(&key, Some(lease.revision)).await;
                tracing::info!(shard, to = desired, "handed a shard over");
            }
            Some(lease) => {
                let sent = Instant::now();
                match i.shards.update(&key, Bytes::from(i.node_id.clone()), lease.revision).await {
                    Ok(revision) => i.set_owned(shard, Some(Lease { revision, epoch: lease.epoch, valid_until: i.valid_until(sent) })),
                    Err(e)
                        if matches!(e.kind(), UpdateErrorKind::WrongLastRevision)
                            || js_code(&e).is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) =>
                    {
                        i.set_owned(shard, None);
                        tracing::warn!(shard, "lost a shard's lease to another node");
                    }
                    // Unknown outcome: keep the lease until it lapses; the next round tries again.
                    Err(e) => tracing::warn!(shard, error = %e, "could not renew a shard's lease"),
                }
            }
            None if desired == i.node_id => {
                let sent = Instant::now();
                match i.shards.create(&key, Bytes::from(i.node_id.clone())).await {
                    Ok(revision) => {
                        i.set_owned(shard, Some(Lease { revision, epoch: revision, valid_until: i.valid_until(sent) }));
                        tracing::info!(shard, "took a shard");
                    }
                    Err(e) if matches!(e.kind(), CreateErrorKind::AlreadyExists) => {}
                    Err(e) => tracing::debug!(shard, error = %e, "could not take a shard"),
                }
            }
            None => {}
        }
    }
    Ok(())
}

fn publish_error(subject: &str, expected: u64, e: &jetstream::context::PublishError) -> ClusterError {
    let code = js_code(e);
    if matches!(e.kind(), PublishErrorKind::WrongLastSequence) || code.is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) {
        return ClusterError::Fenced { subject: subject.to_string(), expected };
    }
    if matches!(e.kind(), PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound)
        || code.is_some_and(|c| TRANSIENT.contains(&c))
    {
        return unavailable(e);
    }
    ClusterError::Protocol(e.to_string())
}

impl Cluster for NatsCluster {
    fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    fn owns(&self, shard: u32) -> bool {
        self.inner.owns(shard)
    }

    fn ownership_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.changed.notified())
    }

    fn append<'a>(
        &'a self,
        subject: &'a str,
        expected: Option<u64>,
        id: &'a str,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<u64, ClusterError>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut msg = PublishMessage::build().payload(payload).message_id(id);
            if let Some(e) = expected {
                msg = msg.expected_last_subject_sequence(e);
            }
            let fenced = expected.unwrap_or(0);
            let ack = self.inner.js.send_publish(subject.to_string(), msg).await.map_err(|e| publish_error(subject, fenced, &e))?;
            let ack = ack.await.map_err(|e| publish_error(subject, fenced, &e))?;
            metrics::histogram!("cluster_log_append_duration_seconds").record(started.elapsed().as_secs_f64());
            Ok(ack.sequence)
        })
    }

    fn follow<'a>(
        &'a self,
        filter: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<LogEntry, ClusterError>>, ClusterError>> {
        Box::pin(async move {
            let consumer = self
                .inner
                .log
                .create_consumer(pull::OrderedConfig {
                    filter_subject: filter.to_string(),
                    deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
                    // Short pulls make heartbeats a second apart, so a consumer lost with
                    // its server is noticed (two missed beats) and made again in seconds.
                    max_expires: Duration::from_secs(2),
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?;
            let messages = consumer.messages().await.map_err(unavailable)?;
            Ok(messages
                .map(|m| {
                    let m = m.map_err(unavailable)?;
                    let info = m.info().map_err(|e| ClusterError::Protocol(e.to_string()))?;
                    Ok(LogEntry { subject: m.subject.to_string(), position: info.stream_sequence, payload: m.payload.clone() })
                })
                .boxed())
        })
    }

    fn log_end(&self) -> BoxFuture<'_, Result<u64, ClusterError>> {
        Box::pin(async move {
            let mut log = self.inner.log.clone();
            let info = log.info().await.map_err(unavailable)?;
            Ok(info.state.last_sequence)
        })
    }

    fn replicated(&self) -> bool {
        true
    }

    fn lease_epoch(&self, shard: u32) -> Option<u64> {
        let owned = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner());
        owned.get(&shard).filter(|l| Instant::now() < l.valid_until).map(|l| l.epoch)
    }

    fn last_position<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<u64, ClusterError>> {
        Box::pin(async move {
            match self.inner.log.get_last_raw_message_by_subject(subject).await {
                Ok(m) => Ok(m.sequence),
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => Ok(0),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn forward(&self, shard: u32, payload: Bytes, timeout: Duration) -> BoxFuture<'_, Result<Bytes, ClusterError>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let req = async_nats::Request::new().payload(payload.clone()).timeout(Some(left.max(Duration::from_millis(1))));
                let connects = self.inner.connects();
                let mut answer = Box::pin(self.inner.client.send_request(format!("utalk.req.{shard}"), req));
                // Who held the shard's lease while the request was out, read only once it is slow.
                let mut holder: Option<Option<Bytes>> = None;
                let answered = loop {
                    tokio::select! {
                        r = &mut answer => break Some(r),
                        _ = tokio::time::sleep(self.inner.lease / 8) => {
                            if self.inner.connects() != connects {
                                // An answer sent while the connection was being made again is lost.
                                break None;
                            }
                            // Unreadable now (NATS electing a leader): compare at the next turn.
                            let Ok(now) = self.inner.shards.get(format!("s.{shard}")).await else { continue };
                            match &holder {
                                None => holder = Some(now),
                                // The lease changed hands: the node that took the request died or was deposed.
                                Some(then) if *then != now => break None,
                                Some(_) => {}
                            }
                        }
                    }
                };
                let Some(answered) = answered else {
                    // No answer will come: ask the shard's next owner, as a client
                    // retrying with the same request would (messages are idempotent).
                    tracing::debug!(shard, "the forwarded request's owner changed or the connection was made again; asking again");
                    if Instant::now() >= deadline {
                        return Err(ClusterError::NoOwner { shard });
                    }
                    continue;
                };
                match answered {
                    Ok(m) => return Ok(m.payload),
                    // A new owner's subscription takes a moment to reach every server: ask again until the time is up.
                    Err(e) if matches!(e.kind(), RequestErrorKind::NoResponders) => {
                        if Instant::now() + Duration::from_millis(50) >= deadline {
                            return Err(ClusterError::NoOwner { shard });
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
        })
    }

    fn serve(&self, shard: u32) -> BoxFuture<'_, Result<BoxStream<'static, Forwarded>, ClusterError>> {
        Box::pin(async move {
            if !self.inner.owns(shard) {
                return Err(ClusterError::NotOwner { shard });
            }
            let sub = self.inner.client.subscribe(format!("utalk.req.{shard}")).await.map_err(unavailable)?;
            // The subscription counts once the server has it: a request sent right after must find it.
            self.inner.client.flush().await.map_err(unavailable)?;
            let inner = self.inner.clone();
            let stream = futures_util::stream::unfold((sub, inner), move |(mut sub, inner)| async move {
                loop {
                    // Dropping the subscription unsubscribes: a deposed owner hears no more requests.
                    if !inner.owns(shard) {
                        return None;
                    }
                    let recheck = tokio::time::sleep(inner.lease / 8);
                    tokio::select! {
                        m = sub.next() => {
                            let m = m?;
                            let Some(reply_to) = m.reply.clone() else { continue };
                            if !inner.owns(shard) {
                                return None;
                            }
                            let client = inner.client.clone();
                            let reply: Box<dyn FnOnce(Bytes) -> BoxFuture<'static, ()> + Send> = Box::new(move |answer: Bytes| {
                                Box::pin(async move {
                                    if let Err(e) = client.publish(reply_to, answer).await {
                                        tracing::warn!(error = %e, "could not answer a forwarded request");
                                    }
                                }) as BoxFuture<'static, ()>
                            });
                            return Some((Forwarded { payload: m.payload, reply }, (sub, inner)));
                        }
                        _ = inner.changed.notified() => {}
                        _ = recheck => {}
                    }
                }
            });
            Ok(stream.boxed())
        })
    }

    fn publish<'a>(&'a self, topic: &'a str, payload: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move { self.inner.client.publish(format!("utalk.ev.{topic}"), payload).await.map_err(unavailable) })
    }

    fn listen<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, ClusterError>> {
        Box::pin(async move {
            let sub = self.inner.client.subscribe(format!("utalk.ev.{topic}")).await.map_err(unavailable)?;
            self.inner.client.flush().await.map_err(unavailable)?;
            Ok(sub.map(|m| m.payload).boxed())
        })
    }

    fn try_lock<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<JobLock>, ClusterError>> {
        Box::pin(async move {
            let key = format!("l.{name}");
            let mut tries = 0;
            let revision = loop {
                match self.inner.locks.create(&key, Bytes::from(self.inner.node_id.clone())).await {
                    Ok(r) => break r,
                    Err(e) if matches!(e.kind(), CreateErrorKind::AlreadyExists) => return Ok(None),
                    // Nodes that race to take a lock released before lose with a
                    // sequence error, not "already exists", and a replica may not
                    // show the winner's key yet: ask again, and the key is there.
                    Err(e) if js_code(&e).is_some_and(|c| WRONG_LAST_SEQUENCE.contains(&c)) && tries < 5 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            };
            let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
            let (lost, lost_rx) = tokio::sync::watch::channel(false);
            let (locks, period) = (self.inner.locks.clone(), self.inner.lock_ttl / 3);
            tokio::spawn(async move {
                let mut revision = revision;
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(period) => {
                            match locks.update(&key, Bytes::from_static(b"held"), revision).await {
                                Ok(r) => revision = r,
                                Err(e) => {
                                    // The key may expire or belong to another node by now: tell the holder.
                                    tracing::warn!(lock = %key, error = %e, "could not renew a job lock; the job holding it is told");
                                    let _ = lost.send(true);
                                    return;
                                }
                            }
                        }
                    }
                }
                let _ = locks.delete_expect_revision(&key, Some(revision)).await;
            });
            Ok(Some(JobLock::renewed(
                move || {
                    let _ = stop.send(());
                },
                lost_rx,
            )))
        })
    }

    fn stash<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            self.inner.stash.put(stash_key(key), value).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn unstash<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        Box::pin(async move {
            let key = stash_key(key);
            let value = self.inner.stash.get(&key).await.map_err(unavailable)?;
            if value.is_some() {
                // Taken once: a second node asking later finds nothing.
                let _ = self.inner.stash.purge(&key).await;
            }
            Ok(value)
        })
    }

    fn put_blob<'a>(&'a self, name: &'a str, bytes: Bytes) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let mut reader: &[u8] = &bytes;
            self.inner.files.put(name, &mut reader).await.map_err(unavailable)?;
            Ok(())
        })
    }

    fn get_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, ClusterError>> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let mut object = match self.inner.files.get(name).await {
                Ok(o) => o,
                Err(e) if matches!(e.kind(), object_store::GetErrorKind::NotFound) => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            };
            let mut out = Vec::with_capacity(object.info.size);
            // The reader checks the object's digest at its end and fails on a mismatch.
            object.read_to_end(&mut out).await.map_err(unavailable)?;
            Ok(Some(Bytes::from(out)))
        })
    }

    fn list_blobs(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            // A listing of an empty store never ends: ask the stream first.
            let mut stream = self.inner.js.get_stream(format!("OBJ_{FILES_BUCKET}")).await.map_err(unavailable)?;
            if stream.info().await.map_err(unavailable)?.state.messages == 0 {
                return Ok(Vec::new());
            }
            let mut list = self.inner.files.list().await.map_err(unavailable)?;
            let mut names = Vec::new();
            while let Some(info) = list.next().await {
                names.push(info.map_err(unavailable)?.name);
            }
            Ok(names)
        })
    }

    fn delete_blob<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            match self.inner.files.delete(name).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.kind(), object_store::DeleteErrorKind::NotFound) => Ok(()),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn status(&self) -> ClusterStatus {
        let mut owned: Vec<u32> = {
            let now = Instant::now();
            let map = self.inner.owned.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().filter(|(_, l)| l.valid_until > now).map(|(s, _)| *s).collect()
        };
        owned.sort_unstable();
        ClusterStatus {
            mode: "nats",
            node_id: self.inner.node_id.clone(),
            owned_shards: owned,
            connected: self.inner.client.connection_state() == async_nats::connection::State::Connected,
            live_nodes: self.inner.live.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
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

    #[test]
    fn rendezvous_spreads_shards_and_moves_few_when_a_node_joins() {
        let two: Vec<String> = vec!["a".into(), "b".into()];
        let three: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let count = |live: &[String], n: &str| (0..SHARDS).filter(|&s| desired_owner(s, live) == Some(n)).count();
        for n in ["a", "b", "c"] {
            assert!((12..=32).contains(&count(&three, n)), "{n}: {}", count(&three, n));
        }
        let moved = (0..SHARDS).filter(|&s| desired_owner(s, &two) != desired_owner(s, &three)).count();
        assert_eq!(moved, count(&three, "c"), "only the newcomer's shards move");
        assert!(valid_node_id("node-1_a") && !valid_node_id("node.1") && !valid_node_id(""));
    }
}
