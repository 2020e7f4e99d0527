//! The console's sessions and pages over plain HTTP (issue 15): what a
//! browser test cannot easily aim at — tampered and foreign cookies, revoked
//! tokens, forms without their CSRF value, and hostile text reaching a page.
//! The browser journey is `console.rs`.

use crate::workspaces::{fresh_dir, merchant, mint, new_master_key, ServeSpec, StoreServe, TestStore, OPERATOR};
use shipstation_sim::Simulator;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One answer: status, lower-cased head, body.
struct Page {
    status: u16,
    head: String,
    body: String,
}

impl Page {
    /// The value of the `Set-Cookie` for `name` (without attributes).
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let v = l.strip_prefix("set-cookie: ")?;
            let (k, rest) = v.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or_default().to_string())
        })
    }

    fn location(&self) -> Option<&str> {
        self.head.lines().find_map(|l| l.strip_prefix("location: "))
    }

    /// The `csrf` hidden field of the first form.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field:\n{}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

/// `method path` with `cookies` and a form body, on a fresh connection.
async fn request(addr: SocketAddr, method: &str, path: &str, cookies: &str, form: &[(&str, &str)]) -> Page {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        head.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body.as_bytes()).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer in 30 s"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Page {
        status: head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// `application/x-www-form-urlencoded` encoding.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sign in with `token`; the `Cookie` header value of the session.
