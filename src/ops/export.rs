//! `utalk export`: collections as gzip'd JSON lines, sensitive fields left out.

use anyhow::Context;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use utalk_storage::codec::{decode, Record};
use utalk_storage::model::{AuditEvent, BotRun, Conversation, Escalation, JobRun, MediaRecord, Message, Rating, User};
use utalk_storage::{Db, Map};

/// What can be exported, in the order `--collections all` writes them.
pub const COLLECTIONS: &[&str] =
    &["users", "conversations", "messages", "media", "bot_runs", "escalations", "ratings", "audit", "job_runs"];

fn map_of(name: &str) -> Option<Map> {
    Some(match name {
        "users" => Map::Users,
        "conversations" => Map::Conversations,
        "messages" => Map::Messages,
        "media" => Map::Media,
        "bot_runs" => Map::BotRuns,
        "escalations" => Map::Escalations,
        "ratings" => Map::Ratings,
        "audit" => Map::Audit,
        "job_runs" => Map::JobRuns,
        _ => return None,
    })
}

fn json<V: Record>(bytes: &[u8]) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(decode::<V>(bytes)?)?)
}

fn to_json(name: &str, bytes: &[u8]) -> anyhow::Result<Value> {
    match name {
        "users" => json::<User>(bytes),
        "conversations" => json::<Conversation>(bytes),
        "messages" => json::<Message>(bytes),
        "media" => json::<MediaRecord>(bytes),
        "bot_runs" => json::<BotRun>(bytes),
        "escalations" => json::<Escalation>(bytes),
        "ratings" => json::<Rating>(bytes),
        "audit" => json::<AuditEvent>(bytes),
        "job_runs" => json::<JobRun>(bytes),
        other => anyhow::bail!("unknown collection `{other}`"),
    }
}

/// Removes every field whose name says it is a secret (password hashes, tokens, secrets), at any depth.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                !(k.contains("password") || k.contains("token") || k.contains("secret"))
            });
            map.values_mut().for_each(redact);
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The collections named in `spec` (comma-separated, or `all`), checked.
pub fn parse_collections(spec: &str) -> anyhow::Result<Vec<&'static str>> {
    if spec.trim() == "all" {
        return Ok(COLLECTIONS.to_vec());
    }
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            COLLECTIONS
                .iter()
                .copied()
                .find(|c| *c == s)
                .with_context(|| format!("unknown collection `{s}`; choose from {}", COLLECTIONS.join(", ")))
        })
        .collect()
}

/// Writes `<out>/<collection>.jsonl.gz` for each collection; returns the counts.
pub fn export(db: &Db, collections: &[&str], out: &Path, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<(String, u64)>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut counts = Vec::new();
    for name in collections {
        let map = map_of(name).with_context(|| format!("unknown collection `{name}`"))?;
        let path = out.join(format!("{name}.jsonl.gz"));
        let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut gz = GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::default());
        let mut start = Vec::new();
        let mut n = 0u64;
        let mut report_at = 100_000;
        loop {
            let page = db.scan_raw(map, &[], &start, 1_000)?;
            let Some((last, _)) = page.last() else { break };
            start = last.iter().copied().chain(std::iter::once(0)).collect();
            for (_, bytes) in &page {
                let mut v = to_json(name, bytes)?;
                redact(&mut v);
                serde_json::to_writer(&mut gz, &v)?;
                gz.write_all(b"\n")?;
                n += 1;
            }
            if n >= report_at {
                progress(&format!("{name}: {n} records so far"));
                report_at += 100_000;
            }
        }
        gz.finish()?.flush()?;
        progress(&format!("{name}: {n} records → {}", path.display()));
        counts.push((name.to_string(), n));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_at_any_depth() {
        let mut v = serde_json::json!({"id": 1, "passwordHash": "x", "nested": [{"refreshToken": "t", "keep": 2}], "apiSecret": "s"});
        redact(&mut v);
        assert_eq!(v, serde_json::json!({"id": 1, "nested": [{"keep": 2}]}));
    }

    #[test]
    fn collections_are_checked() {
        assert_eq!(parse_collections("users, messages").unwrap(), vec!["users", "messages"]);
        assert_eq!(parse_collections("all").unwrap().len(), COLLECTIONS.len());
        assert!(parse_collections("refresh_tokens").unwrap_err().to_string().contains("choose from"));
    }
}
