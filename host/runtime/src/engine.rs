//! The wasmtime `Engine`, its configuration, and loading components.
//!
//! An [`ActionEngine`] compiles components, owns the linker (all of WASI p2 +
//! `wasi:http` + `wasi:config/store` + our `log`), and runs the epoch ticker that lets the
//! deadline interrupt a spinning guest. Loading ends in an
//! [`ActionComponent`] (`component.rs`), which runs the calls.
//!
//! ## Memory layout and the instance pool
//!
//! Every linear memory gets a virtual reservation of exactly the largest
//! memory limit the engine will grant ([`EngineOptions::max_memory_bytes`],
//! 64 MiB by default, up to 4 GiB when an integration configures it) plus a
//! [`MEMORY_GUARD_BYTES`] guard. That is much less than wasmtime's default
//! (4 GiB + 32 MiB per memory, which with a pool of 1,000 slots reserves
//! terabytes of address space); the price is an explicit bounds check on
//! memory accesses, which costs nothing measurable for I/O-bound actions.
//!
//! Long-running hosts (`actionbox serve`) use wasmtime's pooling allocator
//! ([`PoolSizing`]): instance, memory, table and fiber-stack slots are
//! reserved once at start and reused, and a slot's memory is reset to the
//! component's initial image copy-on-write instead of being mapped afresh.
//! Instantiation then costs a few microseconds. The pool has a fixed number
//! of slots, so the engine also holds a semaphore of the same size: a call
//! waits (within its deadline) for a free slot rather than failing. One-shot
//! CLI commands allocate on demand, which starts faster than reserving a
//! pool.

use crate::bindings::{log, SmartActionPre, CONTRACT_VERSION};
use crate::component::{ActionComponent, InstanceSlots};
use crate::state::HostState;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Guest code checks the deadline at this
/// granularity, so a runaway guest overruns by at most about one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Native stack the guest may use; deep recursion traps past it.
pub const MAX_WASM_STACK_BYTES: usize = 1024 * 1024;
/// Stack of the fiber each async call runs on; must exceed the wasm stack
/// plus room for host calls.
pub const ASYNC_STACK_BYTES: usize = 2 * 1024 * 1024;

/// Guard region after each linear memory's reservation.
pub const MEMORY_GUARD_BYTES: u64 = 32 * 1024 * 1024;
/// Core wasm instances one component may create (a Rust component has 3,
/// a componentize-py one about a dozen).
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memories one component may have.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 4;
/// Tables one component may have.
pub const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Bytes at the start of a pooled memory slot that are zeroed in place
/// (instead of handed back to the kernel) when the slot is reused. The
/// ShipStation component is linked with a 32 KiB stack (see
/// guest/shipstation/build.rs), so its stack and data lie in this range and a
/// reused slot takes no page faults for them. Every byte here stays resident
/// per warm slot, so it is a trade: measured (BENCHMARKS.md), instantiate +
/// describe 45 µs with 0, 15 µs with 64 KiB; with 512 KiB, 1,000 calls in
/// flight needed 475 MiB instead of 210 MiB.
pub const POOL_MEMORY_KEEP_RESIDENT: usize = 64 * 1024;
/// The most instances a pool may be sized for.
pub const MAX_POOL_INSTANCES: u32 = 100_000;

/// How an engine allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// The largest linear memory any action on this engine may be granted
    /// (the highest `memory_mib` of the integrations it serves). Each memory's
    /// virtual reservation is this size.
    pub max_memory_bytes: usize,
    /// `Some`: pre-reserve a pool of instance slots; `None`: allocate each
    /// instance on demand.
    pub pool: Option<PoolSizing>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_memory_bytes: crate::limits::DEFAULT_MEMORY_BYTES,
            pool: None,
        }
    }
}

/// Size of the pooling allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizing {
    /// Component instances that may be live at once; every other resource is
    /// sized from this. Calls beyond it wait for a slot.
    pub instances: u32,
}

impl PoolSizing {
    fn config(self, max_memory_bytes: usize) -> PoolingAllocationConfig {
        let n = self.instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(n.saturating_mul(2))
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .total_tables(n.saturating_mul(4))
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .total_stacks(n)
            .max_memory_size(max_memory_bytes)
            .linear_memory_keep_resident(POOL_MEMORY_KEEP_RESIDENT)
            .table_keep_resident(64 * 1024);
        pool
    }
}

/// An engine, its linker, and the slots its calls run in.
pub struct ActionEngine {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Where precompiled components are cached (`None`: compile every time).
    cache_dir: Option<PathBuf>,
    /// One permit per pool slot (pooling engines only).
    slots: Option<Arc<Semaphore>>,
    /// How it allocates; `describe` runs with its largest memory.
    options: EngineOptions,
}

impl ActionEngine {
    /// An engine for untrusted actions that allocates instances on demand,
    /// with the default 64 MiB memory limit as the largest memory.
    pub fn new() -> Result<Self> {
        Self::with_options(EngineOptions::default())
    }

