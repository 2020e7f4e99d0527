//! The gate a platform runs on an action component before it accepts it
//! (`actionbox check`, and the workspaces' component registration): every
//! reason to refuse it, found in one pass, each a named [`Finding`] that says
//! what is wrong and what to do, and what the component asks for.
//!
//! The checks, in order; a later one runs only when the earlier ones leave
//! something to check:
//! - `size`: at most the platform's upload bound ([`CheckOptions::max_component_bytes`]);
//!   a larger file is not even read;
//! - `component`: a binary WebAssembly component that compiles;
//! - `contract`: it exports `actionbox:action/action@0.2.0`;
//! - `imports`: it imports only what the host links ([`LINKED_INTERFACES`]);
//!   `wasi:filesystem` and `wasi:sockets` are linked (toolchain runtimes import
//!   them) but grant nothing, which is a warning;
//! - `describe`, `manifest`: it loads through [`ActionEngine::load_bytes`] — the
//!   loader every command and the server use, so the check and the loader
//!   cannot disagree: link, `describe` (stopped at the loader's bound), the
//!   manifest's shape and `MAX_*` bounds; then `describe` is timed on fresh
//!   instances ([`DESCRIBE_WARN`], [`DESCRIBE_LIMIT`]) and the manifest's JSON
//!   is measured ([`MANIFEST_WARN_BYTES`], [`MANIFEST_LIMIT_BYTES`]);
//! - `kind`: where it asks for its key agrees with the kind registry;
//! - `outbound-hosts`: hosts it declares that it can never reach (warnings).
//!
//! What a hostile component can cost a check: its file is read only up to the
//! bound; it is compiled once (twice with the artifact cache off); a
//! `describe` that never returns is stopped by the loader after
//! [`DESCRIBE_TIMEOUT`](crate::component::DESCRIBE_TIMEOUT) (10 s) and is then an error, and the timed
//! runs give up after [`DESCRIBE_GIVE_UP`] each. On a pooled engine (`serve`)
//! a timed run waits for a free instance slot like any call, so a saturated
//! replica can make a fast `describe` look slow: retry the registration.
//!
//! The report is guest output turned into text a person or a platform reads,
//! so everything in it the component chose (names, versions, hosts, error
//! messages) is defused with [`guest_text`] and cut, and its size is bounded
//! whatever the component does: a few findings of at most
//! [`MAX_FINDING_BYTES`], at most [`MAX_LISTED_IMPORTS`] import names, and
//! "asks" only from a manifest that passed [`Manifest::validate`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use actionbox_runtime::check::{check_file, CheckOptions, Level};
//! use actionbox_runtime::{ActionEngine, KindRegistry};
//! let engine = ActionEngine::new()?;
//! let kinds = KindRegistry::builtin();
//! let options = CheckOptions { max_component_bytes: 32 << 20, kinds: &kinds, unknown_kind: Level::Warning };
//! let checked = check_file(&engine, "shipstation.wasm".as_ref(), &options).await?;
//! println!("{}", checked.report);
//! # Ok(()) }
//! ```

mod imports;
mod text;

pub use imports::LINKED_INTERFACES;

use crate::artifact_cache;
use crate::bindings::CONTRACT_VERSION;
use crate::component::ActionComponent;
use crate::engine::ActionEngine;
use crate::error::{guest_text, one_line};
use crate::kinds::KindRegistry;
use crate::manifest::{Execution, Manifest, Trigger};
use anyhow::{Context, Result};
use imports::{classify_import, ImportClass};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// `describe` slower than this is a warning: the host describes a component
/// every time it loads it (each replica, each reload), and a manifest is a
/// constant to return, not work to do.
pub const DESCRIBE_WARN: Duration = Duration::from_millis(100);
/// `describe` slower than this (the fastest of [`DESCRIBE_RUNS`] fresh
/// instances) is refused.
pub const DESCRIBE_LIMIT: Duration = Duration::from_secs(1);
/// How long one timed `describe` may run before the check stops waiting for
/// it. A `describe` that never returns is stopped earlier, by the loader's
/// own bound (`component::DESCRIBE_TIMEOUT`), before any timing.
pub const DESCRIBE_GIVE_UP: Duration = Duration::from_secs(2);
/// Fresh instances `describe` is timed on, at most: the fastest counts, so a
/// busy machine does not fail a fast component. Timing stops at the first
/// run under [`DESCRIBE_WARN`].
pub const DESCRIBE_RUNS: usize = 3;
/// A manifest whose JSON is larger than this is a warning: its methods become
/// tool definitions sent to the assistant with every conversation.
pub const MANIFEST_WARN_BYTES: usize = 64 * 1024;
/// A manifest whose JSON is larger than this is refused, far below what the
/// `MAX_*` bounds of `manifest.rs` would allow (~4 MB).
pub const MANIFEST_LIMIT_BYTES: usize = 256 * 1024;
/// Longest finding message, in bytes (after defusing).
pub const MAX_FINDING_BYTES: usize = 2048;
/// Import names the report lists, at most (a Rust action has ~20, a
/// componentize-py one ~30).
pub const MAX_LISTED_IMPORTS: usize = 64;
/// Names one finding quotes, at most (then "and N more").
const MAX_NAMED: usize = 8;
/// Longest quoted import name or manifest string in the report, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The component is refused.
    Error,
    /// The component passes, but something about it deserves a look.
    Warning,
}

