//! Criterion micro-benchmarks, each next to its baseline:
//! - `instantiate`: a fresh instance plus its smallest call (`describe`),
//!   on-demand allocation vs the pooling allocator;
//! - `track_order`: trackOrder against the simulator through the sandbox vs
//!   the same ShipStation core compiled natively with a native HTTP client.
//!
//! Besides criterion's own analysis, every timed call is kept and written to
//! `target/bench/raw/` so the report can give per-call medians and p99s.

use actionbox_bench::{
    component_path, native_track_order, require, Connections, Samples, SimulatorThread, ORDER_INPUT, SIM_KEY,
};
use actionbox_runtime::engine::{EngineOptions, PoolSizing};
use actionbox_runtime::{ActionComponent, ActionEngine, ApiKey, BaseUrl, IntegrationSettings};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

/// Warm-up calls dropped from the raw samples (criterion's own warm-up also
/// goes through the timed closure).
const WARMUP_SHARE: usize = 10;

fn engine(pool: Option<PoolSizing>) -> ActionEngine {
    let options = EngineOptions {
        pool,
        ..EngineOptions::default()
    };
    match ActionEngine::with_options(options) {
        Ok(e) => e.with_cache_dir(None),
        Err(e) => panic!("cannot create the engine: {e:#}"),
    }
}

fn load(rt: &tokio::runtime::Runtime, engine: &ActionEngine) -> ActionComponent {
    let path = component_path();
    if let Err(e) = require(&path) {
        panic!("{e:#}");
    }
    match rt.block_on(engine.load(&path)) {
        Ok(c) => c,
        Err(e) => panic!("cannot load {}: {e:#}", path.display()),
    }
}

fn save(mut samples: Samples, file: &str) {
    let skip = samples.nanos.len() / WARMUP_SHARE;
    samples.nanos.drain(..skip);
    if let Err(e) = samples.save(file) {
        panic!("{e:#}");
    }
}

/// Time `iters` calls one by one, keeping each in `samples`; the total for criterion.
fn timed<T, E: std::fmt::Debug>(samples: &mut Samples, iters: u64, mut call: impl FnMut() -> Result<T, E>) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let result = call();
        let took = start.elapsed();
        if let Err(e) = result {
            panic!("the measured call failed: {e:?}");
        }
        samples.push(took);
        total += took;
    }
    total
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a runtime: {e}"),
    }
}

fn instantiate(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("instantiate");
    for (label, pool) in [("on-demand", None), ("pooling", Some(PoolSizing { instances: 64 }))] {
        let engine = engine(pool);
        let action = load(&rt, &engine);
        let mut samples = Samples::new(&format!("instantiate + describe, {label}"));
        group.bench_function(label, |b| {
            b.iter_custom(|iters| timed(&mut samples, iters, || rt.block_on(action.describe_fresh())));
        });
        save(samples, &format!("instantiate-{label}"));
    }
    group.finish();
}

fn track_order(c: &mut Criterion) {
    let sim = match SimulatorThread::start() {
        Ok(s) => s,
        Err(e) => panic!("cannot start the simulator: {e:#}"),
    };
    let rt = runtime();
    let engine = engine(Some(PoolSizing { instances: 64 }));
    let action = load(&rt, &engine);
    let settings = match (BaseUrl::parse(&sim.base_url), ApiKey::new(SIM_KEY)) {
        (Ok(url), Ok(key)) => IntegrationSettings::new(url, Some(key)),
        _ => panic!("bad simulator URL or key"),
    };
    // Both paths must produce the same document, or the comparison is moot.
    let sandboxed = rt.block_on(action.invoke(&settings, "trackOrder", ORDER_INPUT)).outcome;
    let native = native_track_order(&sim.base_url, ORDER_INPUT, Connections::PerRequest)
        .map(|t| serde_json::from_str::<serde_json::Value>(&t));
    match (&sandboxed, &native) {
        (Ok(a), Ok(Ok(b))) => assert_eq!(a, b, "sandboxed and native trackOrder disagree"),
        _ => panic!("trackOrder failed: sandboxed {sandboxed:?}, native {native:?}"),
    }

    let mut group = c.benchmark_group("track_order");
    let mut samples = Samples::new("trackOrder, sandboxed (pooling)");
    group.bench_function("sandboxed", |b| {
        b.iter_custom(|iters| {
            timed(&mut samples, iters, || {
                rt.block_on(action.invoke(&settings, "trackOrder", ORDER_INPUT)).outcome
            })
        });
    });
    save(samples, "track-order-sandboxed");
    for (label, connections) in [
        ("native", Connections::PerRequest),
        ("native-keepalive", Connections::KeepAlive),
    ] {
        let mut samples = Samples::new(&format!("trackOrder, native core + ureq, {connections:?}"));
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(&mut samples, iters, || {
                    native_track_order(&sim.base_url, ORDER_INPUT, connections)
                })
            });
        });
        save(samples, &format!("track-order-{label}"));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(100).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(2));
    targets = instantiate, track_order
}
criterion_main!(benches);