    /// An engine for untrusted actions, allocating as `options` says.
    pub fn with_options(options: EngineOptions) -> Result<Self> {
        let (config, slots) = engine_config(&options)?;
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;
        let linker = link(&engine)?;
        start_epoch_ticker(engine.weak());
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache_dir: crate::artifact_cache::default_dir(),
            slots,
            options,
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
        check_contract(&component, &self.engine).with_context(|| origin.display().to_string())?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                "{} needs imports this host does not provide; actions may import only wasi:* 0.2, wasi:config/store and actionbox:action/log",
                origin.display()
            )
            })?;
        let pre = SmartActionPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
            format!(
                "{} does not implement the actionbox:action/smart-action world (exports interface action: describe, invoke, test-connection)",
                origin.display()
            )
        })?;
        let slots = InstanceSlots::new(self.slots.clone());
        ActionComponent::describe_and_check(pre, origin, provenance, slots, self.options.max_memory_bytes).await
    }
}

/// The engine's configuration for `options`, and one permit per pool slot
/// (pooling engines only).
fn engine_config(options: &EngineOptions) -> Result<(Config, Option<Arc<Semaphore>>)> {
    let max_memory = round_up_to_page(options.max_memory_bytes)
        .filter(|&m| m > 0 && m <= crate::limits::MAX_MEMORY_BYTES)
        .with_context(|| {
            format!(
                "the largest memory limit, {} bytes, is not between 64 KiB and {} MiB",
                options.max_memory_bytes,
                crate::limits::MAX_MEMORY_BYTES >> 20
            )
        })?;
    let mut config = Config::new();
    // Deadlines: compiled code checks the epoch and calls back into the
    // host, which traps once the invocation's deadline has passed.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.max_wasm_stack(MAX_WASM_STACK_BYTES);
    config.async_stack_size(ASYNC_STACK_BYTES);
    // See the module docs: reserve what a memory may grow to, no more.
    config.memory_reservation(max_memory as u64);
    config.memory_guard_size(MEMORY_GUARD_BYTES);
    config.memory_reservation_for_growth(0);
    config.memory_init_cow(true);
    let slots = match options.pool {
        Some(pool) => {
            if pool.instances == 0 || pool.instances > MAX_POOL_INSTANCES {
                anyhow::bail!(
                    "the instance pool must have 1 to {MAX_POOL_INSTANCES} slots, not {}",
                    pool.instances
                );
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool.config(max_memory)));
            Some(Arc::new(Semaphore::new(pool.instances as usize)))
        }
        None => None,
    };
    Ok((config, slots))
}

/// The linker every action is instantiated with: the imports a 0.2.0 action
/// may have, and nothing else.
fn link(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // Rust's std makes every wasm32-wasip2 component import wasi:cli,
    // filesystem, sockets, random and clocks. All are linked; the
    // per-store WasiCtx grants none of the dangerous ones (see state.rs).
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link wasi:http")?;
    wasmtime_wasi_config::add_to_linker(&mut linker, HostState::config)
        .map_err(anyhow::Error::from)
        .context("cannot link wasi:config")?;
    log::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(anyhow::Error::from)
        .context("cannot link log")?;
    Ok(linker)
}

/// Refuse a component built against another version of the contract before
/// linking, with an error that says which version it targets and what to
/// rebuild against (the linker's own error would only name a missing import).
fn check_contract(component: &wasmtime::component::Component, engine: &Engine) -> Result<()> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .chain(ty.exports(engine).map(|(name, _)| name.to_string()))
        .collect();
    let current = format!("actionbox:action/action@{CONTRACT_VERSION}");
    if names.contains(&current) {
        return Ok(());
    }
    let other = names.iter().find_map(|n| {
        n.strip_prefix("actionbox:action/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, version)| version.to_string())
    });
    let targets = match other {
        Some(version) => format!("it targets actionbox:action@{}", crate::error::guest_text(&version, 32)),
        None if names.iter().any(|n| n == "describe" || n == "invoke") => {
            "it exports `describe` and `invoke` at the world level, as actionbox:action@0.1.0 did".to_string()
        }
        None => "it does not export the actionbox:action/action interface".to_string(),
    };
    anyhow::bail!(
        "this is not an actionbox:action@{CONTRACT_VERSION} component: {targets}, and this host runs only \
         {CONTRACT_VERSION}; rebuild it against actionbox:action@{CONTRACT_VERSION} (wit/world.wit of actionbox; \
         0.2.0 exports `interface action` with describe, invoke and test-connection and reads settings from \
         wasi:config/store)"
    )
}

/// `bytes` rounded up to whole 64 KiB wasm pages (`None` on overflow).
fn round_up_to_page(bytes: usize) -> Option<usize> {
    const PAGE: usize = 64 * 1024;
    bytes.checked_add(PAGE - 1).map(|b| b / PAGE * PAGE)
}

/// Start a thread advancing the engine's epoch every [`EPOCH_TICK`]; it
/// stops by itself when the engine is dropped.
fn start_epoch_ticker(engine: EngineWeak) {
    let started = std::thread::Builder::new()
        .name("actionbox-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match engine.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    if let Err(e) = started {
        tracing::error!("cannot start the epoch ticker; deadlines will rely on timers only: {e}");
    }
}
