//! The store side of the command line: `serve --store` (the platform
//! backend for many merchants), `actionbox store …` (the master key) and
//! `actionbox workspace …` (import and export as `actionbox.toml`).

use crate::config::WorkspaceRules;
use crate::workspaces::{WorkspaceOptions, Workspaces};
use actionbox_runtime::engine::{ActionEngine, EngineOptions, PoolSizing};
use actionbox_runtime::kinds::KindRegistry;
use actionbox_store::{MasterKey, Retention, Store};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Environment variable naming the master key file.
pub const MASTER_KEY_FILE_ENV: &str = "ACTIONBOX_MASTER_KEY_FILE";
/// Environment variable naming the previous master key file, during a
/// rotation: keys sealed under it still open.
pub const PREVIOUS_MASTER_KEY_FILE_ENV: &str = "ACTIONBOX_PREVIOUS_MASTER_KEY_FILE";
/// Environment variable holding the operator's token.
pub const OPERATOR_TOKEN_ENV: &str = "ACTIONBOX_OPERATOR_TOKEN";

/// Where the store is: `--store URL`.
#[derive(Debug, Args, Clone)]
pub(super) struct StoreArg {
    /// The workspace store: sqlite:PATH (one server) or postgres://… (replicas sharing it)
    /// [default: sqlite:$XDG_DATA_HOME/actionbox/store.db].
    #[arg(long, env = "ACTIONBOX_STORE", value_name = "URL")]
    pub(super) store: Option<String>,
}

impl StoreArg {
    /// The URL given, or the default SQLite file.
    pub(super) fn url(&self) -> Result<String> {
        match &self.store {
            Some(url) => Ok(url.clone()),
            None => default_store_url(),
        }
    }
}

/// `sqlite:$XDG_DATA_HOME/actionbox/store.db` (`~/.local/share` when unset).
fn default_store_url() -> Result<String> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share"),
            None => bail!("neither XDG_DATA_HOME nor HOME is set; give --store sqlite:PATH or --config FILE"),
        },
    };
    Ok(format!("sqlite:{}", data.join("actionbox/store.db").display()))
}

/// `serve`'s options that only apply with a store.
#[derive(Debug, Args, Clone)]
pub(super) struct StoreServeArgs {
    /// Let integrations' base URLs name non-public addresses (loopback, private,
    /// link-local). Off: a merchant's base URL could otherwise reach inside your network.
    #[arg(long)]
    pub(super) allow_private_base_urls: bool,
    /// Keep the newest N invocations of each workspace in history.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub(super) history_keep_last: u32,
    /// Drop history older than D days (0 keeps by count only).
    #[arg(long, value_name = "D", default_value_t = 30)]
    pub(super) history_keep_days: u32,
    /// The most memory one call may use, in MiB: the limit workspaces may set
    /// (limits.memory_mib) and what the engine reserves per instance.
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(super) max_memory_mib: u64,
}

/// `actionbox store …`.
#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Create a new master key file (mode 0600) for sealing API keys in the store.
    InitMasterKey {
        /// Where to write it; an existing file is never overwritten.
        path: PathBuf,
    },
    /// Re-seal every stored API key under a new master key (the old one from ACTIONBOX_MASTER_KEY_FILE).
    RotateMasterKey {
        #[command(flatten)]
        store: StoreArg,
        /// The new master key file (create it with `actionbox store init-master-key`).
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
}

/// `actionbox workspace …`.
#[derive(Debug, Subcommand)]
pub(super) enum WorkspaceCommand {
    /// Print a workspace as an actionbox.toml (keys by reference only: never their values).
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// The workspace's id.
        workspace: String,
        #[command(flatten)]
        rules: StoreServeArgs,
    },
    /// Create or update a workspace from an actionbox.toml (keys read from its api_key_env/api_key_file).
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// The workspace's id (created when it does not exist).
        workspace: String,
        /// The file to import.
        file: PathBuf,
        #[command(flatten)]
        rules: StoreServeArgs,
    },
}

/// The master key, when ACTIONBOX_MASTER_KEY_FILE names one.
fn master_key() -> Result<Option<MasterKey>> {
    key_file(MASTER_KEY_FILE_ENV)
}

/// The key in the file environment variable `var` names, if it names one.
fn key_file(var: &str) -> Result<Option<MasterKey>> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            Ok(Some(MasterKey::from_file(&path).context(var.to_string())?))
        }
        _ => Ok(None),
    }
}