/// Which check a finding comes from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckName {
    /// The file's size against the platform's upload bound.
    Size,
    /// Whether it is a binary WebAssembly component that compiles.
    Component,
    /// Which `actionbox:action` contract it implements.
    Contract,
    /// What it imports against what the host links.
    Imports,
    /// Whether `describe` returns, and how fast.
    Describe,
    /// The manifest's shape, bounds and size.
    Manifest,
    /// Where it asks for its key, against the kind registry.
    Kind,
    /// Hosts it declares that it can never reach.
    OutboundHosts,
}

impl CheckName {
    /// The stable name, e.g. `outbound-hosts`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Size => "size",
            CheckName::Component => "component",
            CheckName::Contract => "contract",
            CheckName::Imports => "imports",
            CheckName::Describe => "describe",
            CheckName::Manifest => "manifest",
            CheckName::Kind => "kind",
            CheckName::OutboundHosts => "outbound-hosts",
        }
    }
}

/// One reason to refuse a component, or to look at it twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it.
    pub check: CheckName,
    /// Whether it refuses the component.
    pub level: Level,
    /// What is wrong and what to do (guest text defused, at most
    /// [`MAX_FINDING_BYTES`]).
    pub message: String,
}

/// Facts about the component file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ComponentFacts {
    /// SHA-256 of the bytes (lower-case hex); `None` when the file was too
    /// large to read.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// The `actionbox:action` version it targets (`0.2.0`), when it names one.
    pub contract: Option<String>,
    /// The interfaces it imports, defused (the first [`MAX_LISTED_IMPORTS`]).
    pub imports: Vec<String>,
    /// The fastest timed `describe` (fresh instance), in ms.
    pub describe_ms: Option<u64>,
    /// Bytes of the manifest as JSON.
    pub manifest_bytes: Option<u64>,
}

/// What the component asks of a platform: read from a manifest that passed
/// validation, so every list is bounded; free text is defused.
#[derive(Debug, Clone, Serialize)]
pub struct Asks {
    /// Its integration kind: the registry entry that says where its key goes.
    pub kind: String,
    /// Its version.
    pub version: String,
    /// Hosts it says it reaches (`{base-url}`: the integration's base URL).
    pub outbound_hosts: Vec<String>,
    /// The base URL it suggests; the kind registry decides.
    pub default_base_url: Option<String>,
    /// The key it wants injected, and in which header.
    pub credential: Option<CredentialAsk>,
    /// Its methods.
    pub methods: Vec<MethodAsk>,
    /// The actions every integration of its kind gets unless turned off.
    pub default_actions: Vec<DefaultActionAsk>,
}

/// The credential a component asks for.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialAsk {
    /// What it calls the key.
    pub name: String,
    /// The header it wants the key in.
    pub header: String,
}

/// A method a component offers.
#[derive(Debug, Clone, Serialize)]
pub struct MethodAsk {
    /// Machine name.
    pub name: String,
    /// Name users see.
    pub display_name: String,
    /// Its parameters' names.
    pub params: Vec<String>,
}

/// A default action a component declares.
#[derive(Debug, Clone, Serialize)]
pub struct DefaultActionAsk {
    /// Tool name.
    pub name: String,
    /// The method it calls.
    pub method: String,
    /// When it runs.
    pub execution: Execution,
    /// Which messages it is offered for.
    pub trigger: Trigger,
}

