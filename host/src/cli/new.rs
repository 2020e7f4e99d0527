//! `actionbox new NAME --lang rust|python|javascript [--dir DIR]`: a new
//! action project that builds with `make` and passes its own `make test`
//! out of the box.
//!
//! Each project is a small real action (`getItem`: a GET to the operator's
//! base URL with the injected key, typed errors, the call's budget
//! respected) plus an offline test: `actionbox check` on the built component,
//! then `actionbox run --replay` of a recording it ships, compared with an
//! expected result.
//!
//! The templates (`host/templates/`) and the contract's WIT (`wit/`) are
//! compiled into the binary, so a generated project holds everything it
//! needs and never points back at this repository, and its WIT is always the
//! contract this host speaks.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The languages a project can be generated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Language {
    /// Rust on the actionbox-guest SDK (vendored into the project), built for `wasm32-wasip2` with cargo.
    Rust,
    /// Python, built with componentize-py (pinned in the project's Makefile).
    Python,
    /// JavaScript, built with componentize-js (pinned in the project's package-lock.json).
    Javascript,
}

/// One file of a project: its path in the project and its text.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
    /// Whether the text is a template whose `{{placeholder}}`s are filled in;
    /// the contract's WIT and the SDK's sources are copied as they are.
    is_template: bool,
}

/// A file of `host/templates/<dir>`, written at `path` in the project.
macro_rules! template {
    ($path:literal, $source:literal) => {
        TemplateFile {
            path: $path,
            text: include_str!(concat!("../../templates/", $source)),
            is_template: true,
        }
    };
}

/// A file of the repository's `wit/` (the contract itself), by its path under `wit/`.
macro_rules! wit {
    ($path:literal) => {
        TemplateFile {
            path: $path,
            text: include_str!(concat!("../../../wit/", $path)),
            is_template: false,
        }
    };
}

/// A file of the Rust SDK (`guest/sdk`, crate `actionbox-guest`), vendored
/// into Rust projects at `sdk/<path>`.
macro_rules! sdk {
    ($path:literal) => {
        TemplateFile {
            path: concat!("sdk/", $path),
            text: include_str!(concat!("../../../guest/sdk/", $path)),
            is_template: false,
        }
    };
}

/// The contract's WIT, by path under the project's WIT directory: every
/// project builds against exactly these files.
const WIT: &[TemplateFile] = &[
    wit!("world.wit"),
    wit!("deps/cli.wit"),
    wit!("deps/clocks.wit"),
    wit!("deps/config.wit"),
    wit!("deps/filesystem.wit"),
    wit!("deps/http.wit"),
    wit!("deps/io.wit"),
    wit!("deps/random.wit"),
    wit!("deps/sockets.wit"),
];

/// What every language shares: the configuration, the offline test's
/// recording and expected result, the README.
const COMMON: &[TemplateFile] = &[
    template!("README.md", "common/README.md"),
    template!("actionbox.toml", "common/actionbox.toml"),
    template!("fixtures/recording.json", "common/fixtures/recording.json"),
    template!("fixtures/expected.json", "common/fixtures/expected.json"),
    template!("fixtures/not-found.json", "common/fixtures/not-found.json"),
];

/// The check and test targets every project's Makefile ends with.
const MAKEFILE_TEST: &str = include_str!("../../templates/common/Makefile.test");

/// Rust: the action on the SDK, which is vendored (its sources as they are
/// in this repository, its WIT in `sdk/wit/`) so the project builds anywhere.
const RUST: &[TemplateFile] = &[
    template!("Makefile", "rust/Makefile"),
    template!(".gitignore", "rust/gitignore"),
    template!("Cargo.toml", "rust/Cargo.toml"),
    template!("Cargo.lock", "rust/Cargo.lock"),
    template!("rustfmt.toml", "rust/rustfmt.toml"),
    template!("src/lib.rs", "rust/src/lib.rs"),
    sdk!("Cargo.toml"),
    sdk!("README.md"),
    sdk!("src/error.rs"),
    sdk!("src/http.rs"),
    sdk!("src/json.rs"),
    sdk!("src/lib.rs"),
    sdk!("src/log.rs"),
    sdk!("src/manifest.rs"),
    sdk!("src/settings.rs"),
];