async fn sign_in(addr: SocketAddr, token: &str) -> String {
    let form = request(addr, "GET", "/console/sign-in", "", &[]).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf_cookie = form.cookie("abx_csrf").expect("the sign-in CSRF cookie");
    let csrf = form.csrf();
    let signed = request(
        addr,
        "POST",
        "/console/sign-in",
        &format!("abx_csrf={csrf_cookie}"),
        &[("token", token), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(signed.status, 303, "{}\n{}", signed.head, signed.body);
    let session = signed.cookie("abx_session").expect("a session cookie");
    assert!(
        !session.contains(token),
        "the cookie holds the token sealed, not in clear"
    );
    format!("abx_session={session}")
}

async fn server(tag: &str) -> (StoreServe, Simulator, crate::workspaces::TestDir) {
    let dir = fresh_dir(tag);
    let store = TestStore::sqlite(&dir);
    let master = new_master_key(&dir, "master.key").await;
    let s = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let sim = Simulator::start().await.expect("simulator");
    (s, sim, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_reaches_its_own_workspace_only_and_ends_with_its_token() {
    let (s, sim, _dir) = server("console-sessions").await;
    let api = s.api();
    let alpha = merchant(api, "alpha", &sim, sim.api_key()).await;
    merchant(api, "beta", &sim, sim.api_key()).await;
    let (token_id, admin) = mint(api, "alpha", &["admin"], "console").await;

    let cookie = sign_in(s.addr, &admin).await;
    let own = request(s.addr, "GET", "/console/w/alpha/integrations", &cookie, &[]).await;
    assert_eq!(own.status, 200);
    assert!(own.body.contains("data-name=\"main\""), "{}", own.body);
    let other = request(s.addr, "GET", "/console/w/beta/integrations", &cookie, &[]).await;
    assert_eq!(other.status, 403, "another workspace's pages are refused");
    assert!(!other.body.contains("data-name=\"main\""));

    // An altered cookie opens nothing: back to sign in.
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let r = request(s.addr, "GET", "/console/w/alpha/integrations", &tampered, &[]).await;
    assert_eq!((r.status, r.location()), (303, Some("/console/sign-in")));

    // An assistant token is not a console token.
    let form = request(s.addr, "GET", "/console/sign-in", "", &[]).await;
    let refused = request(
        s.addr,
        "POST",
        "/console/sign-in",
        &format!("abx_csrf={}", form.cookie("abx_csrf").expect("cookie")),
        &[("token", &alpha.assistant), ("csrf", &form.csrf())],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("That token was not accepted"), "{}", refused.body);
    assert!(refused.cookie("abx_session").is_none());

    // Revoking the token ends its sessions at once.
    api.delete(OPERATOR, &format!("/v1/admin/workspaces/alpha/tokens/{token_id}"))
        .await
        .expect(204);
    let r = request(s.addr, "GET", "/console/w/alpha/integrations", &cookie, &[]).await;
    assert_eq!((r.status, r.location()), (303, Some("/console/sign-in")));

    // The operator picks among every workspace.
    let operator = sign_in(s.addr, OPERATOR).await;
    let list = request(s.addr, "GET", "/console/workspaces", &operator, &[]).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("/console/w/alpha/integrations") && list.body.contains("/console/w/beta/integrations"));
    let beta = request(s.addr, "GET", "/console/w/beta/actions", &operator, &[]).await;
    assert_eq!(beta.status, 200);
    // A malformed workspace id never reaches a page's links.
    let odd = request(s.addr, "GET", "/console/w/%22%3E%3Cb%3E/integrations", &operator, &[]).await;
    assert_eq!(odd.status, 404);
    assert!(!odd.body.contains("<b>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_their_csrf_value_change_nothing() {
    let (s, sim, _dir) = server("console-csrf").await;
    let api = s.api();
    let m = merchant(api, "alpha", &sim, sim.api_key()).await;
    let cookie = sign_in(s.addr, &m.admin).await;
    let new_integration = [
        ("name", "sneaky"),
        ("kind", "shipstation"),
        ("component", m.component.as_str()),
        ("timeout", "10"),
    ];
    let r = request(
        s.addr,
        "POST",
        "/console/w/alpha/integrations/new",
        &cookie,
        &new_integration,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    let mut wrong = new_integration.to_vec();
    wrong.push(("csrf", "00000000000000000000000000000000"));
    let r = request(s.addr, "POST", "/console/w/alpha/integrations/new", &cookie, &wrong).await;
    assert_eq!(r.status, 403);
    let r = request(
        s.addr,
        "POST",
        "/console/w/alpha/integrations/main/delete",
        &cookie,
        &[],
    )
    .await;
    assert_eq!(r.status, 403);
    let listed = api.get(&m.admin, "/v1/workspaces/alpha/integrations").await.expect(200);
    let names = crate::workspaces::names(&listed.json()["integrations"]);
    assert_eq!(names, ["main"], "nothing was created or deleted");

    // The sign-in form without its cookie is refused too (login CSRF).
    let form = request(s.addr, "GET", "/console/sign-in", "", &[]).await;
    let r = request(
        s.addr,
        "POST",
        "/console/sign-in",
        "",
        &[("token", &m.admin), ("csrf", &form.csrf())],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.cookie("abx_session").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_is_shown_escaped_and_the_key_never() {
    let dir = fresh_dir("console-hostile");
    let store = TestStore::sqlite(&dir);
    let master = new_master_key(&dir, "master.key").await;
    let s = StoreServe::up(ServeSpec::new(&store, &master, &dir)).await;
    let key = crate::workspaces::RECOGNIZABLE_KEY;
    let sim = Simulator::start_with(shipstation_sim::Fixtures::default_set(), key, 0)
        .await
        .expect("simulator");
    let api = s.api();
    let m = merchant(api, "alpha", &sim, key).await;
    let cookie = sign_in(s.addr, &m.admin).await;

    // Markup and a bidi override in a parameter reach the action's error
    // message, the trace and the payload: the page shows them as text.
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\u{202e}";
    let page = request(
        s.addr,
        "GET",
        "/console/w/alpha/debugger?action=trackOrder",
        &cookie,
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    let run = request(
        s.addr,
        "POST",
        "/console/w/alpha/debugger?action=trackOrder",
        &cookie,
        &[("csrf", &page.csrf()), ("param-order_id", hostile)],
    )
    .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains("id=\"outcome\""), "{}", run.body);
    for raw in ["<script>alert", "<img src=x"] {
        assert!(!run.body.contains(raw), "{raw:?} reached the page unescaped");
    }
    // The trace (the action's words) shows the bidi override as a visible
    // escape; only the person's own input, echoed in its form field, keeps it.
    let trace = &run.body[run.body.find("id=\"trace\"").expect("a trace")..];
    assert!(!trace.contains('\u{202e}'), "a bidi override reached the trace");
    assert!(trace.contains("&#60;script&#62;alert(1)"), "shown as text");

    // A good run, then every page that shows the integration or a trace.
    let good = request(
        s.addr,
        "POST",
        "/console/w/alpha/debugger?action=trackOrder",
        &cookie,
        &[("csrf", &page.csrf()), ("param-order_id", "1002")],
    )
    .await;
    assert!(good.body.contains("class=\"banner ok\""), "{}", good.body);
    assert_eq!(
        good.body.matches("<li class=\"request").count(),
        good.body.matches("<rect class=\"bar").count()
    );
    assert!(good.body.contains("[redacted]"), "the key's header is shown redacted");
    let history = request(s.addr, "GET", "/console/w/alpha/history", &cookie, &[]).await;
    let entry = history.body.find("/console/w/alpha/history/").map(|at| {
        let rest = &history.body[at..];
        rest[..rest.find('"').expect("quote")].to_string()
    });
    let entry = entry.unwrap_or_else(|| panic!("history lists no run:\n{}", history.body));
    for path in [
        "/console/w/alpha/integrations",
        "/console/w/alpha/integrations/main",
        "/console/w/alpha/actions",
        "/console/w/alpha/history",
        entry.as_str(),
    ] {
        let p = request(s.addr, "GET", path, &cookie, &[]).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(
            !p.body.contains(key) && !p.head.contains(&key.to_ascii_lowercase()),
            "{path} shows the key"
        );
        assert!(p.head.contains("content-security-policy: default-src 'none'"), "{path}");
    }
    for p in [&run, &good, &history] {
        assert!(!p.body.contains(key));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_never_replaces_what_exists() {
    let (s, sim, _dir) = server("console-no-replace").await;
    let api = s.api();
    let m = merchant(api, "alpha", &sim, sim.api_key()).await;
    let before = api
        .get(&m.admin, "/v1/workspaces/alpha/integrations/main")
        .await
        .expect(200)
        .json();
    let cookie = sign_in(s.addr, &m.admin).await;

    // "Add Integration" with the name of one that exists: refused, the old one intact.
    let form = request(s.addr, "GET", "/console/w/alpha/integrations/new", &cookie, &[]).await;
    let csrf = form.csrf();
    let r = request(
        s.addr,
        "POST",
        "/console/w/alpha/integrations/new",
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "main"),
            ("kind", "shipstation"),
            ("component", &m.component),
            ("api_key", "another-key-entirely"),
            ("timeout", "30"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("already exists"), "{}", r.body);
    let after = api
        .get(&m.admin, "/v1/workspaces/alpha/integrations/main")
        .await
        .expect(200)
        .json();
    assert_eq!(before, after, "the existing integration was not touched");

    // "Add Action" with the name of a custom action that exists: refused.
    let custom = [
        ("csrf", csrf.as_str()),
        ("name", "trackShopifyOrder"),
        ("execution", "during-interaction"),
        ("trigger", "inbound"),
        (
            "param-order_id",
            "Track order by Shopify order id, format: SHOPIFY-123456789",
        ),
        ("intent", "save"),
    ];
    let path = "/console/w/alpha/actions/new?integration=main&method=track-order";
    let first = request(s.addr, "POST", path, &cookie, &custom).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let mut again = custom.to_vec();
    again[3] = ("execution", "session-start");
    let second = request(s.addr, "POST", path, &cookie, &again).await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(second.body.contains("already exists"), "{}", second.body);
    let action = api
        .get(&m.admin, "/v1/workspaces/alpha/actions/trackShopifyOrder")
        .await
        .expect(200)
        .json();
    assert_eq!(
        action["execution"], "during-interaction",
        "the first one stands: {action}"
    );

    // Customising a default action by its name is what adding one with that name is for.
    let mut default = custom.to_vec();
    default[1] = ("name", "trackOrder");
    let r = request(s.addr, "POST", path, &cookie, &default).await;
    assert_eq!(r.status, 303, "{}", r.body);
}
