//! The command line.

use crate::app::{open_db, Application};
use crate::config::Config;
use crate::services::backfill::SearchBackfill;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use utalk_actors::{Durability, StoreWriter};
use utalk_storage::backup::Backups;
use utalk_storage::model::Role;

/// utalk: customer conversations over live chat and WhatsApp, with a bot, agents and stores.
#[derive(Debug, Parser)]
#[command(name = "utalk", version, about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "UTALK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and UTALK_DATA_DIR).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Manages staff users.
    #[command(subcommand)]
    User(UserCommand),
    /// Takes, lists, verifies and restores backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Shows or applies schema migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Rotates secrets utalk keeps in the data directory.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Backs up and restores a cluster's replicated log (needs UTALK_CLUSTER_URL).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// KPI figures and the daily report (work while the server runs).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Writes collections as gzip'd JSON lines, without password hashes, tokens or secrets (works while the server runs).
    Export {
        /// Comma-separated: users, conversations, messages, media, bot_runs, escalations, ratings, audit, job_runs; or `all`.
        #[arg(long, default_value = "all")]
        collections: String,
        /// Output directory (created; one `<collection>.jsonl.gz` each).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `utalk cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Writes the whole replicated log, up to its end now, to a new file (works while the nodes run).
    Backup {
        /// The file to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Checks a log backup file: its checksum, entry count and positions.
    Verify {
        /// The backup file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Appends a log backup to the empty log of a new NATS cluster, each entry at its old position.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
}

/// `utalk secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Replaces the generated token signing secret (server stopped); tokens signed with the old one keep working for the grace period.
    RotateJwt {
        /// Seconds the old secret keeps verifying; default the access token lifetime, so no signed-in user is logged out.
        #[arg(long)]
        grace_secs: Option<u64>,
    },
}

/// `utalk report …`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// KPIs per hour or day as a table, CSV or JSON.
    Kpis {
        /// Start (RFC 3339); default a day (hours) or 30 days (days) before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339, exclusive); default now.
        #[arg(long)]
        to: Option<String>,
        /// `hour` or `day` (UTC).
        #[arg(long, default_value = "hour")]
        granularity: String,
        /// Only this channel: web, whatsapp or api.
        #[arg(long)]
        channel: Option<String>,
        /// Only the conversations assigned to this agent (user id).
        #[arg(long)]
        agent: Option<uuid::Uuid>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: crate::ops::report::Format,
    },
    /// Writes the daily HTML report of a UTC day into the data directory's `reports/` folder.
    Daily {
        /// The day, YYYY-MM-DD; default yesterday.
        #[arg(long)]
        date: Option<String>,
        /// Write into this folder instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `utalk migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// The stored schema version, this build's, and the migrations pending (works while the server runs).
    Status,
    /// Applies pending migrations (backup first, restored on failure); the server must be stopped.
    Up {
        /// Show what would change without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Takes the data back to an older schema version in place, keeping every
    /// write made since, so the release before can serve it (backup first,
    /// restored on failure); the server must be stopped. Run it with the newer
    /// release's binary: only it knows how to reverse its steps.
    Rollback {
        /// The schema version to go back to: the older release's (docs/runbooks/upgrade.md lists each release's).
        #[arg(long)]
        to: u32,
    },
}

/// `utalk backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Takes a backup now (the server must be stopped; while it runs, use POST /api/v1/admin/backups).
    Create,
    /// Lists the backups.
    List,
    /// Verifies one backup, or all.
    Verify {
        /// The backup to verify (default: all).
        #[arg(long)]
        backup_id: Option<u32>,
    },
    /// Restores a backup into a new data directory; start the server on it with --data-dir.
    Restore {
        /// The backup (default: the latest).
        #[arg(long)]
        backup_id: Option<u32>,
        /// The new data directory (must not exist or be empty).
        #[arg(long)]
        to: PathBuf,
        /// Restore from an encrypted off-machine archive instead (a name in
        /// backup.offsite.dir, or a path): decrypted and verified with backup.offsite.key.
        #[arg(long, conflicts_with = "backup_id")]
        from_offsite: Option<PathBuf>,
    },
    /// Copies a backup (default: the latest), encrypted, to backup.offsite.dir now.
    Ship {
        /// The backup.
        #[arg(long)]
        backup_id: Option<u32>,
    },
    /// Lists the encrypted archives in backup.offsite.dir.
    Offsite,
}

/// `utalk serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `utalk user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a staff user; the password is read from standard input.
    Add {
        /// Login email.
        #[arg(long)]
        email: String,
        /// admin, operator, agent or readonly.
        #[arg(long)]
        role: String,
        /// Read the password from standard input (required, so it never shows in `ps`).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists staff users: id, email, role, enabled or disabled, created.
    List,
    /// Locks a user out: their tokens, refresh tokens and open sockets stop working.
    Disable {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// Lets a disabled user log in again.
    Enable {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// Gives a user another role; tokens already issued act with it at once.
    SetRole {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// admin, operator, agent or readonly.
        #[arg(long)]
        role: String,
    },
    /// Sets a user's password (read from standard input); their sessions end.
    Passwd {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required, so it never shows in `ps`).
        #[arg(long)]
        password_stdin: bool,
    },
}

impl Cli {
    /// Loads the configuration this invocation asks for.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Command::Serve(ServeArgs { listen: Some(l) }) = &self.command {
            config.listen = l.clone();
        }
        config.validate().map_err(|m| anyhow::anyhow!("invalid configuration: {m}"))?;
        Ok(config)
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config()?;
    crate::observe::telemetry::init(&config, matches!(cli.command, Command::Serve(_)));
    let result = run_command(cli, config);
    // Logs are buffered; the process ends right after this.
    crate::observe::log_buffer::flush_all();
    result
}

fn run_command(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => {
            let served = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(config).await?;
                app.run_until_stopped().await
            });
            crate::observe::traces::shutdown();
            served
        }
        Command::User(cmd) => actix_web::rt::System::new().block_on(user_command(config, cmd)),
        Command::Backup(cmd) => backup_command(&config, cmd),
        Command::Cluster(cmd) => actix_web::rt::System::new().block_on(cluster_command(config, cmd)),
        Command::Migrate(cmd) => migrate_command(&config, cmd),
        Command::Report(cmd) => report_command(&config, cmd),
        Command::Secrets(SecretsCommand::RotateJwt { grace_secs }) => {
            if config.jwt_secret.is_some() {
                bail!(
                    "the signing secret comes from jwt_secret (UTALK_JWT_SECRET): set the new one there and list the old one in [[auth.previous_jwt_secrets]] with a valid_until (docs/auth.md)"
                );
            }
            if config.cluster_url.is_some() {
                bail!(
                    "in a cluster the generated signing key is shared through the log and rotated by the secret_rotation job (auth.jwt_rotate_days); this command rotates one node alone's key (docs/auth.md)"
                );
            }
            let db = open_db(&config).with_context(|| "stop the server first: rotation writes to the data directory")?;
            let grace = std::time::Duration::from_secs(grace_secs.unwrap_or(config.auth.access_ttl_secs));
            let until = actix_web::rt::System::new().block_on(async {
                let writer = StoreWriter::start(db.clone(), Durability::Sync)?;
                let journal = utalk_actors::Journal::standalone(&db, writer.clone(), "cli");
                let until = crate::services::secrets::rotate_jwt(&db, &journal, grace).await;
                writer.shutdown();
                anyhow::Ok(until?)
            })?;
            println!(
                "rotated the token signing secret; tokens signed with the old one verify until {} — start the server to use the new one",
                until.to_rfc3339()
            );
            Ok(())
        }
        Command::Export { collections, out } => {
            let collections = crate::ops::export::parse_collections(&collections)?;
            let db = utalk_storage::Db::open_read_only(&config.data_dir)
                .with_context(|| format!("cannot read the data directory {}", config.data_dir.display()))?;
            let counts = crate::ops::export::export(&db, &collections, &out, &mut |step| eprintln!("utalk export: {step}"))?;
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            println!("exported {total} records from {} collections into {}", counts.len(), out.display());
            Ok(())
        }
    }
}