/// The outcome of a check, as `actionbox check --json` prints it and the
/// registration's 422 carries it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Whether the component passes (no finding is an error).
    pub ok: bool,
    /// Facts about the file.
    pub component: ComponentFacts,
    /// What it asks for; `None` when its manifest could not be read or is invalid.
    pub asks: Option<Asks>,
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// The findings that refuse the component.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Error)
    }

    /// The findings that do not.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Warning)
    }

    /// One line for an error message: the refusing findings, `check: message; …`.
    pub fn summary(&self) -> String {
        let errors: Vec<String> = self
            .errors()
            .map(|f| format!("{}: {}", f.check.as_str(), f.message))
            .collect();
        if errors.is_empty() {
            "the component passes the check".into()
        } else {
            format!("the component fails the check: {}", errors.join("; "))
        }
    }
}

/// What a check is run against: the platform's bounds and kind registry.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    /// Largest component accepted, in bytes: the platform's upload bound,
    /// so the check and the upload agree.
    pub max_component_bytes: u64,
    /// The kinds the platform knows (where each kind's key may go).
    pub kinds: &'a KindRegistry,
    /// How a kind the registry does not know counts: an error where the kind
    /// must already be declared (a platform's registration), a warning where
    /// the operator will declare it (an author's check).
    pub unknown_kind: Level,
}

/// A checked component: the report, and the loaded component when it loaded.
pub struct Checked {
    /// The report.
    pub report: CheckReport,
    /// The component, loaded on the engine the check ran on.
    component: Option<ActionComponent>,
}

impl Checked {
    /// The report, and the loaded component when it passes (so a caller
    /// keeps what the check loaded instead of loading it again).
    pub fn into_parts(self) -> (CheckReport, Option<ActionComponent>) {
        let component = self.component.filter(|_| self.report.ok);
        (self.report, component)
    }
}

/// Check the component file at `path`: its size first, so a file over the
/// bound is never read. `Err` only when the file cannot be read at all.
pub async fn check_file(engine: &ActionEngine, path: &Path, options: &CheckOptions<'_>) -> Result<Checked> {
    let metadata = std::fs::metadata(path).with_context(|| {
        format!(
            "cannot read component {} (check the path; `make build` builds this repository's actions into \
             target/wasm32-wasip2/release/)",
            path.display()
        )
    })?;
    anyhow::ensure!(metadata.is_file(), "{} is not a file", path.display());
    if metadata.len() > options.max_component_bytes {
        let mut run = CheckRun::new(metadata.len());
        run.refuse_size(options.max_component_bytes);
        return Ok(run.finish(None));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(options.max_component_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
        })
        .with_context(|| format!("cannot read component {}", path.display()))?;
    Ok(check_bytes(engine, &bytes, path, options).await)
}

/// Check `bytes` as a component; `origin` names it in messages.
pub async fn check_bytes(engine: &ActionEngine, bytes: &[u8], origin: &Path, options: &CheckOptions<'_>) -> Checked {
    let mut run = CheckRun::new(bytes.len() as u64);
    if run.facts.bytes > options.max_component_bytes {
        run.refuse_size(options.max_component_bytes);
        return run.finish(None);
    }
    run.facts.sha256 = Some(Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect());
    if let Err(why) = binary_component(bytes) {
        run.add(CheckName::Component, Level::Error, why);
        return run.finish(None);
    }
    // Compile once here, through the artifact cache the engine uses by
    // default, so the load below finds the compiled code instead of
    // compiling again (with the cache off, it compiles twice).
    let compiled = artifact_cache::load(engine.engine(), bytes, artifact_cache::default_dir().as_deref());
    let component = match compiled {
        Ok((component, _)) => component,
        Err(e) => {
            run.add(
                CheckName::Component,
                Level::Error,
                format!(
                    "it does not compile: {}; build it with `cargo build --target wasm32-wasip2`, componentize-py or \
                     componentize-js",
                    one_line(&format!("{e:#}"))
                ),
            );
            return run.finish(None);
        }
    };
    let names = InterfaceNames::of(&component, engine.engine());
    drop(component);
    run.contract(&names);
    run.imports(&names);
    if run.has_errors() {
        return run.finish(None);
    }
    let loaded = match engine.load_bytes(bytes, origin).await {
        Ok(loaded) => loaded,
        Err(e) => {
            run.load_failure(&e, origin);
            return run.finish(None);
        }
    };
    run.time_describe(&loaded).await;
    run.manifest(loaded.manifest(), options);
    run.finish(Some(loaded))
}

