//! A bounded loopback load run against a real `actionbox serve` process
//! (default `--max-concurrency` 64), whose own memory is measured: the
//! tests around it share this test process, never the server's.

use actionbox_e2e::api::http;
use actionbox_e2e::{shipstation_integration, write_config, ServeProcess};
use shipstation_sim::Simulator;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORDER: &str = r#"{"params":{"order_id":"1001"}}"#;

/// Resident memory of process `pid` now.
fn rss_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_requests_at_concurrency_64_all_succeed_without_memory_growth() {
    const TOTAL: usize = 10_000;
    const CONCURRENCY: usize = 64;
    let sim = Simulator::start().await.expect("simulator");
    sim.set_recording(false);
    let config = write_config("load", &shipstation_integration(&sim.base_url()));
    let key = sim.api_key().to_string();
    let s = tokio::task::spawn_blocking(move || {
        ServeProcess::start(
            &config,
            &[("SHIPSTATION_API_KEY", key.as_str())],
            Duration::from_secs(60),
        )
    })
    .await
    .expect("join")
    .unwrap_or_else(|run| panic!("serve did not start (exit {}): {}", run.code, run.stderr));
    let pid = s.pid();
    let next = Arc::new(AtomicUsize::new(0));
    // RSS after the first thousand and before the last thousand requests.
    let rss = Arc::new(Mutex::new((0u64, 0u64)));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, rss, addr) = (next.clone(), rss.clone(), s.addr);
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    return failures;
                }
                if i == 1_000 {
                    rss.lock().expect("lock").0 = rss_bytes(pid);
                }
                if i == TOTAL - 1_000 {
                    rss.lock().expect("lock").1 = rss_bytes(pid);
                }
                let r = http(addr, "POST", "/v1/actions/trackOrder/invoke", None, Some(ORDER)).await;
                if r.status != 200 {
                    failures.push(format!("{}: {}", r.status, r.body));
                }
            }
        }));
    }
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("join"));
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    let (early, late) = *rss.lock().expect("lock");
    assert!(early > 0 && late > 0);
    eprintln!(
        "RSS after 1,000 requests: {} MiB; after 9,000: {} MiB",
        early >> 20,
        late >> 20
    );
    // Allocator noise is fine; a per-call leak of even 1 KiB x 8,000 calls is not.
    assert!(
        late < early + 8 * 1024 * 1024,
        "RSS grew from {} MiB to {} MiB",
        early >> 20,
        late >> 20
    );
    let metrics = http(s.addr, "GET", "/metrics", None, None).await;
    let line = format!("actionbox_invocations_total{{action=\"trackOrder\",outcome=\"ok\"}} {TOTAL}");
    assert!(metrics.body.contains(&line), "{}", metrics.body);
}