/// Opens the store for a report: with the server stopped, the KPIs are
/// rolled up first; while it runs, its rollups (every 5 minutes) are read as they are.
fn report_db(config: &Config) -> anyhow::Result<utalk_storage::Db> {
    use utalk_storage::model::kpi;
    use utalk_storage::{Db, StoreError, SCHEMA_VERSION};
    let behind = |db: &Db| -> anyhow::Result<()> {
        match db.schema_version()? {
            Some(v) if v < SCHEMA_VERSION => {
                bail!("the database is at schema version {v}, this build reads {SCHEMA_VERSION}: run `utalk migrate up` (or start the server) first")
            }
            _ => Ok(()),
        }
    };
    if !config.data_dir.exists() {
        bail!("no data directory at {}", config.data_dir.display());
    }
    let as_of =
        |db: &Db| -> anyhow::Result<String> { Ok(kpi::rolled_up_at(db)?.map(|t| t.to_rfc3339()).unwrap_or_else(|| "none yet".into())) };
    match Db::open(&config.data_dir, &utalk_storage::DbOptions::default()) {
        Ok(db) if utalk_actors::durability::applied_position(&db) > 0 => {
            // A cluster node's rollups come through the log from the leading
            // node: one made here would be this node's alone.
            behind(&db)?;
            eprintln!(
                "utalk report: this data directory belongs to a cluster node; figures as of the cluster's last rollup ({})",
                as_of(&db)?
            );
            Ok(db)
        }
        Ok(db) => {
            behind(&db)?;
            let hours = std::sync::Arc::new(config.business_hours.calendar().context("business_hours")?);
            let rolled = actix_web::rt::System::new().block_on({
                let db = db.clone();
                async move {
                    let writer = StoreWriter::start(db.clone(), config.store.durability)?;
                    let journal = utalk_actors::Journal::standalone(&db, writer, "cli");
                    anyhow::Ok(utalk_schedules::kpi_rollup::roll_up(&db, &journal, &hours).await?)
                }
            })?;
            eprintln!("utalk report: rolled up {} hour(s) and {} day(s) first", rolled.hours, rolled.days);
            Ok(db)
        }
        Err(StoreError::Locked { .. }) => {
            let db = Db::open_read_only(&config.data_dir)
                .with_context(|| format!("cannot read the data directory {}", config.data_dir.display()))?;
            behind(&db)?;
            eprintln!("utalk report: the server is running; figures as of its last rollup ({})", as_of(&db)?);
            Ok(db)
        }
        Err(e) => Err(e).with_context(|| format!("cannot open the data directory {}", config.data_dir.display())),
    }
}

