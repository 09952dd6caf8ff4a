//! The generated token signing key on a cluster: without `UTALK_JWT_SECRET`
//! the first node to start makes the key and writes it through the log, so
//! every node signs and verifies with the same one; so with the media URL
//! secret.

use crate::cluster_nodes::{cluster_add_user, fetch_media, http_client, login_polling, node_env, start_node, upload_media, wait_spread};
use crate::helpers::ADMIN;
use crate::nats::Nats;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_configured_secrets_share_one_generated_signing_key_and_media_secret() {
    let nats = Nats::start().await;
    let urls = nats.urls();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (dir, id) in dirs.iter().zip(["n1", "n2"]) {
        let env: Vec<(String, String)> = node_env(&urls, id).into_iter().filter(|(k, _)| k != "UTALK_JWT_SECRET").collect();
        nodes.push(start_node(&dir.path().join("data"), &env).await);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = http_client();
    wait_spread(&http, &bases, &["n1", "n2"], Duration::from_secs(60)).await;
    cluster_add_user(dirs[0].path(), &urls, ADMIN.0, "admin", ADMIN.1).await;
    for (signer, checker) in [(0, 1), (1, 0)] {
        let token = login_polling(&http, &bases[signer], ADMIN, Duration::from_secs(20)).await;
        let r = http.get(format!("{}/api/v1/auth/me", bases[checker])).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "a token signed on node {} verifies on node {}", signer + 1, checker + 1);
    }
    // A media link signed by node 1 opens on node 2.
    let token = login_polling(&http, &bases[0], ADMIN, Duration::from_secs(20)).await;
    let png = b"\x89PNG\r\n\x1a\nshared-secret-test";
    let path = upload_media(&http, &bases[0], &token, png).await;
    assert_eq!(fetch_media(&http, &bases[1], &path).await.expect("node 2 serves node 1's signed link"), png.to_vec());
}
