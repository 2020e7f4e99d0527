//! A workspace as an `actionbox.toml`: the store keeps each integration's and
//! action's fields as JSON objects named as in the file, and every read of a
//! workspace — serving it, checking an admin change, exporting it — goes
//! through [`document`] and [`Config::parse_workspace`], the config file's
//! own validation. There is one set of rules for both, and an error names the
//! field whichever way the value came in.

use crate::config::{Config, WorkspaceRules};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

/// Fields of a stored integration spec (`name` is the key, and the API key
/// is never part of a spec).
pub const INTEGRATION_FIELDS: &[&str] = &[
    "kind",
    "component",
    "timeout",
    "base_url",
    "limits",
    "default_actions",
    "propagate_trace",
];

/// Fields of a stored action spec.
pub const ACTION_FIELDS: &[&str] = &[
    "integration",
    "method",
    "description",
    "execution",
    "trigger",
    "parameters",
    "response_instructions",
];

/// One table of the document: its name and its fields.
pub struct Entry<'a> {
    /// The integration's or action's name.
    pub name: &'a str,
    /// Its other fields, as stored.
    pub spec: &'a Value,
}

/// The `actionbox.toml` text of a workspace with these integrations and
/// actions, in this order.
pub fn document(integrations: &[Entry<'_>], actions: &[Entry<'_>]) -> Result<String> {
    let mut doc = toml::Table::new();
    for (key, entries) in [("integration", integrations), ("action", actions)] {
        let tables = entries
            .iter()
            .map(|e| table(e).with_context(|| format!("{key} `{}`", e.name)))
            .collect::<Result<Vec<_>>>()?;
        if !tables.is_empty() {
            doc.insert(key.to_string(), toml::Value::Array(tables));
        }
    }
    toml::to_string(&doc).context("cannot write the workspace as TOML")
}

/// Parse and check a workspace's document.
pub fn config(text: &str, workspace: &str, rules: &WorkspaceRules) -> Result<Config> {
    Config::parse_workspace(text, workspace, rules)
}

/// `entry` as a TOML table: `name` first, then the spec's fields.
fn table(entry: &Entry<'_>) -> Result<toml::Value> {
    let Value::Object(fields) = entry.spec else {
        bail!("its fields must be a JSON object");
    };
    let mut t = toml::Table::new();
    t.insert("name".into(), toml::Value::String(entry.name.to_string()));
    for (k, v) in fields {
        if k == "name" {
            continue;
        }
        if let Some(v) = to_toml(v) {
            t.insert(k.clone(), v);
        }
    }
    Ok(toml::Value::Table(t))
}

/// A JSON value as TOML; `null` (absent in TOML) is dropped.
fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(o.iter().filter_map(|(k, v)| Some((k.clone(), to_toml(v)?))).collect()),
    })
}

/// A TOML value as JSON (for `workspace import`).
pub fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<Map<_, _>>()),
    }
}

/// A spec from a request body: a JSON object with only `allowed` fields
/// (anything else is refused by name, as the file refuses an unknown key).
pub fn spec(body: Map<String, Value>, what: &str, name: &str, allowed: &[&str]) -> Result<Value> {
    if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        bail!(
            "{what} `{name}`: unknown field `{}`, expected one of: {}",
            actionbox_runtime::error::guest_text(unknown, 64),
            allowed.join(", ")
        );
    }
    Ok(Value::Object(body.into_iter().filter(|(_, v)| !v.is_null()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_round_trips_through_the_config_rules() {
        let integration =
            json!({"kind": "shipstation", "component": format!("sha256:{}", "a".repeat(64)), "timeout": 30});
        let action = json!({"integration": "main", "method": "trackOrder",
            "parameters": {"order_id": {"description": "Track order by Shopify order id, format: SHOPIFY-123456789"}}});
        let text = document(
            &[Entry {
                name: "main",
                spec: &integration,
            }],
            &[Entry {
                name: "track",
                spec: &action,
            }],
        )
        .expect("writes");
        let rules = WorkspaceRules {
            kinds: actionbox_runtime::kinds::KindRegistry::builtin(),
            allow_private_base_urls: false,
            max_memory_bytes: 64 << 20,
        };
        let config = config(&text, "acme", &rules).expect("valid");
        assert_eq!(config.integrations[0].timeout.duration().as_secs(), 30);
        assert_eq!(
            config.actions[0].parameter_descriptions["order_id"],
            "Track order by Shopify order id, format: SHOPIFY-123456789"
        );
    }

    #[test]
    fn workspace_documents_cannot_name_server_files_or_private_hosts() {
        let rules = WorkspaceRules {
            kinds: actionbox_runtime::kinds::KindRegistry::builtin(),
            allow_private_base_urls: false,
            max_memory_bytes: 64 << 20,
        };
        let component = format!("sha256:{}", "b".repeat(64));
        for (spec, expected) in [
            (
                json!({"kind": "shipstation", "component": component, "api_key_file": "/etc/shadow"}),
                "api_key_file",
            ),
            (
                json!({"kind": "shipstation", "component": component, "api_key_env": "HOME"}),
                "api_key_env",
            ),
            (
                json!({"kind": "shipstation", "component": component, "base_url": "http://127.0.0.1:9"}),
                "non-public",
            ),
            (
                json!({"kind": "shipstation", "component": component, "base_url": "https://10.0.0.8"}),
                "non-public",
            ),
            (
                json!({"kind": "shipstation", "component": "/tmp/evil.wasm"}),
                "registered component",
            ),
            (
                json!({"kind": "shipstation", "component": component, "timeout": 5}),
                "timeout",
            ),
            (
                json!({"kind": "shipstation", "component": component, "limits": {"memory_mib": 512}}),
                "memory_mib",
            ),
        ] {
            let text = document(
                &[Entry {
                    name: "main",
                    spec: &spec,
                }],
                &[],
            )
            .expect("writes");
            let e = format!("{:#}", config(&text, "acme", &rules).expect_err(expected));
            assert!(e.contains(expected), "{spec}: {e}");
        }
        let kinds = "[[kind]]\nname = \"evil\"\nbase_url = \"https://evil.example\"\n";
        let e = format!("{:#}", config(kinds, "acme", &rules).expect_err("no kinds"));
        assert!(e.contains("cannot declare kinds"), "{e}");
    }
}