fn report_command(config: &Config, cmd: ReportCommand) -> anyhow::Result<()> {
    use utalk_schedules::daily_report;
    use utalk_storage::model::kpi::{Granularity, DAY_MS};
    use utalk_storage::Timestamp;
    match cmd {
        ReportCommand::Kpis { from, to, granularity, channel, agent, format } => {
            let range = crate::services::reports::KpiRange::parse(
                from.as_deref(),
                to.as_deref(),
                Some(&granularity),
                channel.as_deref(),
                agent,
                Timestamp::now(),
            )?;
            let db = report_db(config)?;
            print!("{}", crate::ops::report::render(&range.rows(&db)?, format));
            Ok(())
        }
        ReportCommand::Daily { date, out } => {
            let day = match date.as_deref() {
                Some(d) => daily_report::parse_date(d).ok_or_else(|| anyhow::anyhow!("--date must be a day as YYYY-MM-DD, got {d:?}"))?,
                None => Granularity::Day.bucket_start(Timestamp::now()) - DAY_MS,
            };
            let db = report_db(config)?;
            let dir = out.unwrap_or_else(|| config.data_dir.join("reports"));
            let (path, figures) = daily_report::make(&db, &dir, day)?;
            println!("wrote {} ({} conversations, {} messages)", path.display(), figures.total.conversations, figures.total.messages);
            Ok(())
        }
    }
}

