//! Staff users from the command line. The same operations run whether the
//! server is stopped (the command opens the data directory itself) or
//! running (it asks the server over `<data_dir>/control.sock`, a Unix socket
//! only the data directory's owner may open, so holding the files is the
//! credential, as it is for the data itself). A running node writes through
//! its journal, so in a cluster every node applies the change.

use crate::services::accounts::{self, ChangedBy, CreateUserError, UserChange};
use crate::services::ServiceError;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use utalk_actors::Journal;
use utalk_storage::model::Role;
use utalk_storage::Db;

/// The control socket's file name in the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Largest request line; a password is at most 256 bytes, so this is ample.
const MAX_REQUEST: u64 = 16 * 1024;
/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the command line waits for the server (password hashing included).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests served at once; more wait for a turn (hashing is the cost).
const CONCURRENT: usize = 2;

/// One user operation.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserOp {
    /// Creates a user.
    Add { email: String, role: Role, password: String },
    /// Lists users.
    List,
    /// Locks a user out: tokens, refresh tokens and sockets stop working.
    Disable { email: String },
    /// Lets a disabled user log in again.
    Enable { email: String },
    /// Gives a user another role.
    SetRole { email: String, role: Role },
    /// Sets a user's password; every session of theirs ends.
    Passwd { email: String, password: String },
}

/// The server's answer.
#[derive(Serialize, Deserialize)]
struct Answer {
    ok: bool,
    output: String,
}

/// Runs `op` against this data directory's store and journal; what to print.
pub async fn execute(db: &Db, journal: &Journal, op: UserOp) -> Result<String, anyhow::Error> {
    let find = |email: &str| -> anyhow::Result<uuid::Uuid> {
        Ok(accounts::user_by_email(db, email)?.with_context(|| format!("no user with email {email}"))?.id)
    };
    let changed = |r: Result<utalk_storage::model::User, ServiceError>| -> anyhow::Result<String> {
        let u = r?;
        let state = if u.disabled { "disabled" } else { "enabled" };
        Ok(format!("{} is {} ({state})", u.email, u.role.as_str()))
    };
    let change = |disabled: Option<bool>, role: Option<Role>| UserChange { role, name: None, disabled };
    match op {
        UserOp::Add { email, role, password } => match accounts::create_user(db, journal, &email, role, &password, "cli").await {
            Ok(u) => Ok(format!("created user {} ({}) with id {}", u.email, u.role.as_str(), u.id)),
            Err(CreateUserError::Exists(e)) => bail!("a user with email {e} already exists"),
            Err(e) => Err(e.into()),
        },
        UserOp::List => {
            let mut out = String::new();
            let mut after = None;
            loop {
                let page = accounts::users(db, after, 200)?;
                for u in &page {
                    let state = if u.disabled { "disabled" } else { "enabled" };
                    out.push_str(&format!("{}\t{}\t{}\t{state}\t{}\n", u.id, u.email, u.role.as_str(), u.created_at.to_rfc3339()));
                }
                match page.last() {
                    Some(u) if page.len() == 200 => after = Some(u.id),
                    _ => return Ok(out.trim_end().to_string()),
                }
            }
        }
        UserOp::Disable { email } => {
            changed(accounts::change_user(db, journal, ChangedBy::CommandLine, find(&email)?, change(Some(true), None)).await)
        }
        UserOp::Enable { email } => {
            changed(accounts::change_user(db, journal, ChangedBy::CommandLine, find(&email)?, change(Some(false), None)).await)
        }
        UserOp::SetRole { email, role } => {
            changed(accounts::change_user(db, journal, ChangedBy::CommandLine, find(&email)?, change(None, Some(role))).await)
        }
        UserOp::Passwd { email, password } => {
            let id = find(&email)?;
            accounts::set_password(db, journal, ChangedBy::CommandLine, id, &password, "user.password_reset").await?;
            Ok(format!("set the password of {email}; their sessions ended"))
        }
    }
}

/// The control socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Serves the control socket until the process ends. A file left by a
/// server that died is replaced: this process holds the data directory's
/// lock, so no other server is using it.
pub fn serve(data_dir: &Path, db: Db, journal: Journal) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
    let turns = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let (db, journal, turns) = (db.clone(), journal.clone(), turns.clone());
            tokio::spawn(async move {
                let Ok(_turn) = turns.acquire().await else { return };
                if let Err(e) = answer(stream, &db, &journal).await {
                    tracing::warn!(error = %e, "control socket request failed");
                }
            });
        }
    });
    Ok(())
}

async fn answer(stream: UnixStream, db: &Db, journal: &Journal) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(READ_TIMEOUT, BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line)).await;
    let answer = match read {
        Err(_) => Answer { ok: false, output: "no request within 10 s".into() },
        Ok(Err(e)) => Answer { ok: false, output: format!("cannot read the request: {e}") },
        Ok(Ok(_)) if !line.ends_with('\n') => Answer { ok: false, output: format!("a request is one line of at most {MAX_REQUEST} bytes") },
        Ok(Ok(_)) => match serde_json::from_str::<UserOp>(&line) {
            Err(e) => Answer { ok: false, output: format!("not a user operation: {e}") },
            Ok(op) => match execute(db, journal, op).await {
                Ok(output) => Answer { ok: true, output },
                Err(e) => Answer { ok: false, output: format!("{e:#}") },
            },
        },
    };
    let mut bytes = serde_json::to_vec(&answer)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    Ok(())
}

/// Asks the server running on `data_dir` to do `op`: `None` when no server
/// answers there (the caller then opens the data directory itself).
pub async fn ask_server(data_dir: &Path, op: &UserOp) -> Option<anyhow::Result<String>> {
    let stream = UnixStream::connect(socket_path(data_dir)).await.ok()?;
    Some(
        async {
            let (read, mut write) = stream.into_split();
            let mut line = serde_json::to_vec(op)?;
            line.push(b'\n');
            write.write_all(&line).await?;
            let mut answer = String::new();
            tokio::time::timeout(ANSWER_TIMEOUT, BufReader::new(read.take(1 << 24)).read_line(&mut answer))
                .await
                .context("the server did not answer within 60 s")??;
            let answer: Answer = serde_json::from_str(&answer).context("the server's answer is not one this command understands")?;
            if answer.ok {
                Ok(answer.output)
            } else {
                bail!("{}", answer.output)
            }
        }
        .await,
    )
}
