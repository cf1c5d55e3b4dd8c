//! `foundry hub`: serve the community hub, and the common admin actions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use foundry_hub::{HubConfig, Role, RuleKind, RuleValidator, Store};

/// Arguments of `foundry hub`.
#[derive(clap::Args)]
pub struct HubArgs {
    /// Hub configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH?mode=rwc (default) or postgres://…
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Address to listen on (default 127.0.0.1:8470).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    action: Option<HubAction>,
}

#[derive(clap::Subcommand)]
enum HubAction {
    /// Create a tenant.
    CreateTenant {
        /// Tenant id (lower-case letters, digits, dashes).
        id: String,
        /// Display name.
        name: String,
    },
    /// Create a user and print its API token (shown once; stored hashed).
    CreateUser {
        /// The tenant.
        tenant: String,
        /// The user's name.
        name: String,
        /// engineer, reviewer or admin.
        #[arg(long, default_value = "engineer")]
        role: String,
    },
}

/// Validates rules with the product's own engines.
struct EngineValidator;

impl RuleValidator for EngineValidator {
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        foundry_engine::validate_rule_text(kind.as_str(), text)
    }
}

pub fn run(args: HubArgs) -> anyhow::Result<i32> {
    let mut config = match &args.config {
        Some(p) => HubConfig::load(p).with_context(|| format!("reading {}", p.display()))?,
        None => HubConfig::default(),
    };
    if let Some(db) = args.db {
        config.db_url = db;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match args.action {
            None => {
                foundry_hub::serve(config, Arc::new(EngineValidator)).await?;
            }
            Some(HubAction::CreateTenant { id, name }) => {
                let store = Store::open(&config.db_url, 2).await?;
                store.create_tenant(&id, &name).await?;
                println!("created tenant {id}");
            }
            Some(HubAction::CreateUser { tenant, name, role }) => {
                let role: Role = role
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
                let store = Store::open(&config.db_url, 2).await?;
                let (_, token) = store.create_user(&tenant, &name, role).await?;
                println!("{token}");
            }
        }
        Ok::<_, anyhow::Error>(0)
    })
}