fn migrate_command(config: &Config, cmd: MigrateCommand) -> anyhow::Result<()> {
    use utalk_storage::migrations;
    let registry = migrations::registry();
    match cmd {
        MigrateCommand::Status | MigrateCommand::Up { dry_run: true } => {
            let db = utalk_storage::Db::open_read_only(&config.data_dir)
                .with_context(|| format!("cannot read the data directory {}", config.data_dir.display()))?;
            let (version, pending) = migrations::status(&db, &registry)?;
            let readable_from = db.readable_from()?.unwrap_or(version);
            println!(
                "schema version {version}, readable by builds of version {readable_from} or newer; this build writes {}",
                utalk_storage::SCHEMA_VERSION
            );
            if version > utalk_storage::SCHEMA_VERSION {
                println!(
                    "written by a newer release; this build {} it",
                    if readable_from <= utalk_storage::SCHEMA_VERSION { "can serve" } else { "cannot serve" }
                );
            } else if pending.is_empty() {
                println!("up to date");
            }
            for m in pending {
                let changes = if matches!(cmd, MigrateCommand::Up { .. }) {
                    (m.up)(&db).map(|b| format!(": {} writes", b.len())).unwrap_or_else(|e| format!(": would fail: {e}"))
                } else {
                    String::new()
                };
                println!("pending {}: {}{changes}", m.version, m.description);
            }
            // Background data migrations: the server runs them while it serves (the data_migrations job).
            let search_dir = config.data_dir.join("search");
            let search = if config.search.enabled { SearchBackfill::OnDisk(&search_dir) } else { SearchBackfill::Off };
            if let Ok(view) = crate::services::backfill::status(&db, search) {
                for m in view.items {
                    let error = m.last_error.map(|e| format!("; last error: {e}")).unwrap_or_default();
                    println!("background {}: {}, {} records in {} steps{error} ({})", m.name, m.state, m.processed, m.steps, m.description);
                }
            }
        }
        MigrateCommand::Up { dry_run: false } => {
            let report = crate::app::migrate_db(config, &mut |step| eprintln!("utalk migrate: {step}"))
                .with_context(|| "stop the server first: migrations need the data directory to themselves")?;
            if report.from == report.to {
                println!("schema version {}: up to date", report.to);
            } else {
                println!(
                    "migrated from schema version {} to {} (backup {} taken first)",
                    report.from,
                    report.to,
                    report.backup_id.unwrap_or(0)
                );
            }
        }
        MigrateCommand::Rollback { to } => {
            let report = crate::app::rollback_db(config, to, &mut |step| eprintln!("utalk migrate: {step}"))
                .with_context(|| "stop the server first: a rollback needs the data directory to itself")?;
            if report.from == report.to {
                println!("schema version {}: nothing to roll back to version {to}", report.from);
            } else {
                println!(
                    "rolled back from schema version {} to {} in place (backup {} taken first)",
                    report.from,
                    report.to,
                    report.backup_id.unwrap_or(0)
                );
            }
        }
    }
    Ok(())
}

fn offsite(config: &Config) -> anyhow::Result<utalk_storage::offsite::Offsite> {
    config.offsite().ok_or_else(|| {
        anyhow::anyhow!(
            "no off-machine target: set backup.offsite.dir and backup.offsite.key (UTALK_BACKUP__OFFSITE__DIR, UTALK_BACKUP__OFFSITE__KEY)"
        )
    })
}

