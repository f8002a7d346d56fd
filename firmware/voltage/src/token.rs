//! `voltage token create|revoke|list`: the gateway's bearer tokens in
//! `DIR/gateway/tokens.yaml`. A running gateway picks changes up within about a second.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use voltage_gateway::auth::{self, Role};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it once (only its hash is stored).
    Create {
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: PathBuf,
        /// viewer (reads), operator (acknowledge, control/adjustment, rule evaluate), admin.
        #[arg(long)]
        role: String,
        /// Who or what holds it (hmi, scada, cloud, alice@site).
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by name.
    Revoke {
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, creation time; never secrets).
    List {
        #[arg(long, env = "VOLTAGE_CONFIG")]
        config: PathBuf,
    },
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("gateway").join("tokens.yaml")
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { config, role, name } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role {role:?}: roles are viewer, operator, admin");
            };
            let now = voltage_core::time::rfc3339_now();
            let secret = auth::create(&path(&config), &name, role, &now)
                .with_context(|| format!("creating token {name:?}"))?;
            println!("{secret}");
            eprintln!(
                "token {name:?} ({role}) added to {}; it is shown only now",
                path(&config).display()
            );
        }
        TokenCommand::Revoke { config, name } => {
            auth::revoke(&path(&config), &name)?;
            eprintln!("token {name:?} revoked");
        }
        TokenCommand::List { config } => {
            let doc = auth::read_doc(&path(&config))?;
            for t in doc.tokens {
                println!("{}\t{}\t{}", t.name, t.role, t.created);
            }
        }
    }
    Ok(())
}