const PYTHON: &[TemplateFile] = &[
    template!("Makefile", "python/Makefile"),
    template!(".gitignore", "python/gitignore"),
    template!("src/app.py", "python/src/app.py"),
    template!("src/http_client.py", "python/src/http_client.py"),
];

const JAVASCRIPT: &[TemplateFile] = &[
    template!("Makefile", "javascript/Makefile"),
    template!(".gitignore", "javascript/gitignore"),
    template!("package.json", "javascript/package.json"),
    template!("package-lock.json", "javascript/package-lock.json"),
    template!("src/action.js", "javascript/src/action.js"),
];

impl Language {
    /// The option value (`--lang rust`).
    fn id(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Javascript => "javascript",
        }
    }

    /// Where the project keeps the contract's WIT: the SDK's bindings are
    /// generated from `sdk/wit`, the other builds read `wit/`.
    fn wit_dir(self) -> &'static str {
        match self {
            Self::Rust => "sdk/wit",
            Self::Python | Self::Javascript => "wit",
        }
    }

    /// The language's own files.
    fn files(self) -> &'static [TemplateFile] {
        match self {
            Self::Rust => RUST,
            Self::Python => PYTHON,
            Self::Javascript => JAVASCRIPT,
        }
    }

    /// The README's placeholders that differ by language: its name, what
    /// building needs, and the rows of its file table.
    fn readme_values(self) -> [(&'static str, &'static str); 3] {
        match self {
            Self::Rust => [
                ("language", "Rust (the actionbox-guest SDK)"),
                (
                    "toolchain",
                    "Rust with the `wasm32-wasip2` target (`make` adds it with rustup)",
                ),
                (
                    "files",
                    "| `src/lib.rs` | the action: manifest, `getItem`, the input check |\n\
                     | `sdk/` | the actionbox-guest SDK: the contract's types, a budget-bound HTTP client, the status \
                     → error mapping (`sdk/README.md`) |\n\
                     | `Cargo.toml`, `Cargo.lock` | its dependencies (the SDK, serde, serde_json), locked |\n\
                     | `Makefile` | `make`, `make check`, `make test` |\n",
                ),
            ],
            Self::Python => [
                ("language", "Python (componentize-py)"),
                (
                    "toolchain",
                    "python3 with venv (`make` installs componentize-py 0.25.1 into `.venv`)",
                ),
                (
                    "files",
                    "| `src/app.py` | the action: manifest, `getItem`, the status → error mapping |\n\
                     | `src/http_client.py` | one GET over `wasi:http`, every wait bounded by the call's budget |\n\
                     | `Makefile` | `make`, `make check`, `make test` |\n",
                ),
            ],
            Self::Javascript => [
                ("language", "JavaScript (componentize-js)"),
                ("toolchain", "Node.js 20 or later with npm (`make` runs `npm ci`)"),
                (
                    "files",
                    "| `src/action.js` | the action: manifest, `getItem` over `fetch`, the status → error mapping |\n\
                     | `package.json`, `package-lock.json` | componentize-js, pinned |\n\
                     | `Makefile` | `make`, `make check`, `make test` |\n",
                ),
            ],
        }
    }
}

/// Longest project name: it becomes the integration kind, a package name, a
/// file name and, upper-cased, the key's environment variable.
const MAX_NAME_CHARS: usize = 40;

/// Names that cannot be a Rust crate (keywords and the standard crates);
/// refused for every language so a name works in all three.
const RESERVED_NAMES: &str = "abstract alloc as async await become box break const continue core crate do dyn \
    else enum extern false final fn for gen if impl in let loop macro match mod move mut override priv proc-macro pub \
    ref return self static std struct super test trait true try type typeof unsafe unsized use virtual where while \
    yield";

/// Refuse a project name that would not work as an integration kind, a
/// Cargo or npm package name and an environment variable prefix all at once.
fn check_name(name: &str) -> Result<()> {
    let shape_ok = name.len() <= MAX_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !shape_ok {
        bail!(
            "the name `{}` must be 1-{MAX_NAME_CHARS} lower-case letters, digits and single hyphens, starting with a \
             letter (e.g. `acme-orders`): it becomes the integration kind, the package name and the key's variable",
            name.escape_debug()
        );
    }
    if RESERVED_NAMES.split_ascii_whitespace().any(|reserved| reserved == name) {
        bail!("`{name}` is reserved in Rust (a keyword or a standard crate); choose another name, e.g. `{name}-api`");
    }
    Ok(())
}

