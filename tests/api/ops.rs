//! The files of ops/: the systemd unit starts the server (the dashboards and
//! alert rules are checked against the code's metrics in dashboards.rs).

fn root() -> std::path::PathBuf {
    crate::helpers::repo_root()
}

#[test]
fn the_systemd_unit_starts_the_server_and_stops_it_gracefully() {
    let unit = std::fs::read_to_string(root().join("ops/utalk.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/utalk serve"));
    assert!(unit.contains("KillSignal=SIGTERM"));
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")));
}