/// Whether `bytes` start like a binary component (`\0asm`, then version
/// 0x0d and layer 1); the reason when not. Text (`.wat`), which the engine
/// would also compile, is refused: a platform takes built components.
fn binary_component(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(
            "it is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap a wasip1 module \
             with `wasm-tools component new` and the WASI adapter)"
                .into(),
        ),
        _ => Err(
            "it is not a binary WebAssembly component (it does not start with `\\0asm` and the component layer; \
             text .wat is not accepted); build it with `cargo build --target wasm32-wasip2`, componentize-py or \
             componentize-js"
                .into(),
        ),
    }
}

/// The import and export names of a compiled component.
struct InterfaceNames<'a> {
    ty: wasmtime::component::types::Component,
    engine: &'a wasmtime::Engine,
}

impl<'a> InterfaceNames<'a> {
    /// The names of `component`'s imports and exports, read as needed
    /// rather than copied: only bounded lists of them are kept.
    fn of(component: &wasmtime::component::Component, engine: &'a wasmtime::Engine) -> Self {
        Self {
            ty: component.component_type(),
            engine,
        }
    }

    /// The names it imports (`wasi:io/poll@0.2.12`).
    fn imports(&self) -> impl Iterator<Item = &str> {
        self.ty.imports(self.engine).map(|(name, _)| name)
    }

    /// The names it exports (`actionbox:action/action@0.2.0`).
    fn exports(&self) -> impl Iterator<Item = &str> {
        self.ty.exports(self.engine).map(|(name, _)| name)
    }
}

/// The findings and facts of one check as it runs.
struct CheckRun {
    facts: ComponentFacts,
    asks: Option<Asks>,
    findings: Vec<Finding>,
}

impl CheckRun {
    fn new(bytes: u64) -> Self {
        Self {
            facts: ComponentFacts {
                bytes,
                ..ComponentFacts::default()
            },
            asks: None,
            findings: Vec::new(),
        }
    }

    /// Record a finding; `message` is defused and cut (host text passes
    /// unchanged, guest text quoted in it was defused already).
    fn add(&mut self, check: CheckName, level: Level, message: impl Into<String>) {
        let message = guest_text(&message.into(), MAX_FINDING_BYTES);
        self.findings.push(Finding { check, level, message });
    }

    fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    fn refuse_size(&mut self, max: u64) {
        let bytes = self.facts.bytes;
        self.add(
            CheckName::Size,
            Level::Error,
            format!(
                "the component is {bytes} bytes, over the limit of {max} bytes this platform accepts; build it in \
                 release mode (a Rust action is a few hundred KB, a componentize-py one ~20 MB)"
            ),
        );
    }

    /// The contract: it must export `actionbox:action/action@0.2.0`.
    fn contract(&mut self, names: &InterfaceNames) {
        let current = format!("actionbox:action/action@{CONTRACT_VERSION}");
        if names.exports().any(|n| n == current) {
            self.facts.contract = Some(CONTRACT_VERSION.into());
            return;
        }
        let other = names.imports().chain(names.exports()).find_map(|n| {
            n.strip_prefix("actionbox:action/")
                .and_then(|rest| rest.split_once('@'))
                .map(|(_, version)| guest_text(version, 32))
        });
        let targets = match &other {
            Some(version) => format!("it targets actionbox:action@{version}"),
            None if names.exports().any(|n| n == "describe" || n == "invoke") => {
                "it exports `describe` and `invoke` at the world level, as actionbox:action@0.1.0 did".into()
            }
            None => format!("it does not export {current}, so it is not a smart action"),
        };
        self.facts.contract = other;
        self.add(
            CheckName::Contract,
            Level::Error,
            format!(
                "{targets}, and this host runs only actionbox:action@{CONTRACT_VERSION}; rebuild it against \
                 actionbox:action@{CONTRACT_VERSION} (wit/world.wit, world smart-action: export `interface action` \
                 with describe, invoke and test-connection, read settings from wasi:config/store)"
            ),
        );
    }

