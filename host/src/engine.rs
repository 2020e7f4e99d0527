//! The wasmtime `Engine`, its configuration, and loading components.
//!
//! One [`ActionEngine`] per process: it compiles components, owns the linker
//! (all of WASI p2 + `wasi:http` + our `settings`/`log`), and runs the epoch
//! ticker that lets the deadline interrupt a spinning guest.

use crate::bindings::{log, settings, SmartActionPre};
use crate::manifest::Manifest;
use crate::state::HostState;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, EngineWeak};

/// How often the epoch advances. Guest code checks the deadline at this
/// granularity, so a runaway guest overruns by at most about one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Native stack the guest may use; deep recursion traps past it.
pub const MAX_WASM_STACK_BYTES: usize = 1024 * 1024;
/// Stack of the fiber each async call runs on; must exceed the wasm stack
/// plus room for host calls.
pub const ASYNC_STACK_BYTES: usize = 2 * 1024 * 1024;

/// The process-wide engine and linker.
pub struct ActionEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Where precompiled components are cached (`None`: compile every time).
    cache_dir: Option<PathBuf>,
    _ticker: EpochTicker,
}

impl ActionEngine {
    /// An engine configured for untrusted actions.
    pub fn new() -> Result<Self> {
        let mut config = Config::new();
        // Deadlines: compiled code checks the epoch and calls back into the
        // host, which traps once the invocation's deadline has passed.
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.max_wasm_stack(MAX_WASM_STACK_BYTES);
        config.async_stack_size(ASYNC_STACK_BYTES);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        // Rust's std makes every wasm32-wasip2 component import wasi:cli,
        // filesystem, sockets, random and clocks. All are linked; the
        // per-store WasiCtx grants none of the dangerous ones (see state.rs).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link WASI")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link wasi:http")?;
        settings::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("cannot link settings")?;
        log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("cannot link log")?;

        let ticker = EpochTicker::start(engine.weak());
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache_dir: crate::artifact_cache::default_dir(),
            _ticker: ticker,
        })
    }

    /// Cache precompiled components in `dir` (`None` turns caching off).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile the component at `path`, pre-instantiate it, and ask it to
    /// describe itself.
    pub async fn load(&self, path: &Path) -> Result<ActionComponent> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))?;
        self.load_bytes(&bytes, path).await
    }

    /// Like [`ActionEngine::load`], from bytes already in memory; `origin`
    /// names them in messages.
    pub async fn load_bytes(&self, bytes: &[u8], origin: &Path) -> Result<ActionComponent> {
        let (component, provenance) = crate::artifact_cache::load(&self.engine, bytes, self.cache_dir.as_deref())
            .with_context(|| {
                format!(
                    "{} is not a valid WebAssembly component (build it with `cargo build --target wasm32-wasip2`)",
                    origin.display()
                )
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                "{} needs imports this host does not provide; actions may import only wasi:* 0.2 and actionbox:action",
                origin.display()
            )
            })?;
        let pre = SmartActionPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
            format!(
                "{} does not implement the actionbox:action/smart-action world (exports describe and invoke)",
                origin.display()
            )
        })?;
        let manifest = crate::invoke::describe(&pre)
            .await
            .with_context(|| format!("{}: describe() failed", origin.display()))?;
        manifest
            .validate()
            .with_context(|| format!("{}: the action's manifest is unusable", origin.display()))?;
        Ok(ActionComponent {
            pre,
            manifest,
            origin: origin.to_path_buf(),
            provenance,
        })
    }
}

/// A compiled, pre-instantiated action and its manifest.
pub struct ActionComponent {
    pub(crate) pre: SmartActionPre<HostState>,
    manifest: Manifest,
    origin: PathBuf,
    provenance: crate::artifact_cache::Provenance,
}

impl ActionComponent {
    /// The manifest the action described itself with at load time.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the component came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether it was compiled now or loaded precompiled.
    pub fn provenance(&self) -> crate::artifact_cache::Provenance {
        self.provenance
    }
}

/// A thread advancing the engine's epoch every [`EPOCH_TICK`]; it stops by
/// itself when the engine is dropped.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: EngineWeak) -> Self {
        std::thread::Builder::new()
            .name("actionbox-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| {
                tracing::error!("cannot start the epoch ticker; deadlines will rely on timers only: {e}")
            });
        Self
    }
}
