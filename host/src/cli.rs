//! The `actionbox` command line: the clap derives (which are the help
//! text), then one function per subcommand.
//!
//! It stays one file past 400 lines because the derives are the help text and
//! each subcommand's function reads best beside the flags it takes; how the
//! component commands' flags become an integration's settings (where the key
//! may go) is `cli/integration_settings.rs`.

mod integration_settings;
mod new;
mod store;

use crate::catalog::ActionCatalog;
use crate::config::{Direction, Phase};
use actionbox_runtime::component::ActionComponent;
use actionbox_runtime::deadline::DEFAULT_TIMEOUT_SECS;
use actionbox_runtime::engine::ActionEngine;
use actionbox_runtime::error::{one_line, InvokeError};
use actionbox_runtime::kinds::KindRegistry;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Run untrusted smart-action WebAssembly components in a sandbox.
///
/// Exit codes: 0 success, 1 setup or host error, 2 usage error, 3 a component
/// `actionbox check` would refuse, and for a failed action 10 invalid-input,
/// 11 unauthorized, 12 not-found, 13 rate-limited, 14 upstream, 15 timeout,
/// 16 denied, 17 internal, 18 memory-limit, 19 trap, 20 invalid-output,
/// 21 limit-exceeded.
#[derive(Debug, Parser)]
#[command(
    name = "actionbox",
    version,
    about = format!(
        "Sandbox host for untrusted smart-action WebAssembly components (contract actionbox:action@{})",
        actionbox_runtime::CONTRACT_VERSION
    ),
    long_about = None,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on stderr look: `text` for people, `json` (one object
    /// a line, with the call's invocation id and trace id) for log pipelines.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "ACTIONBOX_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

const EXIT_CODES: &str = "Exit codes: 0 ok; 1 setup/host error; 2 usage; 3 check failed (actionbox check); \
10 invalid-input; 11 unauthorized; 12 not-found; 13 rate-limited; 14 upstream; 15 timeout; 16 denied; 17 internal; \
18 memory-limit; 19 trap; 20 invalid-output; 21 limit-exceeded.\n\
Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.\n\
Traces and metrics go to an OpenTelemetry collector when OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLP over HTTP, \
protobuf; OTEL_SERVICE_NAME and the other standard OTEL_* variables apply).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a new action project: a small working action that `make` builds and `make test` checks
    /// and tests offline (against a recording it ships).
    New {
        /// The project's name, which is also the integration kind (e.g. acme-orders).
        name: String,
        /// The language to write the action in.
        #[arg(long, value_enum)]
        lang: new::Language,
        /// Where to create it [default: ./NAME]; must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print an action component's manifest (methods, default actions, hosts, credential) as JSON.
    Describe {
        /// Path to the action component (.wasm).
        component: PathBuf,
    },
    /// Check a component the way a platform's upload gate does (contract, imports, manifest, describe time
    /// and size, what it asks for, file size); exit 3 with the reasons when it would be refused.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// Path to the action component (.wasm).
        component: PathBuf,
        /// Print the report as one JSON object: {"ok", "component", "asks", "findings"}.
        #[arg(long)]
        json: bool,
    },
    /// Run one method of an action and print its JSON result.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// Path to the action component (.wasm).
        component: PathBuf,
        /// Method to run, by display or machine name (e.g. trackOrder or track-order).
        method: String,
        /// The method's input: a JSON object, e.g. '{"order_id":"1001"}'.
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        integration: IntegrationArgs,
    },
    /// The integration's Test button: one cheap authenticated request; prints OK or why not.
    #[command(after_help = EXIT_CODES)]
    TestConnection {
        /// Path to the action component (.wasm).
        component: PathBuf,
        #[command(flatten)]
        integration: IntegrationArgs,
    },
    /// Print the LLM tool definitions of the configured actions to offer now.
    Tools {
        #[command(flatten)]
        config: ConfigArg,
        /// Only actions that run in this phase of the conversation.
        #[arg(long, value_enum)]
        phase: Option<Phase>,
        /// Only actions offered for this message direction.
        #[arg(long, value_enum)]
        direction: Option<Direction>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ToolFormat::Json)]
        format: ToolFormat,
    },
    /// Run every session-start action whose parameters the context provides.
    SessionStart {
        #[command(flatten)]
        config: ConfigArg,
        /// The session context as a JSON object, e.g. '{"order_id":"1001"}'.
        #[arg(long, default_value = "{}")]
        context: String,
    },
    /// Run a configured action; prints the result with its response instructions.
    #[command(after_help = EXIT_CODES)]
    Invoke {
        #[command(flatten)]
        config: ConfigArg,
        /// The action's name.
        action: String,
        /// The action's parameters as a JSON object, e.g. '{"order_id":"1001"}'.
        #[arg(long, default_value = "{}")]
        params: String,
        #[command(flatten)]
        exchanges: RecordReplayArgs,
    },
    /// An integration's Test button, from the config file.
    #[command(after_help = EXIT_CODES)]
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The integration's name.
        integration: String,
    },
    /// Serve the platform HTTP API (tools, invoke, session start, Test, health, metrics).
    ///
    /// Slow, idle and numerous clients are bounded: a client that has not sent
    /// a full request head within --header-read-timeout is disconnected (so is
    /// one whose body, or whose reading of the answer, takes as long), a
    /// keep-alive connection closes after --idle-timeout without a request, and
    /// past --max-connections new connections wait until one closes. Invoke,
    /// session start and Test answer 429 when an integration already has
    /// --max-concurrency calls in flight. SIGTERM or Ctrl-C stops accepting,
    /// closes idle connections and lets calls in flight finish; SIGHUP reloads.
    ///
    /// With --store (or when no --config is given) it serves many merchants'
    /// workspaces from a store instead: the admin API for the operator
    /// (ACTIONBOX_OPERATOR_TOKEN) and each workspace's routes for its tokens;
    /// API keys are sealed under ACTIONBOX_MASTER_KEY_FILE.
    Serve(ServeArgs),
    /// The workspace store's master key: create one, or rotate to a new one.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Move a workspace to or from an actionbox.toml.
    #[command(subcommand)]
    Workspace(store::WorkspaceCommand),
    /// Serve the configured interaction actions as an MCP server over stdio.
    Mcp {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Action Debugger: run an action for real and show everything that happened.
    #[command(after_help = EXIT_CODES)]
    Debug {
        #[command(flatten)]
        config: ConfigArg,
        /// The action's name.
        action: String,
        /// The action's parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Print the trace as JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        exchanges: RecordReplayArgs,
    },
}