/// Open the store at `url` with the master key, if any.
async fn open(url: &str) -> Result<Store> {
    let master = master_key()?;
    let store = Store::open(url, master)
        .await
        .with_context(|| format!("cannot open the store {}", shown_store(url)))?;
    if let Some(previous) = key_file(PREVIOUS_MASTER_KEY_FILE_ENV)? {
        store.also_open_with(previous);
    }
    Ok(store)
}

/// `url` with any password replaced, for messages.
pub(super) fn shown_store(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The workspaces of the store at `url`, for one command or a server with
/// `calls` instance slots.
pub(super) async fn workspaces(url: &str, serve: &StoreServeArgs, calls: Option<usize>) -> Result<Arc<Workspaces>> {
    let store = open(url).await?;
    let max_memory_bytes = usize::try_from(serve.max_memory_mib << 20).context("--max-memory-mib is too large")?;
    let pool = calls.map(|c| PoolSizing {
        instances: u32::try_from(c)
            .unwrap_or(u32::MAX)
            .saturating_add(crate::catalog::POOL_SPARE_SLOTS),
    });
    let engine = ActionEngine::with_options(EngineOptions { max_memory_bytes, pool })?;
    let options = WorkspaceOptions {
        rules: WorkspaceRules {
            kinds: KindRegistry::builtin(),
            allow_private_base_urls: serve.allow_private_base_urls,
            max_memory_bytes,
        },
        retention: Retention {
            keep_last: Some(serve.history_keep_last),
            keep_days: (serve.history_keep_days > 0).then_some(serve.history_keep_days),
        },
    };
    Workspaces::start(store, engine, options).await
}

/// The operator's token from ACTIONBOX_OPERATOR_TOKEN (at least 16 characters).
pub(super) fn operator_token() -> Result<String> {
    match std::env::var(OPERATOR_TOKEN_ENV) {
        Ok(t) if t.trim().len() >= 16 => Ok(t.trim().to_string()),
        Ok(_) => bail!("the operator token in {OPERATOR_TOKEN_ENV} must be at least 16 characters"),
        Err(_) => bail!(
            "set {OPERATOR_TOKEN_ENV} to the operator's bearer token (at least 16 characters): it creates \
             workspaces, registers components and mints workspace tokens"
        ),
    }
}

/// `actionbox store …`.
pub(super) async fn store_command(command: StoreCommand) -> Result<ExitCode> {
    match command {
        StoreCommand::InitMasterKey { path } => {
            let key = MasterKey::generate();
            key.write_new_file(&path)?;
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            eprintln!(
                "wrote master key {} to {} (mode 0600); set {MASTER_KEY_FILE_ENV}={} for serve, and back it up: \
                 without it the stored API keys cannot be read",
                key.id(),
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::RotateMasterKey { store, new_key_file } => {
            let url = store.url()?;
            let store = open(&url).await?;
            let new = MasterKey::from_file(&new_key_file).context("--new-key-file")?;
            let id = new.id();
            let n = store.rotate_master_key(new, "cli").await?;
            eprintln!(
                "re-sealed {n} API keys under master key {id}; set {MASTER_KEY_FILE_ENV}={} and restart every \
                 replica (until then they cannot read keys they have not loaded yet)",
                new_key_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `actionbox workspace …`.
pub(super) async fn workspace_command(command: WorkspaceCommand) -> Result<ExitCode> {
    match command {
        WorkspaceCommand::Export {
            store,
            workspace,
            rules,
        } => {
            let workspaces = workspaces(&store.url()?, &rules, None).await?;
            print!(
                "{}",
                crate::workspaces::transfer::export(&workspaces, &workspace).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        WorkspaceCommand::Import {
            store,
            workspace,
            file,
            rules,
        } => {
            let workspaces = workspaces(&store.url()?, &rules, None).await?;
            let done = crate::workspaces::transfer::import(&workspaces, &workspace, Path::new(&file), "cli").await?;
            eprintln!(
                "imported into workspace `{workspace}`: {} integrations, {} actions, {} new components",
                done.integrations, done.actions, done.components
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shown_store;

    #[test]
    fn store_urls_are_shown_without_their_password() {
        assert_eq!(
            shown_store("postgres://app:s3cret@db:5432/actionbox"),
            "postgres://app:***@db:5432/actionbox"
        );
        assert_eq!(
            shown_store("postgres://app@db/actionbox"),
            "postgres://app@db/actionbox"
        );
        assert_eq!(
            shown_store("sqlite:/var/lib/actionbox/store.db"),
            "sqlite:/var/lib/actionbox/store.db"
        );
    }
}
