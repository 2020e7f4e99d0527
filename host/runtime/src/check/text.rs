//! The check report as people read it (`actionbox check` without `--json`).

use super::{Asks, CheckReport, Level};
use std::fmt;

/// The report for people: the component, what it asks for, the findings and
/// the verdict. Everything in it the component chose is defused already.
impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.component;
        let sha = c
            .sha256
            .as_deref()
            .map_or("not read".to_string(), |s| format!("sha256:{s}"));
        let contract = c
            .contract
            .as_deref()
            .map_or("no actionbox:action contract".to_string(), |v| {
                format!("contract actionbox:action@{v}")
            });
        writeln!(f, "component  {sha}, {} bytes, {contract}", c.bytes)?;
        if !c.imports.is_empty() {
            write_list(f, "imports    ", &c.imports)?;
        }
        if let Some(ms) = c.describe_ms {
            let took = if ms == 0 {
                "under 1 ms".to_string()
            } else {
                format!("{ms} ms")
            };
            let manifest = c
                .manifest_bytes
                .map(|b| format!(", manifest {b} bytes of JSON"))
                .unwrap_or_default();
            writeln!(f, "describe   {took}{manifest}")?;
        }
        if let Some(asks) = &self.asks {
            write!(f, "{asks}")?;
        }
        for finding in &self.findings {
            let level = match finding.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            writeln!(f, "{level} [{}]: {}", finding.check.as_str(), finding.message)?;
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        if self.ok {
            writeln!(
                f,
                "OK: the component passes the check ({})",
                plural(warnings, "warning")
            )
        } else {
            writeln!(
                f,
                "FAILED: the component would be refused ({}, {})",
                plural(errors, "error"),
                plural(warnings, "warning")
            )
        }
    }
}

impl fmt::Display for Asks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "asks       kind {}, version {}", self.kind, self.version)?;
        write_list(f, "           outbound hosts: ", &self.outbound_hosts)?;
        match &self.credential {
            Some(c) => writeln!(f, "           key: {}, in header {}", c.name, c.header)?,
            None => writeln!(f, "           key: none")?,
        }
        if let Some(url) = &self.default_base_url {
            writeln!(f, "           default base URL: {url}")?;
        }
        let methods: Vec<String> = self
            .methods
            .iter()
            .map(|m| {
                let call = format!("{}({})", m.display_name, m.params.join(", "));
                if m.name == m.display_name {
                    call
                } else {
                    format!("{call} [{}]", m.name)
                }
            })
            .collect();
        write_list(f, "           methods: ", &methods)?;
        if !self.default_actions.is_empty() {
            let actions: Vec<String> = self
                .default_actions
                .iter()
                .map(|a| format!("{} -> {}", a.name, a.method))
                .collect();
            write_list(f, "           default actions: ", &actions)?;
        }
        Ok(())
    }
}

/// Write `items` after `label`, comma-separated, wrapped near 100 columns
/// with continuation lines indented like the first.
fn write_list(f: &mut fmt::Formatter<'_>, label: &str, items: &[String]) -> fmt::Result {
    const WIDTH: usize = 100;
    let indent = " ".repeat(label.chars().count());
    let mut line = label.to_string();
    let mut fresh = true;
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        if !fresh && line.len() + 1 + piece.len() > WIDTH {
            writeln!(f, "{line}")?;
            line = indent.clone();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(&piece);
        fresh = false;
    }
    writeln!(f, "{line}")
}

#[cfg(test)]
mod tests {
    use super::super::{CheckName, ComponentFacts, CredentialAsk, Finding, MethodAsk};
    use super::*;

    fn report(ok: bool) -> CheckReport {
        CheckReport {
            ok,
            component: ComponentFacts {
                sha256: Some("ab".repeat(32)),
                bytes: 1234,
                contract: Some("0.2.0".into()),
                imports: (0..40).map(|i| format!("wasi:io/poll-{i}@0.2.12")).collect(),
                describe_ms: Some(0),
                manifest_bytes: Some(900),
            },
            asks: Some(Asks {
                kind: "acme".into(),
                version: "1.0.0".into(),
                outbound_hosts: vec!["{base-url}".into()],
                default_base_url: None,
                credential: Some(CredentialAsk {
                    name: "Acme key".into(),
                    header: "X-Api-Key".into(),
                }),
                methods: vec![
                    MethodAsk {
                        name: "get-item".into(),
                        display_name: "getItem".into(),
                        params: vec!["id".into()],
                    },
                    MethodAsk {
                        name: "ping".into(),
                        display_name: "ping".into(),
                        params: vec![],
                    },
                ],
                default_actions: vec![],
            }),
            findings: vec![Finding {
                check: CheckName::Kind,
                level: if ok { Level::Warning } else { Level::Error },
                message: "kind `acme` is not one this host knows".into(),
            }],
        }
    }

    #[test]
    fn the_text_report_shows_the_asks_the_findings_and_the_verdict() {
        let text = report(false).to_string();
        assert!(text.contains("contract actionbox:action@0.2.0"), "{text}");
        assert!(
            text.contains("describe   under 1 ms, manifest 900 bytes of JSON"),
            "{text}"
        );
        assert!(text.contains("key: Acme key, in header X-Api-Key"), "{text}");
        assert!(text.contains("methods: getItem(id) [get-item], ping()"), "{text}");
        assert!(text.contains("error [kind]: kind `acme`"), "{text}");
        assert_eq!(
            text.lines().last(),
            Some("FAILED: the component would be refused (1 error, 0 warnings)")
        );
        // Long lists wrap, continuation lines indented under the first item.
        let import_lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("imports"))
            .take_while(|l| l.starts_with("imports") || l.starts_with("           wasi:"))
            .collect();
        assert!(import_lines.len() > 1, "{text}");
        assert!(import_lines.iter().all(|l| l.len() <= 100), "{text}");

        let passed = report(true).to_string();
        assert_eq!(
            passed.lines().last(),
            Some("OK: the component passes the check (1 warning)")
        );
    }
}