/// The config file argument shared by the config-driven commands.
#[derive(Debug, Args)]
struct ConfigArg {
    /// The config file (see actionbox.example.toml).
    #[arg(
        long,
        env = "ACTIONBOX_CONFIG",
        default_value = "actionbox.toml",
        value_name = "FILE"
    )]
    config: PathBuf,
}

/// Where a config command's call sends its requests besides the network:
/// `--record` keeps them for a recording file, `--replay` answers them from
/// one (`actionbox_runtime::outbound::replay`). The sandbox admits or refuses
/// each request the same either way.
#[derive(Debug, Args)]
struct RecordReplayArgs {
    /// Save the call's outbound exchanges to this recording file (JSON; the key, Authorization and
    /// cookies redacted; mode 0600), to replay with `actionbox run … --replay FILE`. Only a previous
    /// recording is replaced.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,
    /// Answer the action's requests from this recording instead of the network (the config's key is
    /// still read; nothing is sent).
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
}

impl RecordReplayArgs {
    /// The outbound mode the flags ask for; a recording to replay is read
    /// (and checked) now.
    fn mode(&self) -> Result<actionbox_runtime::outbound::OutboundMode> {
        use actionbox_runtime::outbound::{ExchangeCapture, OutboundMode, Replay};
        Ok(match (&self.record, &self.replay) {
            (Some(_), _) => OutboundMode::Record(std::sync::Arc::new(ExchangeCapture::new())),
            (None, Some(path)) => OutboundMode::Replay(std::sync::Arc::new(Replay::load(path).context("--replay")?)),
            (None, None) => OutboundMode::Live,
        })
    }

    /// After the call: write what `mode` recorded to `--record`'s file.
    fn save(&self, mode: &actionbox_runtime::outbound::OutboundMode) -> Result<()> {
        if let (Some(path), actionbox_runtime::outbound::OutboundMode::Record(capture)) = (&self.record, mode) {
            let written = capture.save(path).context("--record")?;
            eprintln!("recorded {written} exchange(s) to {}", path.display());
        }
        Ok(())
    }
}

/// Formats of `tools` (each printed as `{"tools": [...]}`, as `serve` answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ToolFormat {
    /// OpenAI `tools` entries (`{"type": "function", "function": …}`).
    Openai,
    /// MCP `tools/list` entries (`{"name", "description", "inputSchema"}`).
    Mcp,
    /// actionbox's own: every field, including execution, trigger and response instructions.
    Json,
}

