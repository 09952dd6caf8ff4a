//! The cluster seam over three real NATS JetStream servers: leases, the
//! fenced log, forwarding, events and job locks.

use crate::nats::Nats;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use utalk_actors::cluster::{
    log_subject, shard_filter, shard_of, ClusterError, EntityKind, Events, Forwarding, Leases, Locks, LogEntry, LogStream, NatsCluster,
    NatsSettings, SHARDS,
};
use uuid::Uuid;

async fn node(nats: &Nats, id: &str) -> NatsCluster {
    node_with_lease(nats, id, Duration::from_secs(2)).await
}

async fn node_with_lease(nats: &Nats, id: &str, lease: Duration) -> NatsCluster {
    NatsCluster::connect(NatsSettings {
        urls: nats.urls(),
        node_id: id.into(),
        replicas: 3,
        lease,
        lock_ttl: Duration::from_secs(3),
        member: true,
        ..NatsSettings::default()
    })
    .await
    .inspect(|n| n.join())
    .unwrap_or_else(|e| panic!("{id} cannot join: {e}"))
}

/// The entries of `filter` after `after` up to position `last`, read as
/// nodes read the log: in order, waiting for a replica that is still
/// catching up (a NATS server just restarted) rather than stopping short.
async fn read_to(n: &NatsCluster, filter: &str, after: u64, last: u64) -> Vec<LogEntry> {
    let mut out = Vec::new();
    if last <= after {
        return out;
    }
    let mut entries = n.follow(filter, after).await.unwrap_or_else(|e| panic!("cannot read {filter}: {e}"));
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = entries.next().await {
            let e = e.unwrap_or_else(|e| panic!("reading {filter} broke off: {e}"));
            let at = e.position;
            out.push(e);
            if at >= last {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{filter} was not read up to {last} in 20 s"));
    out
}

/// Waits until `nodes` together own every shard, each exactly once, and each owns some.
async fn wait_spread(nodes: &[&NatsCluster]) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let owned: Vec<Vec<u32>> = nodes.iter().map(|n| n.status().owned_shards).collect();
        let all: BTreeSet<u32> = owned.iter().flatten().copied().collect();
        let total: usize = owned.iter().map(Vec::len).sum();
        if all.len() == SHARDS as usize && total == SHARDS as usize && owned.iter().all(|o| !o.is_empty()) {
            return;
        }
        assert!(Instant::now() < until, "shards never settled: {owned:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retries an append that found the cluster unavailable, as a writer does.
async fn append_retrying(n: &NatsCluster, subject: &str, expected: u64, id: &str, body: &'static str) -> Result<u64, ClusterError> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match n.append(subject, Some(expected), id, Bytes::from_static(body.as_bytes())).await {
            Err(ClusterError::Unavailable(e)) if Instant::now() < until => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_spread_over_the_nodes_and_move_when_a_node_dies_or_leaves() {
    // A lease long enough that waiting for one to lapse and a prompt hand-over
    // cannot be mistaken for each other on a busy machine.
    const LEASE: Duration = Duration::from_secs(6);
    let nats = Nats::start().await;
    let a = node_with_lease(&nats, "a", LEASE).await;
    let b = node_with_lease(&nats, "b", LEASE).await;
    let c = node_with_lease(&nats, "c", LEASE).await;
    wait_spread(&[&a, &b, &c]).await;
    let status = a.status();
    assert_eq!(status.mode, "nats");
    assert!(status.connected);
    // Each node lists the live nodes as of its last lease round.
    let until = Instant::now() + Duration::from_secs(5);
    while a.status().live_nodes != vec!["a", "b", "c"] {
        assert!(Instant::now() < until, "a never saw all three nodes: {:?}", a.status().live_nodes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A node that dies without a word: its shards move once its leases lapse, and not much sooner.
    let a_shards = a.status().owned_shards;
    let died = Instant::now();
    drop(a);
    wait_spread(&[&b, &c]).await;
    // Renewed every quarter lease, its keys outlive it by at least three quarters.
    assert!(died.elapsed() >= LEASE * 3 / 4, "shards moved before the lease could lapse: {:?}", died.elapsed());
    assert!(a_shards.iter().all(|s| b.owns(*s) || c.owns(*s)));

    // A node that leaves hands its shards over at once.
    let left = Instant::now();
    c.leave().await;
    drop(c);
    let until = Instant::now() + Duration::from_secs(20);
    while b.status().owned_shards.len() < SHARDS as usize {
        assert!(Instant::now() < until, "b did not take the shards c left: {:?}", b.status().owned_shards.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lapsed leases would have taken at least three quarters of a lease.
    assert!(left.elapsed() < LEASE / 2, "a graceful leave waited for leases to lapse: {:?}", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_owner_took_and_died_with_is_asked_again_of_the_next_owner() {
    let nats = Nats::start().await;
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    wait_spread(&[&a, &b]).await;
    let shard = b.status().owned_shards[0];
    // b takes the request and dies before it answers.
    let mut requests = b.serve(shard).await.unwrap();
    let (took, took_rx) = tokio::sync::oneshot::channel();
    let dying = tokio::spawn(async move {
        let req = requests.next().await.expect("a forwarded request");
        let _ = took.send(());
        drop((req, requests, b));
    });
    // a takes the shard once b's lease lapses, and answers what it is asked then.
    let next_owner = a.clone();
    let answering = tokio::spawn(async move {
        while !next_owner.owns(shard) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut requests = next_owner.serve(shard).await.unwrap();
        let req = requests.next().await.expect("the request asked again");
        let mut answer = b"new owner:".to_vec();
        answer.extend_from_slice(&req.payload);
        (req.reply)(Bytes::from(answer)).await;
    });
    // Far longer than the failover, so that only an answer from the new owner passes.
    let answer = a.forward(shard, Bytes::from_static(b"hello"), Duration::from_secs(60)).await;
    took_rx.await.expect("b took the request first");
    dying.await.unwrap();
    assert_eq!(answer.expect("the request was not asked again of the next owner").as_ref(), b"new owner:hello");
    answering.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_fences_a_stale_writer_and_deduplicates_retries() {
    let nats = Nats::start().await;
    let a = node(&nats, "a").await;
    let conv = Uuid::now_v7();
    let subject = log_subject(EntityKind::Conversation, conv);
    let p1 = append_retrying(&a, &subject, 0, "m1", "one").await.unwrap();
    // A writer that believes the subject is still empty is refused.
    match a.append(&subject, Some(0), "m-other", Bytes::from_static(b"fork")).await {
        Err(ClusterError::Fenced { expected: 0, .. }) => {}
        other => panic!("a stale fence was accepted: {other:?}"),
    }
    // A retry of the first append gets its position back, whatever the fence says now.
    assert_eq!(a.append(&subject, Some(0), "m1", Bytes::from_static(b"one")).await.unwrap(), p1);
    let p2 = a.append(&subject, Some(p1), "m2", Bytes::from_static(b"two")).await.unwrap();
    assert!(p2 > p1);
    assert_eq!(a.last_position(&subject).await.unwrap(), p2);
    assert_eq!(a.last_position(&log_subject(EntityKind::Conversation, Uuid::now_v7())).await.unwrap(), 0);

    // Each subject has a fence of its own.
    let other = log_subject(EntityKind::Store, Uuid::now_v7());
    append_retrying(&a, &other, 0, "s1", "store").await.unwrap();

    let entries = read_to(&a, &subject, 0, p2).await;
    let bodies: Vec<&[u8]> = entries.iter().map(|e| e.payload.as_ref()).collect();
    assert_eq!(bodies, vec![b"one".as_slice(), b"two".as_slice()]);
    assert_eq!(entries.iter().map(|e| e.position).collect::<Vec<_>>(), vec![p1, p2]);
    let tail = read_to(&a, &shard_filter(shard_of(conv)), p1, p2).await;
    assert!(tail.iter().any(|e| e.position == p2 && e.subject == subject));
    assert!(tail.iter().all(|e| e.position > p1 && e.subject.starts_with(&format!("utalk.log.{}.", shard_of(conv)))));

    // Writers racing on one fence: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..12 {
        let (a, subject) = (a.clone(), subject.clone());
        racers.push(tokio::spawn(async move { a.append(&subject, Some(p2), &format!("race-{i}"), Bytes::from_static(b"r")).await }));
    }
    let mut won = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(ClusterError::Fenced { .. }) => {}
            Err(e) => panic!("a racer failed otherwise: {e}"),
        }
    }
    assert_eq!(won, 1, "one racer may extend the log from one position");
    let last = a.last_position(&subject).await.unwrap();
    assert_eq!(read_to(&a, &subject, 0, last).await.len(), 3, "the fence kept one racer's append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_owner_events_reach_listeners_and_a_job_lock_is_held_once() {
    let nats = Nats::start().await;
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    wait_spread(&[&a, &b]).await;
    let shard = b.status().owned_shards[0];
    assert!(!a.owns(shard));
    let mut requests = b.serve(shard).await.unwrap();
    let server = tokio::spawn(async move {
        let req = requests.next().await.expect("a forwarded request");
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(&req.payload);
        (req.reply)(Bytes::from(answer)).await;
        requests
    });
    let answer = a.forward(shard, Bytes::from_static(b"hello"), Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer.as_ref(), b"echo:hello");
    drop(server.await.unwrap());
    // A node that does not own a shard cannot serve it.
    assert!(matches!(a.serve(shard).await, Err(ClusterError::NotOwner { .. })));
    // Nobody serves a shard whose owner stopped listening (the unsubscription reaches the server shortly).
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match a.forward(shard, Bytes::new(), Duration::from_millis(500)).await {
            Err(ClusterError::NoOwner { shard: s }) if s == shard => break,
            other => assert!(Instant::now() < until, "still answered after serving stopped: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Events are at most once: until a's interest has reached b's server, b's
    // events go nowhere (gaps are filled from the log), so b publishes until one arrives.
    let mut events = a.listen("conv.x").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            b.publish("conv.x", Bytes::from_static(b"ev1")).await.unwrap();
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
                return got;
            }
        }
    })
    .await
    .expect("an event from b reaches a's listener");
    assert_eq!(got.unwrap().as_ref(), b"ev1");

    let held = a.try_lock("kpi_rollup").await.unwrap().expect("the lock is free");
    assert!(b.try_lock("kpi_rollup").await.unwrap().is_none(), "held by a");
    // Renewed while held: still held after its time to live.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(b.try_lock("kpi_rollup").await.unwrap().is_none(), "a's lock lapsed while held");
    drop(held);
    let until = Instant::now() + Duration::from_secs(10);
    let mut by_b = loop {
        if let Some(l) = b.try_lock("kpi_rollup").await.unwrap() {
            break l;
        }
        assert!(Instant::now() < until, "a released lock was never free");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A lock whose key is taken away (as when its renewals could not reach
    // NATS and it expired) tells its holder at the next renewal.
    let raw = async_nats::jetstream::new(async_nats::connect(nats.urls().split(',').next().unwrap()).await.unwrap());
    let locks = raw.get_key_value("utalk_locks").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), by_b.lost()).await.expect_err("a held lock is not lost");
    locks.purge("l.kpi_rollup").await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), by_b.lost()).await.expect("the holder learns that it lost the lock");

    // Many takers at once of a lock released before (its key deleted, not
    // gone): one gets it, the others are told it is held, none gets an error.
    for round in 0..5 {
        let name = "race";
        // Free once the last round's winner has let go.
        let until = Instant::now() + Duration::from_secs(5);
        let first = loop {
            if let Some(l) = a.try_lock(name).await.unwrap() {
                break l;
            }
            assert!(Instant::now() < until, "round {round}: the last winner's lock was never released");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Reads may come from a replica behind the leader: wait until one shows
        // this holder's key, then its removal after it, before the race.
        let until = Instant::now() + Duration::from_secs(5);
        let held_at = loop {
            match locks.entry("l.race").await.unwrap() {
                Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => break e.revision,
                _ => assert!(Instant::now() < until, "round {round}: the holder's key never showed"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        drop(first);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match locks.entry("l.race").await.unwrap() {
                Some(e) if e.operation != async_nats::jetstream::kv::Operation::Put && e.revision > held_at => break,
                None => break,
                _ => assert!(Instant::now() < until, "a released lock's key stayed"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let takers: Vec<_> = (0..8).map(|i| if i % 2 == 0 { a.try_lock(name) } else { b.try_lock(name) }).collect();
        let results = futures_util::future::join_all(takers).await;
        let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.to_string())).collect();
        assert!(errors.is_empty(), "round {round}: racing takers got errors: {errors:?}");
        let won = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        assert_eq!(won, 1, "round {round}: {won} takers got the lock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_one_nats_server_is_down_and_it_catches_up() {
    let mut nats = Nats::start().await;
    let a = node(&nats, "a").await;
    let subject = log_subject(EntityKind::Conversation, Uuid::now_v7());
    let mut last = append_retrying(&a, &subject, 0, "k0", "x").await.unwrap();
    for down in 0..3 {
        nats.kill(down);
        for i in 0..5 {
            last = append_retrying(&a, &subject, last, &format!("k{down}-{i}"), "x")
                .await
                .unwrap_or_else(|e| panic!("server {down} down: {e}"));
        }
        nats.restart(down).await;
    }
    // Read once the last server is back, possibly from its replica while it catches up.
    assert_eq!(read_to(&a, &subject, 0, last).await.len(), 16, "every acknowledged append is in the log once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_announce_the_message_format_holds_it_back() {
    use utalk_storage::model::MessageFormat;
    let nats = Nats::start().await;
    let a = node(&nats, "a").await;
    let b = node(&nats, "b").await;
    let wait = |what: &'static str, want: Vec<&'static str>| {
        let a = &a;
        async move {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                let now = a.not_reading(MessageFormat::Compact);
                if now == want {
                    return;
                }
                assert!(Instant::now() < until, "{what}: {now:?}, not {want:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Both run this build: each announces the newest format it reads.
    let until = Instant::now() + Duration::from_secs(10);
    while a.status().live_nodes != vec!["a", "b"] {
        assert!(Instant::now() < until, "a never saw b: {:?}", a.status().live_nodes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait("two nodes of this build", vec![]).await;
    assert!(b.not_reading(MessageFormat::Compact).is_empty());
    assert_eq!(a.not_reading(MessageFormat::Named), Vec::<String>::new());

    // A node of the release before announces its presence only (its key as
    // that release writes it, put by hand so that it takes no shard meanwhile).
    let raw = async_nats::jetstream::new(async_nats::connect(nats.urls().split(',').next().unwrap()).await.unwrap());
    let nodes = raw.get_key_value("utalk_nodes").await.unwrap();
    nodes.put("n.old", Bytes::from_static(b"old")).await.unwrap();
    wait("a node of the release before", vec!["old"]).await;
    // Once it runs this build, it announces the format too.
    nodes.put("f.old.2", Bytes::new()).await.unwrap();
    wait("the node upgraded", vec![]).await;
    nodes.purge("n.old").await.unwrap();
    nodes.purge("f.old.2").await.unwrap();
}
