//! The command line.

use crate::app::{open_db, Application};
use crate::config::Config;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use utalk_actors::{Durability, StoreWriter};
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
    /// Lists staff users.
    List,
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
    crate::telemetry::init(&config);
    match cli.command {
        Command::Serve(_) => actix_web::rt::System::new().block_on(async move {
            let app = Application::build(config).await?;
            app.run_until_stopped().await
        }),
        Command::User(cmd) => actix_web::rt::System::new().block_on(user_command(config, cmd)),
    }
}

async fn user_command(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let db = open_db(&config).with_context(|| "stop the server or use POST /api/v1/users with an admin token")?;
    match cmd {
        UserCommand::Add { email, role, password_stdin } => {
            if !password_stdin {
                bail!("pass --password-stdin and write the password to standard input (it must not appear on the command line)");
            }
            let role = Role::parse(&role).with_context(|| format!("unknown role `{role}`: use admin, operator, agent or readonly"))?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let writer = StoreWriter::start(db.clone(), Durability::Sync)?;
            let result = crate::auth::create_user(&db, &writer, &email, role, password, "cli").await;
            writer.shutdown();
            let u = result?;
            println!("created user {} ({}) with id {}", u.email, u.role.as_str(), u.id);
        }
        UserCommand::List => {
            let mut after = None;
            loop {
                let page = utalk_storage::model::user::list(&db, after, 200)?;
                for u in &page {
                    println!("{}\t{}\t{}\t{}", u.id, u.email, u.role.as_str(), u.created_at.to_rfc3339());
                }
                match page.last() {
                    Some(u) if page.len() == 200 => after = Some(u.id),
                    _ => break,
                }
            }
        }
    }
    Ok(())
}