impl From<ToolFormat> for crate::present::ToolFormat {
    fn from(f: ToolFormat) -> Self {
        match f {
            ToolFormat::Openai => Self::Openai,
            ToolFormat::Mcp => Self::Mcp,
            ToolFormat::Json => Self::Json,
        }
    }
}

/// `actionbox serve`'s options.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Serve this config file (SIGHUP reloads it) instead of a store.
    #[arg(long, env = "ACTIONBOX_CONFIG", value_name = "FILE", conflicts_with = "store")]
    config: Option<PathBuf>,
    #[command(flatten)]
    store: store::StoreArg,
    #[command(flatten)]
    store_serve: store::StoreServeArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// Serve /metrics on this address only (e.g. one only the scraper
    /// reaches) instead of on --listen.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Environment variable holding the bearer token required on /v1/*.
    #[arg(long, value_name = "VAR", default_value = "ACTIONBOX_AUTH_TOKEN")]
    auth_token_env: String,
    /// Serve /v1/* without a token (only allowed on a loopback address).
    #[arg(long)]
    no_auth: bool,
    /// Calls in flight per integration before answering 429.
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_CONCURRENCY)]
    max_concurrency: usize,
    /// Seconds a client has to send a complete request head, then its body,
    /// then to take the answer, before it is disconnected (1-120).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = crate::server::connections::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(crate::server::connections::HEADER_READ_TIMEOUT_SECS)
    )]
    header_read_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request (1-3600).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = crate::server::connections::DEFAULT_IDLE_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(crate::server::connections::IDLE_TIMEOUT_SECS)
    )]
    idle_timeout: u64,
    /// Open connections at most; past it, new connections wait in the
    /// kernel's queue until one closes (1-65536; keep it under `ulimit -n`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::server::connections::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
            .range(crate::server::connections::MAX_CONNECTIONS_RANGE)
    )]
    max_connections: usize,
    #[command(flatten)]
    mcp: McpArgs,
}

/// How `serve`'s remote MCP endpoints (`/mcp`, `/v1/workspaces/{ws}/mcp`)
/// are reached and who may call them.
#[derive(Debug, Args)]
struct McpArgs {
    /// The origin clients reach this server at (e.g. https://actions.example.com): the MCP URLs'
    /// resource identifier, the audience OAuth tokens must name, and the only Host MCP answers to
    /// [default: http://<--listen address>].
    #[arg(long, env = "ACTIONBOX_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// A browser origin allowed to call MCP besides the public URL's (repeatable); requests from
    /// any other page's origin are refused.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// The OAuth 2.1 authorization server whose access tokens MCP accepts, exactly as their `iss`
    /// claim names it (with --oauth-jwks).
    #[arg(long, env = "ACTIONBOX_OAUTH_ISSUER", value_name = "URL", requires = "oauth_jwks")]
    oauth_issuer: Option<String>,
    /// That server's public keys: a JWKS file, as served at its jwks_uri (with --oauth-issuer).
    #[arg(long, env = "ACTIONBOX_OAUTH_JWKS", value_name = "FILE", requires = "oauth_issuer")]
    oauth_jwks: Option<PathBuf>,
    /// Seconds an MCP client may keep a tool list before asking again (0-86400): the longest an
    /// admin change takes to reach a client that caches.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = crate::server::mcp_http::DEFAULT_TOOLS_TTL.as_secs(),
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    mcp_tools_ttl: u64,
}

impl McpArgs {
    /// Whether clients reach the server over https (the console's cookies
    /// are then `Secure`).
    fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"))
    }

    /// The MCP endpoints of a server whose API listener is at `listen`.
    /// `write_timeout` is the listener's `--header-read-timeout`.
    fn endpoint(
        &self,
        listen: std::net::SocketAddr,
        write_timeout: std::time::Duration,
    ) -> Result<crate::server::mcp_http::McpHttp> {
        let options = crate::server::mcp_http::McpHttpOptions {
            public_url: self.public_url.clone(),
            allowed_origins: self.allowed_origins.clone(),
            oauth: self.oauth_issuer.clone().zip(self.oauth_jwks.clone()),
            tools_ttl: std::time::Duration::from_secs(self.mcp_tools_ttl),
            write_timeout,
        };
        crate::server::mcp_http::McpHttp::new(&options, listen)
    }
}

