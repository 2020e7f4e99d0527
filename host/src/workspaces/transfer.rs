//! `actionbox workspace export` / `import`: a workspace to and from an
//! `actionbox.toml`, keys by reference only. Export writes every integration
//! with `api_key_env` naming a variable to set on import (the stored key is
//! never read); import reads each key from the variable or file the file
//! names, registers component files it names, and writes everything through
//! the admin API's own path — the same checks, the same audit entries.

use super::doc::{self, Entry};
use super::{WorkspaceError, Workspaces};
use actionbox_runtime::secret::ApiKey;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// The `actionbox.toml` of workspace `ws`, without keys.
pub async fn export(workspaces: &Workspaces, ws: &str) -> Result<String> {
    let snapshot = workspaces
        .store()
        .snapshot(ws)
        .await?
        .ok_or_else(|| anyhow!("no workspace is named `{ws}`; list them with GET /v1/admin/workspaces"))?;
    let mut integrations = Vec::new();
    for (record, sealed) in &snapshot.integrations {
        let mut spec = record.spec.clone();
        if sealed.is_some() {
            spec["api_key_env"] = Value::String(key_variable(&record.name));
        }
        integrations.push((record.name.clone(), spec));
    }
    let entries: Vec<Entry<'_>> = integrations.iter().map(|(name, spec)| Entry { name, spec }).collect();
    let actions: Vec<Entry<'_>> = snapshot
        .actions
        .iter()
        .map(|a| Entry {
            name: &a.name,
            spec: &a.spec,
        })
        .collect();
    let body = doc::document(&entries, &actions)?;
    Ok(format!(
        "# Workspace `{ws}` exported by actionbox {}.\n\
         # API keys are sealed in the store and never exported: before `actionbox workspace import`, set each\n\
         # api_key_env variable below to the integration's key (or replace it with api_key_file = \"PATH\").\n\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// The variable export names for integration `name`'s key:
/// `ACTIONBOX_KEY_<NAME>` with every other character `_`.
fn key_variable(name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ACTIONBOX_KEY_{tail}")
}

/// What import did.
#[derive(Debug, Default)]
pub struct Imported {
    /// Integrations created or replaced.
    pub integrations: usize,
    /// Custom actions created or replaced.
    pub actions: usize,
    /// Components registered anew.
    pub components: usize,
}

/// Import `path` (an `actionbox.toml`) into workspace `ws`, creating the
/// workspace when it does not exist. Integrations and actions of the file are
/// created or replaced; others the workspace has are kept.
pub async fn import(workspaces: &Workspaces, ws: &str, path: &Path, actor: &str) -> Result<Imported> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    if let Some(unknown) = doc.keys().find(|k| !["integration", "action"].contains(&k.as_str())) {
        bail!(
            "{}: `{unknown}` cannot be imported into a workspace; a workspace holds [[integration]] and [[action]] \
             tables (kinds are the operator's)",
            path.display()
        );
    }
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if workspaces.store().workspace(ws).await?.is_none() {
        workspaces.store().create_workspace(ws, ws, actor).await?;
    }
    let mut imported = Imported::default();
    for table in tables(&doc, "integration")? {
        let name = name_of(table, "integration")?;
        let mut body = doc::to_json(&toml::Value::Table(table.clone()));
        let fields = body
            .as_object_mut()
            .ok_or_else(|| anyhow!("integration `{name}` is not a table"))?;
        fields.remove("name");
        if let Some(key) = key_from(fields, &name, &base_dir)? {
            fields.insert("api_key".into(), Value::String(key));
        }
        if let Some(Value::String(component)) = fields.get("component").cloned() {
            if !component.starts_with("sha256:") {
                let file = base_dir.join(&component);
                let bytes = std::fs::read(&file).with_context(|| {
                    format!("integration `{name}` field `component`: cannot read {}", file.display())
                })?;
                let (info, created) = workspaces
                    .registry()
                    .register(&bytes, actor)
                    .await
                    .with_context(|| format!("integration `{name}` field `component` ({})", file.display()))?;
                imported.components += usize::from(created);
                fields.insert("component".into(), Value::String(format!("sha256:{}", info.sha256)));
            }
        }
        workspaces
            .put_integration(ws, &name, body, actor)
            .await
            .map_err(|e| located(e, path))?;
        imported.integrations += 1;
    }
    for table in tables(&doc, "action")? {
        let name = name_of(table, "action")?;
        let mut body = doc::to_json(&toml::Value::Table(table.clone()));
        if let Some(fields) = body.as_object_mut() {
            fields.remove("name");
        }
        workspaces
            .put_action(ws, &name, body, actor)
            .await
            .map_err(|e| located(e, path))?;
        imported.actions += 1;
    }
    Ok(imported)
}

fn located(e: WorkspaceError, path: &Path) -> anyhow::Error {
    anyhow!("{}: {e}", path.display())
}

/// The `[[key]]` tables of `doc`.
fn tables<'a>(doc: &'a toml::Table, key: &str) -> Result<Vec<&'a toml::Table>> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_table().ok_or_else(|| anyhow!("every [[{key}]] must be a table")))
            .collect(),
        Some(_) => bail!("`{key}` must be written as [[{key}]] tables"),
    }
}

fn name_of(table: &toml::Table, what: &str) -> Result<String> {
    table
        .get("name")
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("an [[{what}]] has no `name`"))
}

/// The key an imported integration names (`api_key_env` or `api_key_file`),
/// read now; both fields are removed from `fields`. `None`: the file names
/// no key (a replaced integration keeps its stored one).
fn key_from(fields: &mut serde_json::Map<String, Value>, name: &str, base_dir: &Path) -> Result<Option<String>> {
    if fields.contains_key("api_key") {
        bail!(
            "integration `{name}` field `api_key`: keys are never written in the file; use api_key_env or api_key_file"
        );
    }
    let env = fields.remove("api_key_env");
    let file = fields.remove("api_key_file");
    let key = match (env, file) {
        (Some(_), Some(_)) => bail!("integration `{name}`: give api_key_env or api_key_file, not both"),
        (Some(Value::String(var)), None) => ApiKey::from_env(&var)?.ok_or_else(|| {
            anyhow!("integration `{name}`: environment variable {var} (api_key_env) is not set; export the key in it")
        })?,
        (None, Some(Value::String(f))) => {
            ApiKey::from_file(&base_dir.join(f)).with_context(|| format!("integration `{name}` (api_key_file)"))?
        }
        (None, None) => return Ok(None),
        _ => bail!("integration `{name}`: api_key_env and api_key_file are strings"),
    };
    Ok(Some(key.reveal_for_sealing().to_string()))
}