/// Write a `language` project named `name` into `dir` (which must not exist
/// or be empty), returning the paths written, relative to `dir`.
///
/// The project is assembled in a hidden sibling directory and renamed into
/// place, so a failure never leaves half a project behind.
pub(super) fn create(name: &str, language: Language, dir: &Path) -> Result<Vec<String>> {
    check_name(name)?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and is not a directory; choose another --dir", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; choose another --dir or remove it",
                dir.display()
            );
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".{name}.actionbox-new-{}", std::process::id()));
    let written = write_project(name, language, &staging).and_then(|written| {
        std::fs::rename(&staging, dir)
            .with_context(|| format!("cannot move the new project into {}", dir.display()))?;
        Ok(written)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

/// Render every file of the project into `root` (created here, refused if it exists).
fn write_project(name: &str, language: Language, root: &Path) -> Result<Vec<String>> {
    std::fs::create_dir(root).with_context(|| format!("cannot create {}", root.display()))?;
    let values = placeholder_values(name, language);
    let mut written = Vec::new();
    for (path, file) in project_files(language) {
        let mut text = if file.is_template {
            render(file.text, &values)
        } else {
            file.text.to_string()
        };
        if file.path == "Makefile" {
            text.push_str(&render(MAKEFILE_TEST, &values));
        }
        let full = root.join(&path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&full, text).with_context(|| format!("cannot write {}", full.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every file of a `language` project with its path in the project.
fn project_files(language: Language) -> impl Iterator<Item = (String, &'static TemplateFile)> {
    let wit = WIT
        .iter()
        .map(move |f| (format!("{}/{}", language.wit_dir(), f.path), f));
    let rest = COMMON.iter().chain(language.files()).map(|f| (f.path.to_string(), f));
    wit.chain(rest)
}

/// Every `{{placeholder}}` of the templates and its value for this project.
fn placeholder_values(name: &str, language: Language) -> Vec<(&'static str, String)> {
    let mut values = vec![
        ("name", name.to_string()),
        ("crate", name.replace('-', "_")),
        ("env_key", env_key(name)),
        ("lang", language.id().to_string()),
        ("contract", actionbox_runtime::CONTRACT_VERSION.to_string()),
        ("wit_dir", language.wit_dir().to_string()),
    ];
    values.extend(language.readme_values().map(|(k, v)| (k, v.to_string())));
    values
}

/// `text` with each `{{key}}` replaced by its value.
fn render(text: &str, values: &[(&'static str, String)]) -> String {
    values.iter().fold(text.to_string(), |text, (key, value)| {
        text.replace(&format!("{{{{{key}}}}}"), value)
    })
}

/// What `actionbox new` prints once the project is written.
pub(super) fn next_steps(name: &str, language: Language, dir: &Path) -> String {
    format!(
        "Created the {lang} action `{name}` in {dir}:\n  cd {dir}\n  make          # build build/{name}.wasm\n  \
         make test     # actionbox check, then replay fixtures/recording.json offline\nIts README.md says what is \
         where; to call a live API, edit actionbox.toml and put the key in {env}.",
        lang = language.id(),
        dir = dir.display(),
        env = env_key(name),
    )
}

/// The environment variable `actionbox.toml` reads the key from, e.g. `ACME_ORDERS_API_KEY`.
fn env_key(name: &str) -> String {
    format!("{}_API_KEY", name.replace('-', "_").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGUAGES: [Language; 3] = [Language::Rust, Language::Python, Language::Javascript];

    /// A fresh directory under the system's temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("actionbox-new-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A `{{identifier}}` left in rendered text.
    fn leftover_placeholder(text: &str) -> Option<String> {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            if let Some(end) = after.find("}}") {
                let inner = &after[..end];
                if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    return Some(inner.to_string());
                }
            }
            rest = after;
        }
        None
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        for language in LANGUAGES {
            let values = placeholder_values("acme-orders", language);
            for (path, file) in project_files(language).filter(|(_, f)| f.is_template) {
                let text = render(file.text, &values);
                assert_eq!(leftover_placeholder(&text), None, "{language:?} {path}");
            }
            assert_eq!(leftover_placeholder(&render(MAKEFILE_TEST, &values)), None);
        }
    }

    #[test]
    fn generated_project_has_everything_and_no_path_back_into_this_repository() {
        let scratch = Scratch::new("complete");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the host crate lives in the repository")
            .to_string_lossy()
            .into_owned();
        for language in LANGUAGES {
            let dir = scratch.0.join(language.id());
            let written = create("acme-orders", language, &dir).expect("created");
            let world = format!("{}/world.wit", language.wit_dir());
            for path in [
                world.as_str(),
                "Makefile",
                "fixtures/recording.json",
                "actionbox.toml",
                "README.md",
            ] {
                assert!(written.iter().any(|w| w == path), "{language:?} lacks {path}");
            }
            for path in &written {
                let text = std::fs::read_to_string(dir.join(path)).expect("written");
                assert!(!text.contains(&repo), "{language:?} {path} names {repo}");
                assert!(
                    !text.contains("../wit"),
                    "{language:?} {path} reaches outside the project for its WIT"
                );
            }
            let makefile = std::fs::read_to_string(dir.join("Makefile")).expect("Makefile");
            assert!(makefile.contains("build/acme-orders.wasm") && makefile.contains("\ntest: check"));
            let toml = std::fs::read_to_string(dir.join("actionbox.toml")).expect("actionbox.toml");
            assert!(toml.contains("api_key_env = \"ACME_ORDERS_API_KEY\""), "{toml}");
            assert!(
                !std::fs::read_dir(&scratch.0).expect("scratch").any(|e| e
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')),
                "the staging directory is gone"
            );
        }
    }

    /// The repository directory `dir` (relative to the workspace root): every
    /// file under it, relative to it.
    fn files_under(dir: &str) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    out.push(path.strip_prefix(base).expect("inside").to_string_lossy().into_owned());
                }
            }
        }
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    #[test]
    fn every_wit_and_sdk_source_file_is_vendored() {
        let mut wit: Vec<String> = WIT.iter().map(|f| f.path.to_string()).collect();
        wit.sort();
        assert_eq!(wit, files_under("wit"), "add the new wit/ file to WIT in new.rs");
        let sdk: Vec<&str> = RUST.iter().filter_map(|f| f.path.strip_prefix("sdk/")).collect();
        for file in files_under("guest/sdk") {
            if file.starts_with("src/") || file == "Cargo.toml" {
                assert!(sdk.contains(&file.as_str()), "add guest/sdk/{file} to RUST in new.rs");
            }
        }
        // The Rust template builds with --locked: its Cargo.lock must hold what the SDK depends on.
        let manifest: toml::Table = sdk!("Cargo.toml").text.parse().expect("the SDK's Cargo.toml parses");
        let lock = RUST.iter().find(|f| f.path == "Cargo.lock").expect("a Cargo.lock").text;
        for dependency in manifest["dependencies"].as_table().expect("[dependencies]").keys() {
            assert!(
                lock.contains(&format!("name = \"{dependency}\"")),
                "host/templates/rust/Cargo.lock lacks {dependency}, which guest/sdk depends on: regenerate it"
            );
        }
    }

    #[test]
    fn an_existing_project_is_never_overwritten() {
        let scratch = Scratch::new("overwrite");
        let dir = scratch.0.join("mine");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("notes.txt"), "keep me").expect("file");
        let err = create("mine", Language::Rust, &dir).expect_err("refused");
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).expect("kept"), "keep me");
        assert!(!dir.join("Makefile").exists());

        let empty = scratch.0.join("empty");
        std::fs::create_dir_all(&empty).expect("dir");
        create("mine", Language::Python, &empty).expect("an empty directory is used");
        assert!(empty.join("src/app.py").exists());
    }

    #[test]
    fn names_that_would_break_a_package_or_a_kind_are_refused() {
        for bad in [
            "",
            "Acme",
            "1acme",
            "acme_orders",
            "acme-",
            "-acme",
            "ac--me",
            "a b",
            "acmé",
            "self",
            "test",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
        for good in ["acme", "acme-orders", "a1", &"a".repeat(MAX_NAME_CHARS)] {
            check_name(good).unwrap_or_else(|e| panic!("{good:?} refused: {e}"));
        }
    }
}
