//! `actionbox serve` against clients that try to hold it: slowloris heads,
//! slow bodies, idle keep-alive connections, more connections than the cap,
//! and a shutdown in the middle of all that. Each test runs the real binary
//! with the flags under test, so the CLI's parsing is covered too.

use actionbox_e2e::api::{http, TOKEN};
use actionbox_e2e::{actionbox_bin, run_actionbox, shipstation_integration, write_config};
use shipstation_sim::{FaultRule, Simulator};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORDER: &str = r#"{"params":{"order_id":"1001"}}"#;
/// Generous bound for anything the server should do "at once" or "after a
/// 2 s timeout": long enough for a loaded 2-core CI machine.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A running `actionbox serve` process, killed on drop.
struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// `actionbox serve` on 127.0.0.1:0 for the simulator, with `flags`.
    async fn start(sim: &Simulator, tag: &str, flags: &[&str]) -> Self {
        let config = write_config(tag, &shipstation_integration(&sim.base_url()));
        let mut child = Command::new(actionbox_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .args(flags)
            .env("SHIPSTATION_API_KEY", sim.api_key())
            .env("ACTIONBOX_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("actionbox serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let lines = BufReader::new(child.stderr.take().expect("stderr"));
        let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, Option<SocketAddr>)>();
        let log = stderr.clone();
        // Keep reading stderr for the whole run (a full pipe would block the
        // server); report the addresses as they are announced.
        std::thread::spawn(move || {
            let (mut api, mut metrics) = (None, None);
            for line in lines.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("actionbox serving on http://") {
                    api = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                if let Some(rest) = line.strip_prefix("actionbox metrics on http://") {
                    metrics = rest.trim_end_matches("/metrics").parse().ok();
                }
                log.lock().expect("log").push_str(&format!("{line}\n"));
                if let Some(api) = api {
                    let _ = tx.send((api, metrics));
                }
            }
        });
        let wants_metrics = flags.contains(&"--metrics-listen");
        let deadline = Instant::now() + Duration::from_secs(120);
        let (addr, metrics_addr) = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((api, metrics)) if metrics.is_some() || !wants_metrics => break (api, metrics),
                Ok(_) => {}
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("actionbox serve exited ({status}):\n{}", stderr.lock().expect("log"));
                    }
                    assert!(Instant::now() < deadline, "actionbox serve did not start");
                }
            }
        };
        Self {
            child,
            addr,
            metrics_addr,
            stderr,
        }
    }

    /// SIGTERM, then how long the process took to exit (panics past `bound`).
    async fn terminate(&mut self, bound: Duration) -> (Duration, std::process::ExitStatus) {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM was delivered");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (sent.elapsed(), status);
            }
            assert!(
                sent.elapsed() < bound,
                "actionbox serve still running {bound:?} after SIGTERM:\n{}",
                self.stderr.lock().expect("log")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/metrics` text, from wherever it is served.
    async fn metrics(&self) -> String {
        let answer = http(self.metrics_addr.unwrap_or(self.addr), "GET", "/metrics", None, None).await;
        assert_eq!(answer.status, 200);
        answer.body
    }
}

/// A slowloris client: sends a request head that never ends, one byte every
/// 200 ms, until the server closes the connection. Returns how long the
/// connection stayed open, or `None` if it was still open after `PROMPTLY`
/// past `give_up_after`.
async fn slowloris(addr: SocketAddr, give_up_after: Duration) -> Option<Duration> {
    let opened = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = b"GET /healthz HTTP/1.1\r\nHost: actionbox\r\nX-Slow: ";
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            n = read.read(&mut buf) => {
                // EOF, a reset, or (never expected) an answer to a head that was never finished.
                return match n { Ok(0) | Err(_) => Some(opened.elapsed()), Ok(_) => panic!("an unfinished head was answered") };
            }
            _ = tick.tick() => {
                let byte = head.get(sent).copied().unwrap_or(b'a');
                sent += 1;
                if write.write_all(&[byte]).await.is_err() {
                    return Some(opened.elapsed());
                }
                if opened.elapsed() > give_up_after + PROMPTLY {
                    return None;
                }
            }
        }
    }
}

/// Send `GET /healthz` on a kept-alive connection and read its answer.
async fn keep_alive_health_check(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: actionbox\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).ends_with("\r\n\r\nok\n") {
        let n = tokio::time::timeout(PROMPTLY, stream.read(&mut buf))
            .await
            .expect("answered")
            .expect("read");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&seen));
}

/// Wait until the server closes `stream` (EOF or reset); how long that took.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let waiting = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(PROMPTLY, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return waiting.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {PROMPTLY:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_connections_are_cut_at_the_header_read_timeout_while_others_are_served() {
    let sim = Simulator::start().await.expect("simulator");
    let server = ServeProcess::start(&sim, "slowloris", &["--header-read-timeout", "2"]).await;
    let attackers: Vec<_> = (0..50)
        .map(|_| tokio::spawn(slowloris(server.addr, Duration::from_secs(2))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let health = http(server.addr, "GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "served beside 50 slowloris connections");
    let ok = http(
        server.addr,
        "POST",
        "/v1/actions/trackOrder/invoke",
        Some(TOKEN),
        Some(ORDER),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    for attacker in attackers {
        let open_for = attacker
            .await
            .expect("join")
            .expect("the server closed the slowloris connection");
        assert!(
            open_for >= Duration::from_secs(1),
            "closed by the timeout, not at once ({open_for:?})"
        );
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("actionbox_connections_closed_total{reason=\"header-read-timeout\"} 50"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_request_body_is_answered_408_at_the_header_read_timeout() {
    let sim = Simulator::start().await.expect("simulator");
    let server = ServeProcess::start(&sim, "slowbody", &["--header-read-timeout", "2"]).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "POST /v1/actions/trackOrder/invoke HTTP/1.1\r\nHost: actionbox\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"params\":",
        ORDER.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // The rest of the body never comes.
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(sim.requests().is_empty(), "no action ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let sim = Simulator::start().await.expect("simulator");
    // The header-read timeout is long, so a close within the bound below can
    // only be the idle timeout's.
    let server = ServeProcess::start(&sim, "idle", &["--idle-timeout", "2", "--header-read-timeout", "60"]).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    keep_alive_health_check(&mut stream).await;
    keep_alive_health_check(&mut stream).await;
    let idle_for = closed_by_server(&mut stream).await;
    assert!(
        idle_for >= Duration::from_secs(1),
        "closed by the idle timeout, not at once ({idle_for:?})"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("actionbox_connections_closed_total{reason=\"idle-timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_cap_a_new_client_waits_until_a_slot_frees() {
    let sim = Simulator::start().await.expect("simulator");
    let server = ServeProcess::start(
        &sim,
        "cap",
        &[
            "--max-connections",
            "4",
            "--header-read-timeout",
            "60",
            "--idle-timeout",
            "60",
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        keep_alive_health_check(&mut stream).await; // proves it was accepted
        held.push(stream);
    }

    // The kernel completes the handshake (backlog), but the server does not
    // accept, so the request waits unanswered.
    let mut fifth = TcpStream::connect(server.addr).await.expect("connect");
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: actionbox\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(1500), fifth.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "the fifth connection was served beyond the cap: {early:?}"
    );

    drop(held.remove(0));
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, fifth.read_to_end(&mut answer))
        .await
        .expect("served once a slot freed")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_slowloris_closes_idle_connections_and_finishes_the_call_in_flight() {
    let sim = Simulator::start().await.expect("simulator");
    sim.add_fault(
        FaultRule::on("/v2/shipments")
            .delay(Duration::from_millis(2000))
            .times(1),
    );
    // Long timeouts: only shutdown itself may close these connections quickly.
    let mut server = ServeProcess::start(
        &sim,
        "shutdown",
        &["--header-read-timeout", "60", "--idle-timeout", "600"],
    )
    .await;
    let attackers: Vec<_> = (0..50)
        .map(|_| tokio::spawn(slowloris(server.addr, Duration::from_secs(60))))
        .collect();
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    keep_alive_health_check(&mut idle).await;
    let addr = server.addr;
    let in_flight =
        tokio::spawn(
            async move { http(addr, "POST", "/v1/actions/trackOrder/invoke", Some(TOKEN), Some(ORDER)).await },
        );
    tokio::time::sleep(Duration::from_millis(700)).await;

    let (took, status) = server.terminate(PROMPTLY).await;
    assert!(status.success(), "clean exit: {status}");
    assert!(took < PROMPTLY, "{took:?}");
    let answer = in_flight.await.expect("join");
    assert_eq!(answer.status, 200, "the call in flight finished: {}", answer.body);
    assert_eq!(answer.json()["result"]["shipstation"]["order_id"], "1001");
    for attacker in attackers {
        let open_for = attacker.await.expect("join").expect("closed at shutdown");
        assert!(open_for < Duration::from_secs(30), "{open_for:?}");
    }
    closed_by_server(&mut idle).await;
    assert!(
        server.stderr.lock().expect("log").contains("stopped after draining"),
        "{}",
        server.stderr.lock().expect("log")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_listen_serves_metrics_there_and_only_there() {
    let sim = Simulator::start().await.expect("simulator");
    let server = ServeProcess::start(&sim, "metrics-listen", &["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics_addr = server.metrics_addr.expect("the metrics address is announced");
    assert_ne!(metrics_addr, server.addr);

    let there = http(metrics_addr, "GET", "/metrics", None, None).await;
    assert_eq!(there.status, 200);
    assert!(there.body.contains("actionbox_in_flight 0"), "{}", there.body);
    assert!(there.headers.contains("content-type: text/plain"), "{}", there.headers);
    let main = http(server.addr, "GET", "/metrics", None, None).await;
    assert_eq!(main.status, 404, "not on the main address: {}", main.body);
    assert_eq!(http(server.addr, "GET", "/healthz", None, None).await.status, 200);
    assert_eq!(
        http(metrics_addr, "GET", "/v1/tools", Some(TOKEN), None).await.status,
        404,
        "the metrics address serves nothing else"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_head_is_refused_with_431() {
    let sim = Simulator::start().await.expect("simulator");
    let server = ServeProcess::start(&sim, "big-head", &[]).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: actionbox\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    // The server may stop reading (and answer) before the whole head is sent.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_flags_out_of_range_are_usage_errors() {
    for (flag, value, range) in [
        ("--max-connections", "0", "1..=65536"),
        ("--header-read-timeout", "0", "1..=120"),
        ("--idle-timeout", "100000", "1..=3600"),
    ] {
        let out = run_actionbox(&["serve", "--no-auth", flag, value], None).await;
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert!(out.stderr.contains(flag), "{}", out.stderr);
        assert!(out.stderr.contains(range), "{}", out.stderr);
    }
}
