//! `shipstation-sim`: run the ShipStation API V2 simulator on 127.0.0.1.

use anyhow::{Context, Result};
use clap::Parser;
use shipstation_sim::{Fixtures, Simulator, DEFAULT_API_KEY};
use std::path::PathBuf;

/// A ShipStation API V2 compatible server for demos and tests (loopback only).
#[derive(Debug, Parser)]
#[command(name = "shipstation-sim", version, about)]
struct Args {
    /// Port on 127.0.0.1 to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Fixture file (JSON with shipments, labels, tracking, faults) [default: the built-in set].
    #[arg(long, value_name = "PATH")]
    fixtures: Option<PathBuf>,
    /// API key to accept in the API-Key header.
    #[arg(long, env = "SHIPSTATION_SIM_API_KEY", default_value = DEFAULT_API_KEY, hide_env_values = true)]
    api_key: String,
    /// Write the base URL (http://127.0.0.1:PORT) to this file once listening.
    #[arg(long, value_name = "PATH")]
    url_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let fixtures = match &args.fixtures {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Fixtures::from_json(&text).with_context(|| format!("fixture file {}", path.display()))?
        }
        None => Fixtures::default_set(),
    };
    let sim = Simulator::start_with(fixtures, &args.api_key, args.port).await?;
    if let Some(path) = &args.url_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, sim.base_url()).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("shipstation-sim listening on {} (Ctrl-C to stop)", sim.base_url());
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    Ok(())
}
