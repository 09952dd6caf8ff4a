//! Loading and checking the configuration.

use super::validate::endpoint_problem;
use super::*;
use std::path::Path;
use utalk_actors::Durability;

#[test]
fn only_plain_http_endpoints_with_a_host_are_accepted() {
    assert!(endpoint_problem("http://127.0.0.1:4318").is_none());
    assert!(endpoint_problem("https://collector:4318").is_some());
    assert!(endpoint_problem("collector:4318").is_some());
    assert!(endpoint_problem("http://").is_some());
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_listen_on_loopback_8080_with_data_in_dot_data() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert_eq!(c.store.durability, Durability::Sync);
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("utalk.toml");
    std::fs::write(&f, "listen = \"127.0.0.1:9000\"\n[store]\ndurability = \"buffered\"\n[http]\nmax_body_bytes = 4096\n").unwrap();
    let c = Config::load(
        Some(&f),
        env(&[
            ("UTALK_LISTEN", "127.0.0.1:9100"),
            ("UTALK_HTTP__WORKERS", "3"),
            ("UTALK_JWT_SECRET", "12345678901234567890123456789012"),
            // Digits only would be refused as weak in production; this checks it stays a string.
            ("UTALK_ENVIRONMENT", "development"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:9100");
    assert_eq!(c.store.durability, Durability::Buffered);
    assert_eq!(c.http.max_body_bytes, 4096);
    assert_eq!(c.http.workers, 3);
    assert_eq!(c.jwt_secret.unwrap().expose(), "12345678901234567890123456789012");
}

#[test]
fn bad_values_are_clear_errors() {
    let e = Config::load(None, env(&[("UTALK_LISTEN", "nowhere")])).unwrap_err().to_string();
    assert!(e.contains("listen"), "{e}");
    let e = Config::load(None, env(&[("UTALK_STORE__DURABILITY", "maybe")])).unwrap_err().to_string();
    assert!(e.contains("durability") || e.contains("maybe"), "{e}");
    let e = Config::load(None, env(&[("UTALK_STORE__NO_SUCH_THING", "1")])).unwrap_err().to_string();
    assert!(e.contains("no_such_thing"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("utalk.toml");
    std::fs::write(&f, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
    assert!(e.contains("lisen"), "{e}");
    let e = Config::load(None, env(&[("UTALK_JWT_SECRET", "short")])).unwrap_err().to_string();
    assert!(e.contains("32"), "{e}");
}

#[test]
fn variables_that_name_no_setting_are_ignored() {
    let c = Config::load(None, env(&[("UTALK_BIN", "/x/utalk"), ("UTALK_BENCH_QUICK", "1")])).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
}

#[test]
fn twilio_is_all_or_nothing() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert!(c.twilio_account().is_none());
    let e = Config::load(None, env(&[("UTALK_TWILIO_ACCOUNT_SID", "AC1")])).unwrap_err().to_string();
    assert!(e.contains("twilio_auth_token") && e.contains("twilio_from"), "{e}");
    let c = Config::load(
        None,
        env(&[
            ("UTALK_TWILIO_ACCOUNT_SID", "AC1"),
            ("UTALK_TWILIO_AUTH_TOKEN", "s3cr3t-value"),
            ("UTALK_TWILIO_FROM", "+14155238886"),
            ("UTALK_PUBLIC_URL", "https://chat.example.com"),
        ]),
    )
    .unwrap();
    let a = c.twilio_account().unwrap();
    assert_eq!(a.from, "whatsapp:+14155238886");
    assert!(!format!("{a:?}").contains("s3cr3t-value"));
    let e = Config::load(None, env(&[("UTALK_PUBLIC_URL", "chat.example.com")])).unwrap_err().to_string();
    assert!(e.contains("public_url"), "{e}");
    let c = Config::load(None, env(&[("UTALK_MEDIA__ALLOWED_TYPES", "[\"image/*\"]"), ("UTALK_DELIVERY__MAX_ATTEMPTS", "3")])).unwrap();
    assert_eq!(c.media.allowed_types, vec!["image/*".to_string()]);
    assert_eq!(c.delivery.max_attempts, 3);
}

#[test]
fn nats_tls_files_and_url_passwords_are_checked_at_load() {
    let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("node.pem");
    std::fs::write(&pem, "not checked here").unwrap();
    let pem = pem.to_str().unwrap();
    let e = refused(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem)]);
    assert!(e.contains("tls_cert_file and tls_key_file together"), "{e}");
    let e = refused(&[("UTALK_CLUSTER__TLS_CA_FILE", "/nowhere/ca.pem")]);
    assert!(e.contains("tls_ca_file `/nowhere/ca.pem` is not a file"), "{e}");
    let e = refused(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem), ("UTALK_CLUSTER__TLS_KEY_FILE", dir.path().to_str().unwrap())]);
    assert!(e.contains("tls_key_file"), "a directory is not a key file: {e}");
    let e = refused(&[("UTALK_CLUSTER_URL", "http://utalk:s3cret@n1:4222")]);
    assert!(e.contains("not a nats:// URL") && !e.contains("s3cret"), "the password does not print: {e}");
    let c = Config::load(None, env(&[("UTALK_CLUSTER__TLS_CERT_FILE", pem), ("UTALK_CLUSTER__TLS_KEY_FILE", pem)])).unwrap();
    assert!(c.cluster.tls_cert_file.is_some() && c.cluster.tls_key_file.is_some());
}

#[test]
fn search_and_log_file_bounds_are_checked_at_load() {
    let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
    for (k, v) in [
        ("UTALK_SEARCH__COMMIT_INTERVAL_MS", "50"),
        ("UTALK_SEARCH__COMMIT_INTERVAL_MS", "60001"),
        ("UTALK_SEARCH__WRITER_MEMORY_MB", "14"),
        ("UTALK_SEARCH__MAX_QUEUE_MB", "0"),
        ("UTALK_SEARCH__MAX_QUEUE_MB", "1025"),
    ] {
        assert!(refused(&[(k, v)]).contains("search:"), "{k}={v}");
    }
    assert!(refused(&[("UTALK_LOG_FILE__KEEP_DAYS", "0")]).contains("log_file.keep_days"));
    assert!(refused(&[("UTALK_LOG_FILE__ERROR_KEEP_DAYS", "0")]).contains("log_file.keep_days"));
    let same = [("UTALK_LOG_FILE__PATH", "/var/log/utalk/u.log"), ("UTALK_LOG_FILE__ERROR_PATH", "/var/log/utalk/u.log")];
    assert!(refused(&same).contains("log_file.error_path"));
    // The errors file beside the log file, named after it.
    let c = Config::load(None, env(&[("UTALK_LOG_FILE__PATH", "/var/log/utalk/utalk.log")])).unwrap();
    assert_eq!(c.log_file.errors_file(), Some(std::path::PathBuf::from("/var/log/utalk/utalk.error.log")));
    let c = Config::load(None, env(&[("UTALK_LOG_FILE__PATH", "/var/log/utalk/out")])).unwrap();
    assert_eq!(c.log_file.errors_file(), Some(std::path::PathBuf::from("/var/log/utalk/out.error")));
    assert_eq!(Config::load(None, env(&[])).unwrap().log_file.errors_file(), None, "no log file, no errors file");
}

#[test]
fn alert_webhooks_deprecations_and_log_files_are_checked_at_load() {
    let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
    let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "https://ops.example.com/hook")]);
    assert!(e.contains("alerts.webhook_secret: required"), "{e}");
    let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "ftp://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "a-webhook-secret-long-enough")]);
    assert!(e.contains("not an http(s) URL"), "{e}");
    let e = refused(&[("UTALK_ALERTS__WEBHOOK_URL", "https://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "short-one")]);
    assert!(e.contains("at least 16 characters"), "{e}");
    let e = refused(&[("UTALK_LOG_FILE__MAX_BYTES", "10")]);
    assert!(e.contains("log_file.max_bytes"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("utalk.toml");
    std::fs::write(&f, "[[api.deprecations]]\nroute = \"/api/v1/x\"\ndeprecated = \"soon\"\nsunset = \"2027-01-01T00:00:00Z\"\n").unwrap();
    let e = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
    assert!(e.contains("deprecated `soon`"), "{e}");
    std::fs::write(
        &f,
        "[[api.deprecations]]\nroute = \"api/v1/x\"\ndeprecated = \"2026-01-01T00:00:00Z\"\nsunset = \"2027-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    assert!(Config::load(Some(&f), Vec::new()).unwrap_err().to_string().contains("starting with /"));
    let c = Config::load(
        None,
        env(&[("UTALK_ALERTS__WEBHOOK_URL", "https://x"), ("UTALK_ALERTS__WEBHOOK_SECRET", "a-webhook-secret-long-enough")]),
    )
    .unwrap();
    assert!(!format!("{:?}", c.alerts).contains("a-webhook-secret-long-enough"), "the secret does not print");
}

#[test]
fn the_log_level_follows_the_environment_unless_set() {
    let level = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap().log_filter().to_string();
    assert_eq!(level(&[]), "info", "production by default");
    assert!(level(&[("UTALK_ENVIRONMENT", "development")]).contains("utalk=debug"));
    assert_eq!(level(&[("UTALK_ENVIRONMENT", "test")]), "warn");
    assert_eq!(level(&[("UTALK_ENVIRONMENT", "qa-7")]), "info", "an unlisted environment");
    assert_eq!(level(&[("UTALK_ENVIRONMENT", "test"), ("UTALK_LOG", "error")]), "error", "UTALK_LOG wins");
    assert_eq!(level(&[("UTALK_LOG_LEVELS__PRODUCTION", "warn")]), "warn");
    let e = Config::load(None, env(&[("UTALK_LOG", "info,=[")])).unwrap_err().to_string();
    assert!(e.contains("is not a log filter"), "{e}");
    let e = Config::load(None, env(&[("UTALK_LOG_FILE__LEVEL", "utalk=loud")])).unwrap_err().to_string();
    assert!(e.contains("log_file.level"), "{e}");
    let e = Config::load(None, env(&[("UTALK_OTLP_SAMPLE_RATIO", "-0.5")])).unwrap_err().to_string();
    assert!(e.contains("otlp_sample_ratio"), "{e}");
    let c = Config::load(None, env(&[("UTALK_OTLP_SAMPLE_RATIO", "0.25"), ("UTALK_OTLP_ENDPOINT", "http://127.0.0.1:4318")])).unwrap();
    assert_eq!(c.otlp_sample_ratio, 0.25);
}

#[test]
fn the_sample_configuration_loads_and_states_the_defaults() {
    // The directory at run time: a binary reused from another clone's build would read that clone's file.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let sample = Path::new(&dir).join("ops/utalk.sample.toml");
    let loaded = Config::load(Some(&sample), Vec::new()).unwrap();
    let as_toml = |c: &Config| toml::Value::try_from(c).unwrap();
    assert_eq!(as_toml(&loaded), as_toml(&Config::default()), "a value in ops/utalk.sample.toml differs from the default");
}

#[test]
fn credential_host_lists_are_checked_at_load() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!(c.bot.allowed_model_hosts, vec!["api.openai.com".to_string()]);
    assert!(c.twilio_media_hosts.contains(&"api.twilio.com".to_string()));
    let c = Config::load(
        None,
        env(&[("UTALK_TWILIO_MEDIA_HOSTS", "[\"127.0.0.1\", \"*.twiliocdn.com\"]"), ("UTALK_BOT__ALLOWED_MODEL_HOSTS", "[\"::1\"]")]),
    )
    .unwrap();
    assert_eq!(c.twilio_media_hosts, vec!["127.0.0.1".to_string(), "*.twiliocdn.com".to_string()]);
    assert_eq!(c.bot.allowed_model_hosts, vec!["::1".to_string()]);
    let e = Config::load(None, env(&[("UTALK_BOT__ALLOWED_MODEL_HOSTS", "[\"https://api.openai.com/v1\"]")])).unwrap_err().to_string();
    assert!(e.contains("bot.allowed_model_hosts") && e.contains("no scheme, port or path"), "{e}");
    let e = Config::load(None, env(&[("UTALK_TWILIO_MEDIA_HOSTS", "[\"127.0.0.1:8080\"]")])).unwrap_err().to_string();
    assert!(e.contains("twilio_media_hosts"), "{e}");
}

#[test]
fn secrets_do_not_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
}

#[test]
fn socket_memory_and_session_caps_must_hold_together() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!((c.socket.max_queue_bytes, c.socket.max_replay_bytes), (4 << 20, 1 << 20));
    assert_eq!((c.socket.max_sessions, c.socket.max_anonymous_sessions_per_ip), (50_000, 64));
    for bad in [
        [("UTALK_SOCKET__MAX_REPLAY_BYTES", "1000"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
        [("UTALK_SOCKET__MAX_REPLAY_BYTES", "1048576"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "1048576")],
        [("UTALK_SOCKET__MAX_SESSIONS", "0"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
        [("UTALK_SOCKET__MAX_ANONYMOUS_SESSIONS_PER_IP", "0"), ("UTALK_SOCKET__MAX_QUEUE_BYTES", "4194304")],
    ] {
        let e = Config::load(None, env(&bad)).unwrap_err().to_string();
        assert!(e.contains("socket:"), "{bad:?}: {e}");
    }
}

#[test]
fn business_hours_are_off_by_default_and_read_from_the_file_or_the_environment() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert!(!c.business_hours.calendar().unwrap().is_configured(), "always open unless configured");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("utalk.toml");
    std::fs::write(
        &f,
        "[business_hours]\ntimezone = \"Europe/Madrid\"\nmonday = [\"09:00-14:00\", \"16:00-19:00\"]\nholidays = [\"2026-12-25\"]\n",
    )
    .unwrap();
    let c = Config::load(
        Some(&f),
        env(&[
            ("UTALK_BUSINESS_HOURS__SATURDAY", "10:00-13:00, 17:00-20:00"),
            // A date alone is not read as a TOML date.
            ("UTALK_BUSINESS_HOURS__HOLIDAYS", "2026-12-25"),
            ("UTALK_BUSINESS_HOURS__SUNDAY", r#"["10:00-12:00"]"#),
        ]),
    )
    .unwrap();
    let h = c.business_hours.calendar().unwrap();
    assert_eq!(h.zone_name(), Some("Europe/Madrid"));
    assert_eq!(c.business_hours.saturday, ["10:00-13:00", "17:00-20:00"]);
    assert_eq!(c.business_hours.monday.len(), 2);
    assert_eq!(c.business_hours.holidays, ["2026-12-25"]);
    assert_eq!(c.business_hours.sunday, ["10:00-12:00"]);
}

#[test]
fn bad_business_hours_are_refused_with_the_reason() {
    let refused = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
    let e = refused(&[("UTALK_BUSINESS_HOURS__MONDAY", "09:00-18:00")]);
    assert!(e.contains("business_hours: timezone: required"), "{e}");
    let e = refused(&[("UTALK_BUSINESS_HOURS__TIMEZONE", "Europe/Atlantis"), ("UTALK_BUSINESS_HOURS__MONDAY", "09:00-18:00")]);
    assert!(e.contains("Europe/Atlantis") && e.contains("IANA"), "{e}");
    let e = refused(&[("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC"), ("UTALK_BUSINESS_HOURS__MONDAY", "22:00-02:00")]);
    assert!(e.contains("monday") && e.contains("past midnight"), "{e}");
    let e = refused(&[("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC"), ("UTALK_BUSINESS_HOURS__FRIDAY", "09:00-12:00,11:00-13:00")]);
    assert!(e.contains("friday") && e.contains("overlap"), "{e}");
    let e = refused(&[("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC")]);
    assert!(e.contains("never open"), "{e}");
    let e = refused(&[
        ("UTALK_BUSINESS_HOURS__TIMEZONE", "UTC"),
        ("UTALK_BUSINESS_HOURS__MONDAY", "09:00-18:00"),
        ("UTALK_BUSINESS_HOURS__HOLIDAYS", "2026-13-01"),
    ]);
    assert!(e.contains("holidays") && e.contains("2026-13-01"), "{e}");
    assert_eq!(
        BusinessHoursSection { monday: vec!["09:00-18:00".into()], ..Default::default() }.calendar().unwrap_err(),
        BusinessHoursError::NoZone
    );
}

#[test]
fn off_machine_backups_need_a_good_key_and_a_directory_of_their_own() {
    let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
    let e = refused(&[("UTALK_BACKUP__OFFSITE__DIR", "/mnt/offsite")]);
    assert!(e.contains("backup.offsite.key: required"), "{e}");
    let e = refused(&[("UTALK_BACKUP__OFFSITE__DIR", "/mnt/offsite"), ("UTALK_BACKUP__OFFSITE__KEY", "c2hvcnQ=")]);
    assert!(e.contains("32 random bytes"), "{e}");
    let key = ("UTALK_BACKUP__OFFSITE__KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let e = refused(&[("UTALK_DATA_DIR", "/srv/utalk/data"), ("UTALK_BACKUP__OFFSITE__DIR", "/srv/utalk/data-backups"), key]);
    assert!(e.contains("another directory"), "{e}");
    let e = refused(&[("UTALK_BACKUP__OFFSITE__DIR", "/mnt/offsite"), key, ("UTALK_BACKUP__OFFSITE__MAX_AGE_DAYS", "0")]);
    assert!(e.contains("at least 1"), "{e}");
    let c = Config::load(None, env(&[("UTALK_BACKUP__OFFSITE__DIR", "/mnt/offsite"), key])).unwrap();
    assert_eq!(c.offsite().map(|o| o.dir().to_path_buf()), Some(std::path::PathBuf::from("/mnt/offsite")));
    assert!(!format!("{c:?}").contains("AAECAwQF"), "the key is not in the configuration's Debug");
    assert!(Config::load(None, env(&[])).unwrap().offsite().is_none());
}

#[test]
fn session_flush_and_migration_pace_out_of_range_are_refused() {
    let refused = |vars: &[(&str, &str)]| Config::load(None, env(vars)).unwrap_err().to_string();
    for v in ["99", "10001"] {
        let e = refused(&[("UTALK_SOCKET__SESSION_FLUSH_MS", v)]);
        assert!(e.contains("session_flush_ms must be 100 to 10000"), "{e}");
    }
    for v in ["0", "101"] {
        let e = refused(&[("UTALK_JOBS__DATA_MIGRATION_DUTY_PERCENT", v)]);
        assert!(e.contains("data_migration_duty_percent must be 1 to 100"), "{e}");
        let e = refused(&[("UTALK_SEARCH__BACKFILL_DUTY_PERCENT", v)]);
        assert!(e.contains("backfill_duty_percent 1 to 100"), "{e}");
    }
    // The schedule key of 0.1.0's job is still read.
    let c = Config::load(None, env(&[("UTALK_JOBS__CONTACT_BACKFILL", "0 0 0 1 1 *")])).unwrap();
    assert_eq!(c.jobs.data_migrations, "0 0 0 1 1 *");
}