fn backup_command(config: &Config, cmd: BackupCommand) -> anyhow::Result<()> {
    let backups = Backups::new(config.backup_dir());
    let mut progress = |step: &str| eprintln!("utalk backup: {step}");
    match cmd {
        BackupCommand::Create => {
            let db =
                open_db(config).with_context(|| "the server holds the data directory: use POST /api/v1/admin/backups while it runs")?;
            let started = std::time::Instant::now();
            let b = backups.create(&db, &config.data_dir.join("media"), &mut progress)?;
            println!(
                "backup {} taken and verified: {} files, {} bytes, in {:.1} s, in {}",
                b.id,
                b.files,
                b.size,
                started.elapsed().as_secs_f64(),
                backups.dir().display()
            );
        }
        BackupCommand::List => {
            let list = backups.list()?;
            if list.is_empty() {
                println!("no backups in {}", backups.dir().display());
            }
            for b in list {
                println!("{}\t{}\t{} files\t{} bytes", b.id, b.created_at.to_rfc3339(), b.files, b.size);
            }
        }
        BackupCommand::Verify { backup_id } => {
            let ids: Vec<u32> = match backup_id {
                Some(i) => vec![i],
                None => backups.list()?.into_iter().map(|b| b.id).collect(),
            };
            if ids.is_empty() {
                bail!("no backups in {}", backups.dir().display());
            }
            for id in ids {
                backups.verify(id).with_context(|| format!("backup {id} failed verification"))?;
                println!("backup {id}: ok");
            }
        }
        BackupCommand::Restore { to, from_offsite: Some(file), .. } => {
            let started = std::time::Instant::now();
            // The ledger goes where a server started on the restored directory looks for it.
            let ledger_dir = config.backup_dir_for(&to);
            let r = offsite(config)?.restore(&file, &to, &ledger_dir, &mut progress)?;
            println!(
                "restored {} ({} files, {} bytes, every chunk verified) into {} in {:.1} s; start the server with --data-dir {}",
                file.display(),
                r.files,
                r.bytes,
                to.display(),
                started.elapsed().as_secs_f64(),
                to.display()
            );
        }
        BackupCommand::Ship { backup_id } => {
            let target = offsite(config)?;
            let b = backups.pick(backup_id)?;
            let started = std::time::Instant::now();
            let a = target.ship(&backups, b.id, b.created_at, &mut progress)?;
            println!(
                "backup {} encrypted and copied to {} ({} bytes) in {:.1} s",
                b.id,
                target.dir().join(&a.name).display(),
                a.bytes,
                started.elapsed().as_secs_f64()
            );
        }
        BackupCommand::Offsite => {
            let target = offsite(config)?;
            let list = target.list()?;
            if list.is_empty() {
                println!("no archives in {}", target.dir().display());
            }
            for a in list {
                println!("{}\tbackup {}\t{}\t{} bytes", a.name, a.backup_id, a.created_at.to_rfc3339(), a.bytes);
            }
        }
        BackupCommand::Restore { backup_id, to, from_offsite: None } => {
            let started = std::time::Instant::now();
            let id = backups.restore(backup_id, &to, &mut progress)?;
            println!(
                "restored backup {id} into {} in {:.1} s; start the server with --data-dir {}",
                to.display(),
                started.elapsed().as_secs_f64(),
                to.display()
            );
        }
    }
    Ok(())
}

/// `user add` with a cluster: the user goes into the cluster's log, which
/// every node applies; the address is claimed there, so it stays unique.
/// The local data directory is not opened (a node may be running on it).
async fn add_user_to_cluster(config: &Config, email: &str, role: Role, password: &str) -> anyhow::Result<()> {
    use crate::services::accounts::{CreateUserError, NewUser};
    let new = NewUser::check(email, role, password, "cli").await?;
    let cluster = cluster_tool(config).await?;
    match new.add_to_log(&cluster).await {
        Ok((u, Some(position))) => {
            println!("created user {} ({}) with id {} in the cluster (log position {position})", u.email, u.role.as_str(), u.id);
            Ok(())
        }
        Ok((u, None)) => bail!("a user with email {} already exists in the cluster", u.email),
        Err(e @ CreateUserError::Write(_)) => Err(e).context("the cluster did not take the user; run the command again"),
        Err(e) => Err(e.into()),
    }
}