/// Settings of the integration a command runs against. Where the key goes
/// is the operator's call (these flags) or the kind registry's, never the
/// component's: see `cli/integration_settings.rs` and `kinds.rs`.
#[derive(Debug, Args)]
struct IntegrationArgs {
    /// Base URL of the upstream API [default: the kind's API, https://api.shipstation.com for
    /// shipstation; required for a kind this host does not know].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Header the key is sent in, for a kind this host does not know (built-in kinds have their
    /// own: API-Key for shipstation).
    #[arg(long, value_name = "NAME")]
    credential_header: Option<String>,
    /// Wall-clock limit of the call, in seconds (10–180).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
    /// Read the API key from this file (mode 0600, not a symlink).
    #[arg(long, value_name = "PATH", conflicts_with = "api_key_env")]
    api_key_file: Option<PathBuf>,
    /// Read the API key from this environment variable [default: the kind's, SHIPSTATION_API_KEY
    /// for shipstation].
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Answer the action's requests from this recording (made with `actionbox debug … --record FILE`)
    /// instead of the network: the sandbox still admits or refuses each one, no key is needed, and
    /// nothing is sent.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
}

/// Parse arguments, run, and return the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // Before the async runtime: the exporters' HTTP client runs a thread of
    // its own and must not be set up (or dropped) inside the runtime.
    let telemetry = match crate::telemetry::Telemetry::from_env() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(1)
        }
    };
    drop(runtime);
    telemetry.shutdown();
    code
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,wasmtime_wasi_http=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The current span's fields (the call's `invocation_id`, `trace_id`)
        // and the span list go with every line logged during a call.
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::New { name, lang, dir } => new_project(&name, lang, dir),
        Command::Describe { component } => describe(&component).await,
        Command::Check { component, json } => check(&component, json).await,
        Command::Run {
            component,
            method,
            input,
            integration,
        } => run_method(&component, &method, &input, &integration).await,
        Command::TestConnection { component, integration } => test_connection(&component, &integration).await,
        Command::Tools {
            config,
            phase,
            direction,
            format,
        } => tools(&config, phase, direction, format).await,
        Command::SessionStart { config, context } => session_start(&config, &context).await,
        Command::Invoke {
            config,
            action,
            params,
            exchanges,
        } => invoke(&config, &action, &params, &exchanges).await,
        Command::Test { config, integration } => test(&config, &integration).await,
        Command::Debug {
            config,
            action,
            params,
            json,
            exchanges,
        } => debug(&config, &action, &params, json, &exchanges).await,
        Command::Serve(args) => serve(args).await,
        Command::Store(command) => store::store_command(command).await,
        Command::Workspace(command) => store::workspace_command(command).await,
        Command::Mcp { config } => {
            crate::mcp::run_stdio(&config.config).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `actionbox new`: write a new action project and say what to do next.
fn new_project(name: &str, lang: new::Language, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    new::create(name, lang, &dir)?;
    emit(&new::next_steps(name, lang, &dir));
    Ok(ExitCode::SUCCESS)
}

/// `actionbox describe`: the manifest, after the same registry check a config load makes.
async fn describe(component: &Path) -> Result<ExitCode> {
    let action = load(component).await?;
    KindRegistry::builtin().check_requests(action.manifest())?;
    emit(&serde_json::to_string_pretty(action.manifest())?);
    Ok(ExitCode::SUCCESS)
}

/// `actionbox check`'s exit code when the component would be refused.
const CHECK_FAILED: u8 = 3;

/// `actionbox check`: the checks a platform's registration runs
/// (`actionbox_runtime::check`), with the same upload bound, on a file. A kind
/// this host does not know is a warning here: the operator declares it.
async fn check(component: &Path, json: bool) -> Result<ExitCode> {
    use actionbox_runtime::check::{check_file, CheckOptions, Level};
    let engine = ActionEngine::new()?;
    let kinds = KindRegistry::builtin();
    let options = CheckOptions {
        max_component_bytes: crate::workspaces::registry::MAX_COMPONENT_BYTES as u64,
        kinds: &kinds,
        unknown_kind: Level::Warning,
    };
    let report = check_file(&engine, component, &options).await?.report;
    if json {
        emit(&serde_json::to_string_pretty(&report)?);
    } else {
        emit(report.to_string().trim_end());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    })
}

