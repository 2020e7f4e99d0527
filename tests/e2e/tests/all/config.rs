//! Integrations and custom actions: config validation, tool definitions,
//! session start, invoke and the Action Debugger, against the simulator.

use actionbox::config::{Direction, Execution, Phase, Trigger};
use actionbox::{ActionCatalog, Config};
use actionbox_e2e::{run_actionbox, shipstation_integration, write_config};
use serde_json::{json, Value};
use shipstation_sim::Simulator;
use std::path::PathBuf;

fn integration(base_url: &str) -> String {
    shipstation_integration(base_url)
}

fn write(tag: &str, text: &str) -> PathBuf {
    write_config(tag, text)
}

/// Parse `text` (no components loaded) and return the error message.
fn parse_error(text: &str) -> String {
    let path = PathBuf::from("/etc/actionbox/actionbox.toml");
    match Config::parse(text, &path) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn config_validation_names_file_line_field_value_and_allowed_values() {
    let base = integration("https://api.shipstation.com");
    let action = "\n[[action]]\nname = \"a\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\n";
    // (extra text, expected line, expected fragments)
    let cases: Vec<(String, usize, Vec<&str>)> = vec![
        (
            format!("{base}colour = \"blue\"\n"),
            7,
            vec!["unknown field `colour`", "expected one of"],
        ),
        (format!("shoe = 1\n{base}"), 1, vec!["unknown field `shoe`"]),
        (
            format!("{base}timeout = 5\n"),
            7,
            vec!["field `timeout`", "5 s", "between 10 and 180"],
        ),
        (format!("{base}timeout = 200\n"), 7, vec!["between 10 and 180"]),
        (
            format!("{base}{action}execution = \"sometimes\"\n"),
            12,
            vec![
                "unknown variant `sometimes`",
                "`session-start`",
                "`during-interaction`",
                "`both`",
            ],
        ),
        (
            format!("{base}{action}trigger = \"sideways\"\n"),
            12,
            vec!["`sideways`", "`inbound`", "`outbound`", "`both`"],
        ),
        (
            format!("{base}api_key_file = \"/k\"\n"),
            7,
            vec!["api_key_env or api_key_file, not both"],
        ),
        (format!("{base}base_url2 = 1\n"), 7, vec!["unknown field `base_url2`"]),
        (
            base.replace("https://api.shipstation.com", "http://api.shipstation.com"),
            6,
            vec!["field `base_url`", "unencrypted"],
        ),
        (
            format!("{base}[integration.limits]\nmemory_mib = 0\n"),
            8,
            vec!["limits.memory_mib", "0 is out of range", "1–4096"],
        ),
        (
            format!("{base}[integration.limits]\nmemory_gib = 1\n"),
            8,
            vec!["unknown field `memory_gib`"],
        ),
        (format!("{base}{action}{action}"), 14, vec!["`a` is used twice"]),
        (
            format!("{base}{}", action.replace("\"a\"", "\"track order!\"")),
            9,
            vec!["not a valid tool name"],
        ),
        (
            format!("{base}{}", action.replace("\"shop\"", "\"shoppe\"")),
            10,
            vec!["no integration is named `shoppe`", "configured: shop"],
        ),
        (
            format!("{base}{action}mood = \"happy\"\n"),
            12,
            vec!["unknown field `mood`"],
        ),
    ];
    for (text, line, fragments) in cases {
        let message = parse_error(&text);
        let prefix = format!("/etc/actionbox/actionbox.toml:{line}:");
        assert!(
            message.starts_with(&prefix),
            "expected `{prefix}` in: {message}\n---\n{text}"
        );
        for f in fragments {
            assert!(message.contains(f), "expected `{f}` in: {message}\n---\n{text}");
        }
    }
}

#[test]
fn inline_api_key_is_refused_without_echoing_it() {
    let text = format!(
        "{}api_key = \"TEST_super_secret_value\"\n",
        integration("https://api.shipstation.com")
    );
    let message = parse_error(&text);
    assert!(
        message.contains("keys are never written in the config file"),
        "{message}"
    );
    assert!(message.contains("api_key_env"), "{message}");
    assert!(
        !message.contains("TEST_super_secret_value"),
        "the key was echoed: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_and_parameters_are_checked_against_the_component() {
    let base = integration("https://api.shipstation.com");
    let cases = [
        (
            format!("{base}\n[[action]]\nname = \"a\"\nintegration = \"shop\"\nmethod = \"shipOrder\"\n"),
            ":11:",
            vec!["offers no method `shipOrder`", "trackOrder (track-order)"],
        ),
        (
            format!(
                "{base}\n[[action]]\nname = \"a\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\n[action.parameters.orderId]\ndescription = \"x\"\n"
            ),
            ":12:",
            vec!["parameter `orderId`", "no such parameter", "it takes: order_id"],
        ),
        (base.replace("kind = \"shipstation\"", "kind = \"shopify\""), ":1:", vec!["`shopify` does not match", "`shipstation` action"]),
        (base.replace("shipstation.wasm", "nope.wasm"), ":1:", vec!["nope.wasm does not exist", "make build"]),
        (base.replace("api_key_env = \"SHIPSTATION_API_KEY\"\n", ""), ":1:", vec!["needs a ShipStation API V2 key", "api_key_env"]),
    ];
    for (text, line, fragments) in cases {
        let path = write("methods", &text);
        let message = match ActionCatalog::load(&path).await {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(message.starts_with(&format!("{}{line}", path.display())), "{message}");
        for f in fragments {
            assert!(message.contains(f), "expected `{f}` in: {message}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_track_order_action_is_added() {
    let path = write("default", &integration("https://api.shipstation.com"));
    let catalog = ActionCatalog::load(&path).await.expect("loads");
    let tools = catalog.tools(None, None);
    assert_eq!(tools.len(), 1);
    let t = &tools[0];
    assert_eq!(t.name, "trackOrder");
    assert_eq!(
        (t.execution, t.trigger),
        (Execution::DuringInteraction, Trigger::Inbound)
    );
    assert_eq!(
        t.parameters["properties"]["order_id"]["description"],
        "Order id (e.g., Shopify/WooCommerce/AdobeCommerce order id)"
    );
    assert_eq!(t.parameters["required"], json!(["order_id"]));
    assert!(t.response_instructions.is_some());
}

/// `integration()` renamed to `name`.
fn named_integration(name: &str) -> String {
    integration("https://api.shipstation.com").replace("name = \"shop\"", &format!("name = {name:?}"))
}

/// Two integrations offering the same default get it under prefixed names;
/// two whose prefixed names would be one tool are refused at load, so no
/// integration's default can answer to another's tool name.
#[tokio::test(flavor = "multi_thread")]
async fn a_default_offered_twice_is_prefixed_and_a_clash_is_refused() {
    let path = write(
        "defaults-two",
        &(named_integration("us") + "\n" + &named_integration("eu-west")),
    );
    let catalog = ActionCatalog::load(&path).await.expect("loads");
    let mut names: Vec<String> = catalog.tools(None, None).into_iter().map(|t| t.name).collect();
    names.sort();
    assert_eq!(names, ["eu-west_trackOrder", "us_trackOrder"]);

    let path = write(
        "defaults-clash",
        &(named_integration("us store") + "\n" + &named_integration("us_store")),
    );
    let error = match ActionCatalog::load(&path).await {
        Ok(_) => panic!("two defaults named us_store_trackOrder loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains(
            "default action `us_store_trackOrder` has the same tool name as a default action of integration `us store`"
        ),
        "{error}"
    );
    // The operator's own action of that name settles it.
    let custom = "\n[[action]]\nname = \"us_store_trackOrder\"\nintegration = \"us_store\"\nmethod = \"trackOrder\"\n";
    let path = write(
        "defaults-clash-custom",
        &(named_integration("us store") + "\n" + &named_integration("us_store") + custom),
    );
    let catalog = ActionCatalog::load(&path).await.expect("a custom action replaces both");
    let tools = catalog.tools(None, None);
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].integration, "us_store");
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_filtered_by_phase_and_direction_for_every_combination() {
    let executions = [
        ("session-start", Execution::SessionStart),
        ("during-interaction", Execution::DuringInteraction),
        ("both", Execution::Both),
    ];
    let triggers = [
        ("inbound", Trigger::Inbound),
        ("outbound", Trigger::Outbound),
        ("both", Trigger::Both),
    ];
    let mut text = integration("https://api.shipstation.com").replace("base_url", "default_actions = false\nbase_url");
    for (e, _) in &executions {
        for (t, _) in &triggers {
            text.push_str(&format!(
                "\n[[action]]\nname = \"{e}__{t}\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nexecution = \"{e}\"\ntrigger = \"{t}\"\n"
            ));
        }
    }
    let catalog = ActionCatalog::load(&write("filters", &text)).await.expect("loads");
    assert_eq!(catalog.tools(None, None).len(), 9);
    for phase in [Phase::SessionStart, Phase::Interaction] {
        for direction in [Direction::Inbound, Direction::Outbound] {
            let mut got: Vec<String> = catalog
                .tools(Some(phase), Some(direction))
                .into_iter()
                .map(|t| t.name)
                .collect();
            got.sort();
            let mut expected = Vec::new();
            for (e, exec) in &executions {
                for (t, trig) in &triggers {
                    let phase_ok = match phase {
                        Phase::SessionStart => matches!(exec, Execution::SessionStart | Execution::Both),
                        Phase::Interaction => matches!(exec, Execution::DuringInteraction | Execution::Both),
                    };
                    let direction_ok = match direction {
                        Direction::Inbound => matches!(trig, Trigger::Inbound | Trigger::Both),
                        Direction::Outbound => matches!(trig, Trigger::Outbound | Trigger::Both),
                    };
                    if phase_ok && direction_ok {
                        expected.push(format!("{e}__{t}"));
                    }
                }
            }
            expected.sort();
            assert_eq!(got, expected, "{phase:?} {direction:?}");
            assert_eq!(got.len(), 4, "2 executions x 2 triggers match each combination");
        }
    }
    // One filter alone.
    assert_eq!(catalog.tools(Some(Phase::SessionStart), None).len(), 6);
    assert_eq!(catalog.tools(None, Some(Direction::Outbound)).len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_descriptions_land_in_both_schema_formats() {
    let text = format!(
        "{}\n[[action]]\nname = \"track_shopify_order\"\ndescription = \"Track a Shopify order\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nresponse_instructions = \"Always give the tracking link.\"\n[action.parameters.order_id]\ndescription = 'Track order by Shopify order id, format: \"SHOPIFY-123456789\"'\n",
        integration("https://api.shipstation.com")
    );
    let catalog = ActionCatalog::load(&write("descriptions", &text)).await.expect("loads");
    let tool = catalog
        .tools(None, None)
        .into_iter()
        .find(|t| t.name == "track_shopify_order")
        .expect("tool");
    let wanted = "Track order by Shopify order id, format: \"SHOPIFY-123456789\"";
    let openai = tool.openai();
    assert_eq!(openai["function"]["name"], "track_shopify_order");
    assert_eq!(
        openai["function"]["parameters"]["properties"]["order_id"]["description"],
        wanted
    );
    let description = openai["function"]["description"].as_str().expect("description");
    assert!(description.starts_with("Track a Shopify order") && description.contains("Always give the tracking link."));
    let mcp = tool.mcp();
    assert_eq!(mcp["name"], "track_shopify_order");
    assert_eq!(mcp["inputSchema"]["properties"]["order_id"]["description"], wanted);
    assert_eq!(mcp["inputSchema"]["additionalProperties"], false);
    assert!(mcp["description"]
        .as_str()
        .expect("d")
        .contains("Always give the tracking link."));
    // The default action keeps its default description.
    let default = catalog
        .tools(None, None)
        .into_iter()
        .find(|t| t.name == "trackOrder")
        .expect("default");
    assert_ne!(default.parameters["properties"]["order_id"]["description"], wanted);
}

fn three_actions(sim: &Simulator) -> String {
    let mut text = integration(&sim.base_url()).replace("base_url", "default_actions = false\nbase_url");
    for (name, exec) in [
        ("at_start", "session-start"),
        ("during", "during-interaction"),
        ("always", "both"),
    ] {
        text.push_str(&format!(
            "\n[[action]]\nname = \"{name}\"\nintegration = \"shop\"\nmethod = \"trackOrder\"\nexecution = \"{exec}\"\nresponse_instructions = \"say {name}\"\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn session_start_runs_only_session_start_actions() {
    let sim = Simulator::start().await.expect("simulator");
    let path = write("session", &three_actions(&sim));
    let key = sim.api_key().to_string();
    let p = path.display().to_string();
    let out = run_actionbox(
        &[
            "session-start",
            "--config",
            &p,
            "--context",
            r#"{"order_id":"1001","locale":"en"}"#,
        ],
        Some(&key),
    )
    .await;
    let (code, stdout, stderr) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    let mut ran: Vec<&str> = v["results"]
        .as_object()
        .expect("results")
        .keys()
        .map(String::as_str)
        .collect();
    ran.sort();
    assert_eq!(ran, ["always", "at_start"]);
    assert_eq!(v["results"]["at_start"]["result"]["shipstation"]["order_id"], "1001");
    assert_eq!(v["results"]["at_start"]["response_instructions"], "say at_start");
    // Two actions, three requests each.
    assert_eq!(sim.requests().len(), 6);

    let catalog = ActionCatalog::load(&path).await.expect("loads");
    std::env::set_var("SHIPSTATION_API_KEY", sim.api_key());
    let report = catalog.session_start(&json!({"locale": "en"})).await.expect("runs");
    assert!(report.results.is_empty());
    assert_eq!(report.skipped.len(), 2);
    assert!(report.skipped["at_start"].contains("order_id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_returns_result_and_response_instructions() {
    let sim = Simulator::start().await.expect("simulator");
    let path = write("invoke", &three_actions(&sim)).display().to_string();
    let key = sim.api_key().to_string();
    let out = run_actionbox(
        &[
            "invoke",
            "--config",
            &path,
            "during",
            "--params",
            r#"{"order_id":"1002"}"#,
        ],
        Some(&key),
    )
    .await;
    let (code, stdout, stderr) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["result"]["shipstation"]["tracking"]["status_code"], "IT");
    assert_eq!(v["response_instructions"], "say during");

    let out = run_actionbox(
        &[
            "invoke",
            "--config",
            &path,
            "during",
            "--params",
            r#"{"order_id":"nope"}"#,
        ],
        Some(&key),
    )
    .await;
    let (code, stdout, _) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 12);
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["error"]["kind"], "not-found");
    assert_eq!(v["response_instructions"], "say during");
}

#[tokio::test(flavor = "multi_thread")]
async fn debugger_trace_lists_the_real_outbound_calls_and_never_the_key() {
    let sim = Simulator::start().await.expect("simulator");
    let path = write("debug", &three_actions(&sim)).display().to_string();
    let key = sim.api_key().to_string();
    let out = run_actionbox(
        &[
            "debug",
            "--config",
            &path,
            "during",
            "--params",
            r#"{"order_id":"1001"}"#,
            "--json",
        ],
        Some(&key),
    )
    .await;
    let (code, stdout, stderr) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(&key) && !stderr.contains(&key), "key leaked");
    let trace: Value = serde_json::from_str(&stdout).expect("json trace");
    let urls: Vec<String> = trace["outbound"]
        .as_array()
        .expect("outbound")
        .iter()
        .map(|r| r["url"].as_str().expect("url").to_string())
        .collect();
    let seen: Vec<String> = sim
        .requests()
        .iter()
        .map(|r| {
            let q = if r.raw_query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.raw_query)
            };
            format!("{}{}{q}", sim.base_url(), r.raw_path)
        })
        .collect();
    assert_eq!(urls, seen, "the trace lists exactly the requests the server received");
    for r in trace["outbound"].as_array().expect("outbound") {
        assert_eq!(r["status"], 200);
        let headers = r["request_headers"].as_array().expect("headers");
        assert!(
            headers.iter().any(|h| h[0] == "api-key" && h[1] == "[redacted]"),
            "{headers:?}"
        );
    }
    assert_eq!(trace["assistant_payload"]["response_instructions"], "say during");
    assert_eq!(trace["outcome"]["ok"]["shipstation"]["order_id"], "1001");

    // Text mode, failing run: says where it failed.
    let out = run_actionbox(
        &[
            "debug",
            "--config",
            &path,
            "during",
            "--params",
            r#"{"order_id":"nope"}"#,
        ],
        Some(&key),
    )
    .await;
    let (code, stdout, _) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 12);
    assert!(stdout.contains("outcome      error: not-found"), "{stdout}");
    assert!(
        stdout.contains("failed       after outbound request 2 of 2"),
        "{stdout}"
    );
    assert!(stdout.contains("api-key: [redacted]"), "{stdout}");
    assert!(stdout.contains("What the assistant receives"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_command_is_the_integrations_test_button() {
    let sim = Simulator::start().await.expect("simulator");
    let path = write("testbutton", &three_actions(&sim)).display().to_string();
    let key = sim.api_key().to_string();
    let out = run_actionbox(&["test", "--config", &path, "shop"], Some(&key)).await;
    let (code, stdout, _) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("OK:"), "{stdout}");
    let out = run_actionbox(&["test", "--config", &path, "shop"], Some("TEST_wrong")).await;
    let (code, stdout, _) = (out.code, out.stdout, out.stderr);
    assert_eq!(code, 11);
    assert!(stdout.starts_with("FAILED: unauthorized"), "{stdout}");
}