/// Connects to the cluster as a tool, not a node: it takes no shards.
async fn cluster_tool(config: &Config) -> anyhow::Result<utalk_actors::cluster::NatsCluster> {
    use utalk_actors::cluster::{redact_urls, NatsCluster};
    let urls = config.cluster_url.clone().context("set UTALK_CLUSTER_URL to the cluster's NATS servers")?;
    let settings = crate::app::nats_settings(config, &urls, config.node_id.as_deref().unwrap_or("cli"), false);
    NatsCluster::connect(settings).await.with_context(|| format!("cannot reach the cluster at {}", redact_urls(&urls)))
}

async fn cluster_command(config: Config, cmd: ClusterCommand) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut progress = |at: u64, end: u64| eprintln!("  position {at} of {end}");
    match cmd {
        ClusterCommand::Verify { file } => {
            let s = crate::ops::cluster_log::verify(&file)?;
            println!("{}: {} entries up to position {} and {} files, checksum good", file.display(), s.entries, s.last, s.files);
        }
        ClusterCommand::Backup { to } => {
            let cluster = cluster_tool(&config).await?;
            let s = crate::ops::cluster_log::backup(&cluster, &to, &mut progress).await?;
            println!(
                "backed up {} log entries and {} files to {} in {:.1} s",
                s.entries,
                s.files,
                to.display(),
                started.elapsed().as_secs_f64()
            );
        }
        ClusterCommand::Restore { from } => {
            let cluster = cluster_tool(&config).await?;
            let s = crate::ops::cluster_log::restore(&cluster, &from, &mut progress).await?;
            println!(
                "restored {} log entries and {} files from {} in {:.1} s; start the nodes (empty data directories rebuild from the log)",
                s.entries,
                s.files,
                from.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The password of `user add` or `user passwd`, from standard input.
fn password_from_stdin(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("pass --password-stdin and write the password to standard input (it must not appear on the command line)");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_string())
}

fn role_named(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).with_context(|| format!("unknown role `{role}`: use admin, operator, agent or readonly"))
}

/// Runs a user command: through the server when one runs on the data
/// directory, else on the data directory itself (or, for `user add` with
/// a cluster and no node here, straight into the cluster's log).
async fn user_command(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    use crate::ops::user_admin::{self, UserOp};
    let op = match cmd {
        UserCommand::Add { email, role, password_stdin } => {
            let role = role_named(&role)?;
            UserOp::Add { email, role, password: password_from_stdin(password_stdin)? }
        }
        UserCommand::List => UserOp::List,
        UserCommand::Disable { email } => UserOp::Disable { email },
        UserCommand::Enable { email } => UserOp::Enable { email },
        UserCommand::SetRole { email, role } => UserOp::SetRole { email, role: role_named(&role)? },
        UserCommand::Passwd { email, password_stdin } => UserOp::Passwd { email, password: password_from_stdin(password_stdin)? },
    };
    if let Some(answer) = user_admin::ask_server(&config.data_dir, &op).await {
        println!("{}", answer?);
        return Ok(());
    }
    if config.cluster_url.is_some() {
        return match op {
            UserOp::Add { email, role, password } => add_user_to_cluster(&config, &email, role, &password).await,
            _ => bail!(
                "no node runs on {}: run this where a node of the cluster runs, or use the REST API (PATCH /api/v1/users/{{id}})",
                config.data_dir.display()
            ),
        };
    }
    let db = open_db(&config).with_context(|| "no server answers on this data directory's control socket, and it cannot be opened")?;
    let writer = StoreWriter::start(db.clone(), Durability::Sync)?;
    let journal = utalk_actors::Journal::standalone(&db, writer.clone(), "cli");
    let result = user_admin::execute(&db, &journal, op).await;
    writer.shutdown();
    println!("{}", result?);
    Ok(())
}