/// `actionbox run`: one method of a component, settings from the flags.
async fn run_method(component: &Path, method: &str, input: &str, integration: &IntegrationArgs) -> Result<ExitCode> {
    let action = load(component).await?;
    let settings = integration.settings(&action)?;
    let report = action.invoke(&settings, method, input).await;
    match report.outcome {
        Ok(value) => {
            emit(&serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}

/// `actionbox test-connection`: the component's `test-connection` export.
async fn test_connection(component: &Path, integration: &IntegrationArgs) -> Result<ExitCode> {
    let action = load(component).await?;
    let settings = integration.settings(&action)?;
    let report = action.test_connection(&settings).await;
    Ok(print_test_result(&report, &settings.base_url.to_string()))
}

/// `actionbox tools`: the tool definitions to offer now.
async fn tools(
    config: &ConfigArg,
    phase: Option<Phase>,
    direction: Option<Direction>,
    format: ToolFormat,
) -> Result<ExitCode> {
    let catalog = ActionCatalog::load(&config.config).await?;
    let tools = catalog.tools(phase, direction);
    emit(&serde_json::to_string_pretty(&crate::present::tools(
        &tools,
        format.into(),
    ))?);
    Ok(ExitCode::SUCCESS)
}

/// `actionbox session-start`: every session-start action the context can run.
async fn session_start(config: &ConfigArg, context: &str) -> Result<ExitCode> {
    let catalog = ActionCatalog::load(&config.config).await?;
    let context: serde_json::Value = serde_json::from_str(context).context("--context is not valid JSON")?;
    let report = catalog.session_start(&context).await?;
    emit(&serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// `actionbox invoke`: a configured action, printed as the assistant gets it.
async fn invoke(config: &ConfigArg, action: &str, params: &str, exchanges: &RecordReplayArgs) -> Result<ExitCode> {
    let catalog = ActionCatalog::load(&config.config).await?;
    let params = parse_params(params)?;
    let mode = exchanges.mode()?;
    let run = catalog.invoke_with(action, &params, mode.clone()).await?;
    emit(&serde_json::to_string_pretty(&run.assistant_payload())?);
    exchanges.save(&mode)?;
    match &run.report.outcome {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(report_error(e)),
    }
}

/// `actionbox test`: an integration's Test button, from the config file.
async fn test(config: &ConfigArg, integration: &str) -> Result<ExitCode> {
    let catalog = ActionCatalog::load(&config.config).await?;
    let (base_url, report) = catalog.test_integration(integration).await?;
    Ok(print_test_result(&report, &base_url))
}

/// `actionbox debug`: the Action Debugger's trace of one real call.
async fn debug(
    config: &ConfigArg,
    action: &str,
    params: &str,
    json: bool,
    exchanges: &RecordReplayArgs,
) -> Result<ExitCode> {
    let catalog = ActionCatalog::load(&config.config).await?;
    let params = parse_params(params)?;
    let mode = exchanges.mode()?;
    let run = catalog.invoke_with(action, &params, mode.clone()).await?;
    if json {
        emit(&serde_json::to_string_pretty(&crate::debugger::trace_json(&run))?);
    } else {
        emit(crate::debugger::render_text(&run).trim_end());
    }
    exchanges.save(&mode)?;
    Ok(match &run.report.outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(e.exit_code()),
    })
}

/// The bearer token `serve` requires on /v1/*, or `None` for `--no-auth`
/// (loopback only).
fn auth_token(args: &ServeArgs) -> Result<Option<String>> {
    if args.no_auth {
        if !args.listen.ip().is_loopback() {
            bail!(
                "--no-auth is only allowed on a loopback address; {} is reachable from outside",
                args.listen
            );
        }
        return Ok(None);
    }
    let var = &args.auth_token_env;
    match std::env::var(var) {
        Ok(t) if t.trim().len() >= 16 => Ok(Some(t.trim().to_string())),
        Ok(_) => bail!("the bearer token in {var} must be at least 16 characters"),
        Err(_) => bail!("set the bearer token for /v1/* in {var} (or choose another variable with --auth-token-env)"),
    }
}

/// `actionbox serve`: the platform HTTP API until SIGTERM or Ctrl-C.
async fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.max_concurrency == 0 {
        bail!("--max-concurrency must be at least 1");
    }
    let limits = crate::server::ConnectionLimits {
        header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout),
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout),
        max_connections: args.max_connections,
    };
    limits.check()?;
    let Some(config) = args.config.clone() else {
        return serve_store(args, limits).await;
    };
    let auth_token = auth_token(&args)?;
    let options = crate::server::ServeOptions {
        config,
        auth_token,
        max_concurrency: args.max_concurrency,
    };
    let (api, metrics) = listeners(&args).await?;
    let mcp = args.mcp.endpoint(api.local_addr()?, limits.header_read_timeout)?;
    let state = crate::server::ServeState::new(options).await?.with_mcp(mcp);
    eprintln!(
        "actionbox serving on http://{} (Ctrl-C or SIGTERM to stop, SIGHUP to reload)",
        api.local_addr()?
    );
    if let Some(metrics) = &metrics {
        eprintln!("actionbox metrics on http://{}/metrics", metrics.local_addr()?);
    }
    let listeners = crate::server::Listeners { api, metrics };
    crate::server::serve_with(state, listeners, limits, shutdown_signal()).await?;
    eprintln!("actionbox stopped after draining in-flight calls");
    Ok(ExitCode::SUCCESS)
}

/// `actionbox serve --store`: the workspaces of a store.
async fn serve_store(args: ServeArgs, limits: crate::server::ConnectionLimits) -> Result<ExitCode> {
    if args.no_auth {
        bail!(
            "--no-auth is for --config only; a store server always needs {}",
            store::OPERATOR_TOKEN_ENV
        );
    }
    if args.store.store.is_none() && Path::new("actionbox.toml").exists() {
        eprintln!("note: serving the workspace store; to serve ./actionbox.toml instead, pass --config actionbox.toml");
    }
    let operator_token = store::operator_token()?;
    let url = args.store.url()?;
    let (api, metrics) = listeners(&args).await?;
    let mcp = args.mcp.endpoint(api.local_addr()?, limits.header_read_timeout)?;
    let workspaces = store::workspaces(&url, &args.store_serve, Some(args.max_concurrency)).await?;
    let state =
        crate::server::workspace_api::WorkspaceServeState::new(workspaces, operator_token, args.max_concurrency)
            .with_mcp(mcp)
            .with_console(args.mcp.is_https());
    let routers = crate::server::Routers {
        api: crate::server::workspace_api::router(state.clone()),
        metrics: crate::server::workspace_api::metrics_router(state.clone()),
        counters: state.metrics.clone(),
    };
    eprintln!(
        "actionbox serving the workspaces of {} on http://{} (Ctrl-C or SIGTERM to stop)",
        store::shown_store(&url),
        api.local_addr()?
    );
    if let Some(metrics) = &metrics {
        eprintln!("actionbox metrics on http://{}/metrics", metrics.local_addr()?);
    }
    let listeners = crate::server::Listeners { api, metrics };
    crate::server::serve_routers(routers, listeners, limits, shutdown_signal()).await?;
    eprintln!("actionbox stopped after draining in-flight calls");
    Ok(ExitCode::SUCCESS)
}

/// The API listener and, with --metrics-listen, the metrics one.
async fn listeners(args: &ServeArgs) -> Result<(tokio::net::TcpListener, Option<tokio::net::TcpListener>)> {
    let listen = args.listen;
    let api = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let metrics = match args.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?,
        ),
        None => None,
    };
    Ok((api, metrics))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Print the Test button's verdict: `OK: …` or `FAILED: <kind>: …`.