    /// The imports: only what the host links; what it links but grants
    /// nothing through is a warning.
    fn imports(&mut self, names: &InterfaceNames) {
        self.facts.imports = names
            .imports()
            .take(MAX_LISTED_IMPORTS)
            .map(|n| guest_text(n, MAX_NAME_BYTES))
            .collect();
        let of_class = |class| names.imports().filter(move |n| classify_import(n) == class);
        let missing = named_list(of_class(ImportClass::NotProvided));
        if let Some(list) = missing {
            self.add(
                CheckName::Imports,
                Level::Error,
                format!(
                    "it imports {list}, which this host does not provide; an action may import wasi:io, clocks, \
                     random, cli, http/types and http/outgoing-handler 0.2, wasi:config/store and \
                     actionbox:action/log@{CONTRACT_VERSION} (wasi:filesystem and wasi:sockets load but grant \
                     nothing); remove the dependency that needs it, and make requests through wasi:http"
                ),
            );
        }
        if let Some(list) = named_list(of_class(ImportClass::GrantsNothing)) {
            self.add(
                CheckName::Imports,
                Level::Warning,
                format!(
                    "it imports {list}: this host links them so toolchain runtimes load (Rust's std, CPython), but \
                     grants no file, socket or name lookup through them, so every such call fails; make requests \
                     through wasi:http/outgoing-handler"
                ),
            );
        }
    }

    /// A load that failed after the static checks passed: linking,
    /// `describe`, or the manifest. The loader's message says which; its
    /// guest text is defused already.
    fn load_failure(&mut self, e: &anyhow::Error, origin: &Path) {
        // The loader says what failed only in its words (`engine.rs`,
        // `component.rs`); tests/e2e `check.rs` pins each phrase to its check.
        let context = e.to_string();
        let full = one_line(&format!("{e:#}"));
        let (check, advice) = if context.contains("describe() failed") && full.contains("returned a manifest of over") {
            (CheckName::Manifest, "")
        } else if context.contains("describe() failed") {
            (
                CheckName::Describe,
                "; describe must return the manifest at once: no requests (all are refused while describing), no \
                 waiting, no panics",
            )
        } else if context.contains("manifest is unusable") {
            (CheckName::Manifest, "; fix the manifest describe returns")
        } else if context.contains("needs imports") {
            (CheckName::Imports, "")
        } else if context.contains("smart-action world") {
            (CheckName::Contract, "")
        } else {
            (CheckName::Component, "")
        };
        let origin = origin.display().to_string();
        let message = full
            .strip_prefix(&origin)
            .map(|rest| rest.trim_start_matches([':', ' ']))
            .unwrap_or(&full);
        self.add(check, Level::Error, format!("{message}{advice}"));
    }

    /// Time `describe` on fresh instances (the fastest counts).
    async fn time_describe(&mut self, component: &ActionComponent) {
        let mut fastest: Option<Duration> = None;
        for _ in 0..DESCRIBE_RUNS {
            let started = Instant::now();
            let took = match tokio::time::timeout(DESCRIBE_GIVE_UP, component.describe_fresh()).await {
                Ok(Ok(_)) => started.elapsed(),
                Ok(Err(e)) => {
                    self.add(
                        CheckName::Describe,
                        Level::Error,
                        format!(
                            "describe answered once, then failed on a fresh instance: {}; it must return the same \
                             manifest every time",
                            one_line(&format!("{e:#}"))
                        ),
                    );
                    return;
                }
                Err(_) => {
                    self.add(
                        CheckName::Describe,
                        Level::Error,
                        format!(
                            "describe did not return within {} ms on a fresh instance (limit {} ms); the host \
                             describes a component every time it loads it: return a constant manifest",
                            DESCRIBE_GIVE_UP.as_millis(),
                            DESCRIBE_LIMIT.as_millis()
                        ),
                    );
                    return;
                }
            };
            let best = fastest.map_or(took, |f| f.min(took));
            fastest = Some(best);
            if best <= DESCRIBE_WARN {
                break;
            }
        }
        let Some(fastest) = fastest else { return };
        self.facts.describe_ms = Some(fastest.as_millis() as u64);
        let level = if fastest > DESCRIBE_LIMIT {
            Level::Error
        } else if fastest > DESCRIBE_WARN {
            Level::Warning
        } else {
            return;
        };
        let bound = if level == Level::Error {
            DESCRIBE_LIMIT
        } else {
            DESCRIBE_WARN
        };
        self.add(
            CheckName::Describe,
            level,
            format!(
                "describe took {} ms (instantiation included; the fastest of up to {DESCRIBE_RUNS} fresh instances), \
                 over {} ms; the host describes a component every time it loads it: return a constant manifest, \
                 with no work before it",
                fastest.as_millis(),
                bound.as_millis()
            ),
        );
    }

