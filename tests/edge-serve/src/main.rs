//! `edge-serve`: a minimal `wasi:http/proxy` runtime for testing the edge build.
//!
//! It stands in for an edge runtime (Spin, wasmCloud, …). It links exactly the
//! interfaces of the `wasi:http/proxy` world plus `wasi:config/store` — nothing
//! else, not even `wasi:cli/environment` — so a component that imports anything
//! more is refused at load, naming the import. Each request gets a fresh
//! instance. The component's configuration (`wasi:config/store`) is the
//! server's `ACTIONBOX_*` environment variables with their names lower-cased
//! (`ACTIONBOX_API_KEY` -> `actionbox_api_key`, the way Spin maps
//! `SPIN_VARIABLE_*`), and nothing else. It listens on loopback only.
//!
//! ```text
//! edge-serve COMPONENT [--listen 127.0.0.1:8080] [--url-file PATH] [--request-timeout SECS]
//! ```

use hyper::server::conn::http1;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use wasmtime::component::{types::ComponentItem, Component, Linker, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{bail, format_err, Config, Engine, Result, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// What `wasi:config/store` answers: the server's `ACTIONBOX_*` settings.
    config: Arc<WasiConfigVariables>,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

struct Server {
    pre: ProxyPre<State>,
    config: Arc<WasiConfigVariables>,
    timeout: Duration,
}

struct Args {
    component: String,
    listen: SocketAddr,
    url_file: Option<String>,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut component = None;
    let mut listen: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut url_file = None;
    let mut timeout = Duration::from_secs(30);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = it.next().context("--listen needs an address")?.parse()?,
            "--url-file" => url_file = Some(it.next().context("--url-file needs a path")?),
            "--request-timeout" => {
                timeout = Duration::from_secs(it.next().context("--request-timeout needs seconds")?.parse()?)
            }
            "-h" | "--help" => {
                println!(
                    "edge-serve COMPONENT [--listen 127.0.0.1:8080] [--url-file PATH] [--request-timeout SECS]\n\
                     Serves a wasi:http/proxy component; links only the proxy world + wasi:config/store.\n\
                     wasi:config/store answers the server's ACTIONBOX_* environment variables, names\n\
                     lower-cased (ACTIONBOX_API_KEY -> actionbox_api_key); the component sees nothing else."
                );
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown flag {s}"),
            s => component = Some(s.to_string()),
        }
    }
    if !listen.ip().is_loopback() {
        bail!("--listen must be a loopback address");
    }
    Ok(Args {
        component: component.context("usage: edge-serve COMPONENT [--listen ADDR]")?,
        listen,
        url_file,
        timeout,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let engine = Engine::new(&Config::new())?;
    let t = std::time::Instant::now();
    let component = Component::from_file(&engine, &args.component).with_context(|| args.component.clone())?;
    eprintln!("edge-serve: compiled {} in {:.2?}", args.component, t.elapsed());
    let ty = component.component_type();
    for (name, item) in ty.imports(&engine) {
        let kind = match item.ty {
            ComponentItem::ComponentInstance(_) => "instance",
            ComponentItem::ComponentFunc(_) => "func",
            ComponentItem::Type(_) => "type",
            _ => "other",
        };
        eprintln!("edge-serve: import {kind} {name}");
    }

    // The proxy world, and wasi:config/store: nothing else.
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi_http::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut State| WasiConfig::from(&*s.config))?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component).context("linking the component")?)?;

    let settings: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ACTIONBOX_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    // Names only: values may be secrets.
    let names: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
    eprintln!("edge-serve: component configuration: {}", names.join(", "));

    let server = Arc::new(Server {
        pre,
        config: Arc::new(settings.into_iter().collect()),
        timeout: args.timeout,
    });
    let listener = TcpListener::bind(args.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    eprintln!("edge-serve: listening on {url}");
    if let Some(path) = &args.url_file {
        std::fs::write(path, &url)?;
    }
    loop {
        let (client, _) = tokio::select! {
            c = listener.accept() => c?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { server.handle(req).await }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(client), service)
                .await
            {
                eprintln!("edge-serve: connection error: {e}");
            }
        });
    }
}

impl Server {
    async fn handle(&self, req: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<HyperOutgoingBody>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        let mut store = Store::new(
            self.pre.engine(),
            State {
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                config: self.config.clone(),
                table: ResourceTable::new(),
            },
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let timeout = self.timeout;
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => bail!("request timed out after {timeout:?}"),
            }
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(format_err!("{e:?}")),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => format_err!("the component never set a response"),
                    Ok(Err(e)) => e,
                    Err(e) => format_err!("{e}"),
                };
                eprintln!("edge-serve: request failed: {e:?}");
                Err(e)
            }
        }
    }
}