fn print_test_result(report: &actionbox_runtime::report::InvocationReport, base_url: &str) -> ExitCode {
    match &report.outcome {
        Ok(value) => {
            let message = value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("connection works");
            emit(&format!("OK: {message} ({} ms, {base_url})", report.elapsed_ms));
            ExitCode::SUCCESS
        }
        Err(e) => {
            emit(&format!("FAILED: {}", one_line(&e.to_string())));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--params`: a JSON object.
fn parse_params(text: &str) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(text)
        .context("--params is not valid JSON; pass an object such as '{\"order_id\":\"1001\"}'")?;
    if !v.is_object() {
        bail!("--params must be a JSON object, such as '{{\"order_id\":\"1001\"}}'");
    }
    Ok(v)
}

/// Load one component on an engine of its own: only the commands that take
/// a component path build one (config commands get theirs from the catalog).
async fn load(path: &Path) -> Result<ActionComponent> {
    if !path.exists() {
        bail!(
            "component {} does not exist (check the path; `make build` builds this repository's actions into target/wasm32-wasip2/release/)",
            path.display()
        );
    }
    // The component keeps the engine alive (and its epoch ticker running).
    ActionEngine::new()?.load(path).await
}

fn report_error(e: &InvokeError) -> ExitCode {
    eprintln!("error: {}", one_line(&e.to_string()));
    ExitCode::from(e.exit_code())
}

/// Write a line to stdout. A closed pipe (`actionbox … | head`) is not an
/// error worth a panic: the reader has what it wanted.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}