    /// The manifest of a component that loaded (so it passed
    /// [`Manifest::validate`]): its size, its kind against the registry,
    /// and the hosts it cannot reach.
    fn manifest(&mut self, manifest: &Manifest, options: &CheckOptions<'_>) {
        self.asks = Some(Asks::of(manifest));
        match serde_json::to_vec(manifest) {
            Ok(json) => {
                let bytes = json.len();
                self.facts.manifest_bytes = Some(bytes as u64);
                let over = if bytes > MANIFEST_LIMIT_BYTES {
                    Some((Level::Error, MANIFEST_LIMIT_BYTES))
                } else if bytes > MANIFEST_WARN_BYTES {
                    Some((Level::Warning, MANIFEST_WARN_BYTES))
                } else {
                    None
                };
                if let Some((level, bound)) = over {
                    self.add(
                        CheckName::Manifest,
                        level,
                        format!(
                            "the manifest is {bytes} bytes of JSON, over {bound}; its methods become tool \
                             definitions sent to the assistant with every conversation: shorten the descriptions"
                        ),
                    );
                }
            }
            Err(e) => self.add(
                CheckName::Manifest,
                Level::Error,
                format!("the manifest cannot be written as JSON: {e}"),
            ),
        }
        self.kind(manifest, options);
        let kind_host = options
            .kinds
            .get(&manifest.integration)
            .map(|k| k.base_url.host.as_str());
        self.outbound_hosts(manifest, kind_host);
    }

    /// Where the key goes is the registry's call: a request that disagrees
    /// with it is an error; a kind it does not know is as the options say.
    fn kind(&mut self, manifest: &Manifest, options: &CheckOptions<'_>) {
        if let Err(e) = options.kinds.check_requests(manifest) {
            self.add(CheckName::Kind, Level::Error, one_line(&format!("{e:#}")));
            return;
        }
        if options.kinds.get(&manifest.integration).is_some() {
            return;
        }
        let header = manifest
            .credential
            .as_ref()
            .map(|c| format!(", credential_header = \"{}\"", guest_text(&c.header, MAX_NAME_BYTES)))
            .unwrap_or_default();
        self.add(
            CheckName::Kind,
            options.unknown_kind,
            format!(
                "kind `{}` is not one this host knows, so nothing yet says where its key may go; the operator \
                 declares it before it runs ([[kind]] with name = \"{}\", base_url = \"https://…\"{header} in \
                 actionbox.toml; --base-url and --credential-header on the command line)",
                manifest.integration, manifest.integration
            ),
        );
    }

    /// Requests go only to the integration's base URL (the outbound policy),
    /// so a declared host is reached only as `{base-url}`, or as the host of
    /// the base URL (`kind_host`: the kind's API, when the registry knows it).
    fn outbound_hosts(&mut self, manifest: &Manifest, kind_host: Option<&str>) {
        let base = "{base-url}";
        let others = manifest
            .outbound_hosts
            .iter()
            .map(String::as_str)
            .filter(|h| *h != base && !kind_host.is_some_and(|k| h.eq_ignore_ascii_case(k)));
        let Some(list) = named_list(others) else {
            if manifest.outbound_hosts.is_empty() {
                self.add(
                    CheckName::OutboundHosts,
                    Level::Warning,
                    format!("it declares no outbound host, so every request it makes is refused; declare `{base}`"),
                );
            }
            return;
        };
        let message = if manifest.outbound_hosts.iter().any(|h| h == base) {
            format!(
                "it declares {list} besides `{base}`; requests go only to the integration's base URL, which the \
                 operator sets, so these are reached only when the base URL is one of them"
            )
        } else {
            format!(
                "it declares {list} but not `{base}`; requests go only to the integration's base URL, and only \
                 when its host is declared, so every request is refused unless the operator's base URL is one of \
                 these; declare `{base}`"
            )
        };
        self.add(CheckName::OutboundHosts, Level::Warning, message);
    }

