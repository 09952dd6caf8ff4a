//! Checks of values that parse but make no sense, run before anything starts.

use super::Config;

/// A setting that parses but makes no sense: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

impl Config {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.check().map_err(InvalidSetting)
    }

    // The checks speak in messages; `validate` types them at the edge.
    fn check(&self) -> Result<(), String> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("listen: `{}` is not an address like 127.0.0.1:8080", self.listen))?;
        if let Some(s) = &self.jwt_secret {
            if s.expose().len() < 32 {
                return Err("jwt_secret: must be at least 32 characters".into());
            }
            if let (true, Some(why)) = (self.environment == "production", crate::config::secret::weakness(s.expose())) {
                return Err(format!(
                    "jwt_secret: {why}; in production the signing secret must be random (unset it to have one generated, or use `openssl rand -base64 48`)"
                ));
            }
        }
        if self.auth.jwt_rotate_days == 0 || self.auth.jwt_rotation_grace_days == 0 {
            return Err("auth.jwt_rotate_days and auth.jwt_rotation_grace_days: must be at least 1".into());
        }
        if self.auth.jwt_rotation_grace_days.saturating_mul(86_400) < self.auth.access_ttl_secs {
            return Err("auth.jwt_rotation_grace_days: must outlast an access token (auth.access_ttl_secs)".into());
        }
        if let Some(t) = &self.auth.jwt_secret_set_at {
            if utalk_storage::Timestamp::parse_rfc3339(t).is_none() {
                return Err(format!("auth.jwt_secret_set_at: `{t}` is not an RFC 3339 time"));
            }
        }
        for p in &self.auth.previous_jwt_secrets {
            if utalk_storage::Timestamp::parse_rfc3339(&p.valid_until).is_none() {
                return Err(format!("auth.previous_jwt_secrets: valid_until `{}` is not an RFC 3339 time", p.valid_until));
            }
        }
        for e in &self.http.trusted_proxies {
            let e = e.trim();
            if e.parse::<ipnet::IpNet>().is_err() && e.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("http.trusted_proxies: `{e}` is not an address or a CIDR range such as 10.0.0.0/8 or fd00::/8"));
            }
        }
        if let Some(bad) = self.http.allowed_origins.iter().find(|o| super::normalize_origin(o).is_none()) {
            return Err(format!(
                "http.allowed_origins: `{bad}` is not an origin such as https://shop.example or http://localhost:8080 (scheme and host, no path; `*` is not accepted)"
            ));
        }
        if self.http.requests_per_minute == 0 {
            return Err("http.requests_per_minute: must be at least 1".into());
        }
        if self.http.max_body_bytes < 1024 {
            return Err("http.max_body_bytes: must be at least 1024".into());
        }
        let a = &self.auth;
        if a.max_throttled_keys == 0 || a.password_check_threads == 0 || a.password_check_queue == 0 || a.password_check_wait_ms == 0 {
            return Err(
                "auth: max_throttled_keys, password_check_threads, password_check_queue and password_check_wait_ms must be positive".into(),
            );
        }
        if a.password_check_threads > 64 {
            return Err("auth.password_check_threads: at most 64 (each check holds ~19 MiB)".into());
        }
        if self.auth.access_ttl_secs == 0 || self.auth.refresh_ttl_secs == 0 || self.auth.widget_ttl_secs == 0 {
            return Err("auth: token lifetimes must be positive".into());
        }
        let s = &self.socket;
        if s.ping_interval_ms < 100 || s.ping_timeout_ms < 100 || s.max_payload_bytes < 1024 || s.max_queued == 0 || s.max_replay == 0 {
            return Err(
                "socket: ping times must be at least 100 ms, max_payload_bytes at least 1024, max_queued and max_replay positive".into()
            );
        }
        if s.max_replay_bytes < 65_536 || s.max_queue_bytes < 2 * s.max_replay_bytes {
            // A replay must fit in the queue with room for live traffic, or every join
            // and recovery would end in a slow-consumer close; 64 KiB holds the longest message.
            return Err("socket: max_replay_bytes must be at least 65536 and max_queue_bytes at least twice max_replay_bytes".into());
        }
        if s.max_sessions == 0 || s.max_anonymous_sessions_per_ip == 0 {
            return Err("socket: max_sessions and max_anonymous_sessions_per_ip must be positive".into());
        }
        if !(1..=100).contains(&self.jobs.data_migration_duty_percent) {
            return Err(format!("jobs: data_migration_duty_percent must be 1 to 100, not {}", self.jobs.data_migration_duty_percent));
        }
        if !(100..=10_000).contains(&s.session_flush_ms) {
            return Err(format!("socket: session_flush_ms must be 100 to 10000, not {}", s.session_flush_ms));
        }
        let filters = [("log", Some(self.log_filter())), ("log_file.level", self.log_file.level.as_deref())];
        for (what, f) in filters.into_iter().filter_map(|(w, f)| f.map(|f| (w, f))) {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(f) {
                return Err(format!("{what}: `{f}` is not a log filter such as `info` or `info,utalk=debug`: {e}"));
            }
        }
        if let Some(e) = &self.otlp_endpoint {
            if let Some(why) = endpoint_problem(e) {
                return Err(why);
            }
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(format!("otlp_sample_ratio: {} is not between 0 and 1", self.otlp_sample_ratio));
        }
        let o = &self.backup.offsite;
        match (&o.dir, &o.key) {
            (Some(dir), Some(key)) => {
                utalk_storage::offsite::OffsiteKey::from_base64(key.expose()).map_err(|e| format!("backup.offsite.key: {e}"))?;
                if *dir == self.backup_dir() || *dir == self.data_dir {
                    return Err("backup.offsite.dir: must be another directory than the data and backup directories (another mount)".into());
                }
            }
            (Some(_), None) => return Err("backup.offsite.key: required with backup.offsite.dir (`openssl rand -base64 32`)".into()),
            (None, _) => {}
        }
        if o.max_age_days == 0 {
            return Err("backup.offsite.max_age_days: must be at least 1".into());
        }
        if self.log_file.max_bytes < 1024 {
            return Err("log_file.max_bytes: must be at least 1024".into());
        }
        if self.log_file.keep_days == 0 || self.log_file.error_keep_days == 0 {
            return Err("log_file.keep_days and log_file.error_keep_days: must be at least 1".into());
        }
        if self.log_file.path.is_some() && self.log_file.errors_file() == self.log_file.path {
            return Err("log_file.error_path: must differ from log_file.path".into());
        }
        for d in &self.api.deprecations {
            if !d.route.starts_with('/') {
                return Err(format!("api.deprecations: route `{}` must be a path template starting with /", d.route));
            }
            for (what, t) in [("deprecated", &d.deprecated), ("sunset", &d.sunset)] {
                if utalk_storage::Timestamp::parse_rfc3339(t).is_none() {
                    return Err(format!("api.deprecations: {what} `{t}` of {} is not an RFC 3339 time", d.route));
                }
            }
        }
        let a = &self.alerts;
        match (&a.webhook_url, &a.webhook_secret) {
            (Some(u), Some(s)) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!("alerts.webhook_url: `{u}` is not an http(s) URL"));
                }
                if s.expose().len() < 16 {
                    return Err("alerts.webhook_secret: must be at least 16 characters".into());
                }
            }
            (Some(_), None) => return Err("alerts.webhook_secret: required with alerts.webhook_url (receivers check the signature)".into()),
            (None, _) => {}
        }
        if a.webhook_timeout_ms == 0 || a.webhook_max_attempts == 0 || a.webhook_backoff_base_ms == 0 {
            return Err("alerts: webhook_timeout_ms, webhook_max_attempts and webhook_backoff_base_ms must be positive".into());
        }
        let w = &self.webhooks;
        if !(1..=1000).contains(&w.max_subscriptions)
            || w.timeout_ms == 0
            || w.backoff_base_ms == 0
            || w.backoff_max_ms < w.backoff_base_ms
            || w.retry_for_secs == 0
            || w.disable_after_secs == 0
            || w.keep_deliveries_days == 0
        {
            return Err("webhooks: max_subscriptions must be 1 to 1000; timeout_ms, backoff_base_ms, retry_for_secs, disable_after_secs and keep_deliveries_days positive; backoff_max_ms at least backoff_base_ms".into());
        }
        let m = &self.media;
        if m.uploads_per_minute == 0 || m.max_files_per_conversation == 0 || m.max_bytes_per_conversation < m.max_bytes {
            return Err(
                "media: uploads_per_minute and max_files_per_conversation must be positive, max_bytes_per_conversation at least max_bytes"
                    .into(),
            );
        }
        let q = &self.search;
        if !(100..=60_000).contains(&q.commit_interval_ms)
            || !(15..=1024).contains(&q.writer_memory_mb)
            || !(1..=1024).contains(&q.max_queue_mb)
            || !(1..=100).contains(&q.backfill_duty_percent)
        {
            return Err("search: commit_interval_ms must be 100 to 60000, writer_memory_mb 15 to 1024, max_queue_mb 1 to 1024, backfill_duty_percent 1 to 100".into());
        }
        if !(1..=1024).contains(&self.store.write_buffer_mb) {
            return Err("store.write_buffer_mb: must be between 1 and 1024".into());
        }
        if self.conversations.max_inflight == 0 || self.conversations.idle_timeout_secs == 0 {
            return Err("conversations: max_inflight and idle_timeout_secs must be positive".into());
        }
        if self.cluster.lease_ms < 1000 || self.cluster.replicas == 0 || self.cluster.replicas > 5 || self.cluster.lock_ttl_ms < 1000 {
            return Err("cluster: lease_ms and lock_ttl_ms must be at least 1000, replicas 1 to 5".into());
        }
        if self.cluster.forward_timeout_ms < self.cluster.lease_ms {
            return Err("cluster: forward_timeout_ms must be at least lease_ms, so that a request outlasts a failover".into());
        }
        if let Some(urls) = &self.cluster_url {
            let bad = urls.split(',').map(str::trim).find(|u| !(u.starts_with("nats://") || u.starts_with("tls://")));
            if let Some(u) = bad {
                return Err(format!("cluster_url: `{}` is not a nats:// URL", utalk_actors::cluster::redact_urls(u)));
            }
        }
        let c = &self.cluster;
        if c.tls_cert_file.is_some() != c.tls_key_file.is_some() {
            return Err("cluster: set tls_cert_file and tls_key_file together".into());
        }
        for (name, file) in [("tls_ca_file", &c.tls_ca_file), ("tls_cert_file", &c.tls_cert_file), ("tls_key_file", &c.tls_key_file)] {
            if let Some(f) = file.as_ref().filter(|f| !f.is_file()) {
                return Err(format!("cluster: {name} `{}` is not a file", f.display()));
            }
        }
        for (name, url) in [("public_url", self.public_url.as_deref()), ("twilio_api_base", Some(self.twilio_api_base.as_str()))] {
            if let Some(u) = url {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(format!("{name}: `{u}` must start with https:// or http://"));
                }
            }
        }
        let missing = self.twilio_missing();
        if !missing.is_empty() && missing.len() < 3 {
            return Err(format!("twilio: set {} too, or none of the twilio_* settings", missing.join(", ")));
        }
        if missing.is_empty() && self.public_url.is_none() {
            return Err("public_url: required with Twilio: webhook signatures, status callbacks and media URLs use it".into());
        }
        if self.media.max_bytes == 0 || self.media.url_ttl_secs == 0 || self.media.allowed_types.is_empty() {
            return Err("media: max_bytes, url_ttl_secs and allowed_types must be set".into());
        }
        let d = &self.delivery;
        if d.max_attempts == 0
            || d.backoff_base_ms == 0
            || d.backoff_max_ms < d.backoff_base_ms
            || d.request_timeout_ms == 0
            || d.concurrency == 0
        {
            return Err("delivery: max_attempts, backoff_base_ms, request_timeout_ms and concurrency must be positive, backoff_max_ms at least backoff_base_ms".into());
        }
        let b = &self.bot;
        if b.workers == 0 || b.queue == 0 || b.model_timeout_ms == 0 || b.agent_capacity == 0 {
            return Err("bot: workers, queue, model_timeout_ms and agent_capacity must be positive".into());
        }
        if let Err(e) = self.business_hours.calendar() {
            return Err(format!("business_hours: {e}"));
        }
        for (name, list) in [("bot.allowed_model_hosts", &b.allowed_model_hosts), ("twilio_media_hosts", &self.twilio_media_hosts)] {
            if let Some(why) = list.iter().find_map(|p| utalk_actors::hosts::pattern_problem(p)) {
                return Err(format!("{name}: {why}"));
            }
        }
        Ok(())
    }

    /// The Twilio settings that are not set, of account SID, auth token and sender.
    pub fn twilio_missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.twilio_account_sid.as_deref().is_none_or(str::is_empty) {
            m.push("twilio_account_sid");
        }
        if self.twilio_auth_token.as_ref().is_none_or(|t| t.expose().is_empty()) {
            m.push("twilio_auth_token");
        }
        if self.twilio_from.as_deref().is_none_or(str::is_empty) {
            m.push("twilio_from");
        }
        m
    }

    /// The Twilio account, when every setting it needs is there (`public_url` included).
    pub fn twilio_account(&self) -> Option<utalk_actors::channels::twilio::TwilioAccount> {
        if !self.twilio_missing().is_empty() {
            return None;
        }
        let from = self.twilio_from.clone().unwrap_or_default();
        Some(utalk_actors::channels::twilio::TwilioAccount {
            account_sid: self.twilio_account_sid.clone().unwrap_or_default(),
            auth_token: self.twilio_auth_token.as_ref().map(|t| t.expose().to_string()).unwrap_or_default(),
            from: if from.starts_with("whatsapp:") { from } else { format!("whatsapp:{from}") },
            api_base: self.twilio_api_base.clone(),
            public_url: self.public_url.clone()?,
        })
    }
}

/// Whether `endpoint` can be used, as a reason when it cannot.
pub fn endpoint_problem(endpoint: &str) -> Option<String> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Some(format!(
            "otlp_endpoint must be an http:// URL of a collector, such as http://127.0.0.1:4318 (got `{endpoint}`); send to a local collector that forwards over TLS"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Some(format!("otlp_endpoint `{endpoint}` names no host"));
    }
    None
}
