//! What an action may import: the interfaces the host's linker provides
//! (`link` in `engine.rs`), and which of them grant nothing.

use crate::bindings::CONTRACT_VERSION;

/// What the host's linker provides an action (`link` in `engine.rs`), by
/// package and interface: `(package, interfaces, grants something)`. The
/// loader has the last word: an import this table admits that the linker
/// does not have fails the load, and is reported under `imports` with the
/// linker's message.
pub const LINKED_INTERFACES: &[(&str, &[&str], bool)] = &[
    ("wasi:io", &["error", "poll", "streams"], true),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"], true),
    ("wasi:random", &["random", "insecure", "insecure-seed"], true),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
        true,
    ),
    ("wasi:http", &["types", "outgoing-handler"], true),
    ("wasi:config", &["store"], true),
    ("actionbox:action", &["log"], true),
    // Linked because toolchain runtimes import them (Rust's std, CPython),
    // but the store's WASI context grants no preopened directory, socket or
    // name lookup (`state.rs`): every call through them fails.
    ("wasi:filesystem", &["types", "preopens"], false),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "udp",
            "udp-create-socket",
            "tcp",
            "tcp-create-socket",
            "ip-name-lookup",
        ],
        false,
    ),
];

/// How the host treats one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImportClass {
    /// Linked, and usable by an action.
    Provided,
    /// Linked so the component loads; every call through it fails.
    GrantsNothing,
    /// Another version of the contract: the `contract` finding reports it.
    OtherContract,
    /// Not linked: the component cannot load.
    NotProvided,
}

/// How the host treats the import `name` (`package/interface@version`).
pub(super) fn classify_import(name: &str) -> ImportClass {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let Some((package, interface)) = path.split_once('/') else {
        return ImportClass::NotProvided;
    };
    let version_fits = match package {
        "actionbox:action" => version == CONTRACT_VERSION,
        // wasi:config/store is still a 0.2.0 release candidate.
        "wasi:config" => version.starts_with("0.2.0"),
        _ => version.starts_with("0.2.") && !version.contains('-'),
    };
    if package == "actionbox:action" && version != CONTRACT_VERSION {
        return ImportClass::OtherContract;
    }
    let linked = LINKED_INTERFACES
        .iter()
        .find(|(p, interfaces, _)| *p == package && interfaces.contains(&interface));
    match linked {
        Some((_, _, true)) if version_fits => ImportClass::Provided,
        Some((_, _, false)) if version_fits => ImportClass::GrantsNothing,
        _ => ImportClass::NotProvided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_real_toolchains_import_is_provided_or_linked_without_grants() {
        // A Rust action (the ShipStation component) and a componentize-py one
        // (tests/python-action), as `jco wit` lists their imports.
        let rust = [
            "wasi:io/poll@0.2.12",
            "wasi:clocks/monotonic-clock@0.2.12",
            "wasi:io/error@0.2.12",
            "wasi:io/streams@0.2.12",
            "wasi:http/types@0.2.12",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:config/store@0.2.0-rc.1",
            "actionbox:action/log@0.2.0",
            "wasi:cli/environment@0.2.6",
            "wasi:cli/exit@0.2.6",
            "wasi:cli/stdin@0.2.6",
            "wasi:cli/terminal-stderr@0.2.6",
        ];
        for name in rust {
            assert_eq!(classify_import(name), ImportClass::Provided, "{name}");
        }
        let granted_nothing = [
            "wasi:filesystem/types@0.2.9",
            "wasi:filesystem/preopens@0.2.9",
            "wasi:sockets/tcp@0.2.9",
            "wasi:sockets/ip-name-lookup@0.2.9",
            "wasi:sockets/udp-create-socket@0.2.9",
        ];
        for name in granted_nothing {
            assert_eq!(classify_import(name), ImportClass::GrantsNothing, "{name}");
        }
    }

    #[test]
    fn what_the_host_does_not_link_is_not_provided() {
        for name in [
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:http/incoming-handler@0.2.0",
            "wasi:http/types@0.3.0",
            "wasi:io/poll@0.2.0-rc-2023-11-10",
            "wasi:cli/run@0.2.0",
            "acme:extra/thing@1.0.0",
            "wasi:io/poll",
            "describe",
        ] {
            assert_eq!(classify_import(name), ImportClass::NotProvided, "{name}");
        }
        assert_eq!(
            classify_import("actionbox:action/settings@0.1.0"),
            ImportClass::OtherContract
        );
        assert_eq!(
            classify_import("actionbox:action/store@0.2.0"),
            ImportClass::NotProvided
        );
    }
}