    fn finish(mut self, component: Option<ActionComponent>) -> Checked {
        // Errors first; each level keeps the order the checks ran in.
        self.findings.sort_by_key(|f| f.level != Level::Error);
        let ok = !self.has_errors();
        Checked {
            report: CheckReport {
                ok,
                component: self.facts,
                asks: self.asks,
                findings: self.findings,
            },
            component,
        }
    }
}

impl Asks {
    /// What a validated `manifest` asks for, free text defused.
    fn of(manifest: &Manifest) -> Self {
        let text = |t: &str| guest_text(t, MAX_NAME_BYTES);
        Self {
            kind: manifest.integration.clone(),
            version: text(&manifest.version),
            outbound_hosts: manifest.outbound_hosts.iter().map(|h| text(h)).collect(),
            default_base_url: Some(manifest.default_base_url.trim())
                .filter(|u| !u.is_empty())
                .map(text),
            credential: manifest.credential.as_ref().map(|c| CredentialAsk {
                name: text(&c.name),
                header: text(&c.header),
            }),
            methods: manifest
                .methods
                .iter()
                .map(|m| MethodAsk {
                    name: m.name.clone(),
                    display_name: m.display_name.clone(),
                    params: m.params.iter().map(|p| p.name.clone()).collect(),
                })
                .collect(),
            default_actions: manifest
                .default_actions
                .iter()
                .map(|a| DefaultActionAsk {
                    name: a.name.clone(),
                    method: text(&a.method),
                    execution: a.execution,
                    trigger: a.trigger,
                })
                .collect(),
        }
    }
}

/// `` `a`, `b` and 3 more ``: the first [`MAX_NAMED`] of `names`, defused;
/// `None` when there are none.
fn named_list<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut shown = Vec::new();
    let mut more = 0usize;
    for name in names {
        if shown.len() < MAX_NAMED {
            shown.push(format!("`{}`", guest_text(name, MAX_NAME_BYTES)));
        } else {
            more += 1;
        }
    }
    if shown.is_empty() {
        return None;
    }
    let mut list = shown.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_binary_components_are_taken() {
        assert!(binary_component(b"\0asm\x0d\0\x01\0rest").is_ok());
        let core = binary_component(b"\0asm\x01\0\0\0").expect_err("core module");
        assert!(core.contains("core WebAssembly module"), "{core}");
        for not in [&b"(component)"[..], b"", b"\0asm", b"PK\x03\x04zip file"] {
            let e = binary_component(not).expect_err("not a component");
            assert!(e.contains("not a binary WebAssembly component"), "{e}");
        }
    }

    #[test]
    fn a_named_list_is_defused_and_bounded() {
        let names: Vec<String> = (0..100)
            .map(|i| format!("evil\u{1b}[2J\u{202e}{i}{}", "x".repeat(10_000)))
            .collect();
        let list = named_list(names.iter().map(String::as_str)).expect("some");
        assert!(!list.contains('\u{1b}') && !list.contains('\u{202e}'), "{list}");
        assert!(list.ends_with("and 92 more"), "{list}");
        assert!(list.len() < MAX_NAMED * (MAX_NAME_BYTES + 32) + 32, "{}", list.len());
        assert_eq!(named_list(std::iter::empty()), None);
    }

    #[test]
    fn findings_are_defused_and_bounded_and_errors_come_first() {
        let mut run = CheckRun::new(10);
        run.add(CheckName::Imports, Level::Warning, "w");
        run.add(
            CheckName::Describe,
            Level::Error,
            format!("\u{1b}]0;x\u{7}\n{}", "y".repeat(100_000)),
        );
        let report = run.finish(None).report;
        assert!(!report.ok);
        assert_eq!(report.findings[0].level, Level::Error);
        let message = &report.findings[0].message;
        assert!(!message.contains('\u{1b}') && !message.contains('\n'), "{message}");
        assert!(message.len() <= MAX_FINDING_BYTES + 4, "{}", message.len());
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["findings"][0]["check"], "describe");
        assert_eq!(json["findings"][0]["level"], "error");
        assert_eq!(json["findings"][1]["check"], "imports");
        assert_eq!(json["findings"][1]["level"], "warning");
        assert!(report
            .summary()
            .starts_with("the component fails the check: describe: "));
    }
}
