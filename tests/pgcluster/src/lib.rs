//! A throwaway PostgreSQL cluster for tests: `initdb` into a fresh temporary
//! directory, `pg_ctl start` listening only on 127.0.0.1 (and a Unix socket
//! inside that directory), trust authentication for the `postgres` role, and
//! a database `actionbox`. Dropping the [`PgCluster`] stops the server and
//! removes the directory. No mock: the store's tests run against the real
//! server Debian ships (`apt-get install postgresql`).
//!
//! PostgreSQL refuses to run as root; tests and CI often do. As root, the
//! server programs run as the `postgres` system user (`runuser`) and the
//! directory is handed to that user.
//!
//! ```no_run
//! let pg = actionbox_pgcluster::PgCluster::start()?;
//! let url = pg.url(); // postgres://postgres@127.0.0.1:PORT/actionbox
//! # let _ = url;
//! let sql = pg.dump()?; // plain-SQL dump of `actionbox`
//! # let _ = sql;
//! # anyhow::Ok(())
//! ```

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// What `start` says when the server programs are missing.
pub const NOT_INSTALLED: &str = "PostgreSQL is not installed: apt-get install postgresql (make test installs it)";

/// How many ports to try: another process may take the free port we picked
/// between picking it and the server binding it.
const START_ATTEMPTS: usize = 3;

/// A running throwaway PostgreSQL server.
pub struct PgCluster {
    /// Directory holding the data directory, the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    /// Where `initdb`, `pg_ctl`, `pg_dump`… live.
    bin: PathBuf,
    /// The loopback TCP port it listens on.
    port: u16,
    /// Whether the server programs run as the `postgres` user (we are root).
    as_postgres_user: bool,
}

impl PgCluster {
    /// Create, start and prepare a cluster (database `actionbox`). Fails
    /// with [`NOT_INSTALLED`] when PostgreSQL is not installed.
    pub fn start() -> anyhow::Result<PgCluster> {
        let bin = find_bin_dir().context(NOT_INSTALLED)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new().prefix("actionbox-pg-").tempdir()?;
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:postgres").arg(dir.path()))
                .context("handing the cluster directory to the postgres user (needed when running as root)")?;
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            as_postgres_user,
        };
        cluster.initdb()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        cluster.create_database("actionbox")?;
        Ok(cluster)
    }

    /// One cluster shared by every test of this process, started on first
    /// use and stopped when the process exits (an `atexit` hook: statics are
    /// never dropped). Tests isolate themselves with [`PgCluster::create_database`];
    /// starting a cluster per test would cost seconds each.
    pub fn shared() -> anyhow::Result<&'static PgCluster> {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(Ok(cluster)) = SHARED.get() {
                cluster.stop();
                let _ = std::fs::remove_dir_all(cluster.dir.path());
            }
        }
        let shared = SHARED.get_or_init(|| {
            let cluster = PgCluster::start().map_err(|e| format!("{e:#}"))?;
            // SAFETY: registers a plain function with no arguments; it runs at
            // process exit, when SHARED is initialized.
            unsafe { libc::atexit(stop_shared) };
            Ok(cluster)
        });
        shared.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The URL of database `actionbox`: `postgres://postgres@127.0.0.1:PORT/actionbox`.
    pub fn url(&self) -> String {
        self.database_url("actionbox")
    }

    /// The URL of another database of this cluster.
    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Create database `name` (letters, digits and `_` only) and return its
    /// URL, so tests sharing one cluster each get a clean database.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("database name {name:?} must be letters, digits and '_' only");
        }
        run(self
            .client("createdb")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name]))
        .with_context(|| format!("creating database {name}"))?;
        Ok(self.database_url(name))
    }

    /// A plain-SQL `pg_dump` of database `actionbox`: everything stored, as text.
    pub fn dump(&self) -> anyhow::Result<String> {
        self.dump_database("actionbox")
    }

    /// A plain-SQL `pg_dump` of database `name`.
    pub fn dump_database(&self, name: &str) -> anyhow::Result<String> {
        let out = run(self.client("pg_dump").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "--format=plain",
            name,
        ]))
        .with_context(|| format!("dumping database {name}"))?;
        String::from_utf8(out.stdout).context("pg_dump wrote text that is not UTF-8")
    }

    /// The port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn initdb(&self) -> anyhow::Result<()> {
        run(self.server("initdb").arg("-D").arg(self.data_dir()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]))
        .context("initdb failed")?;
        Ok(())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let started = run(self
            .server("pg_ctl")
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(options));
        if let Err(e) = started {
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{e:#}\nserver log:\n{}", tail.join("\n"));
        }
        Ok(())
    }

    /// A server program (initdb, pg_ctl): as the postgres user when we are root.
    fn server(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The server user may not be able to enter the caller's directory.
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// A client program (createdb, pg_dump): any user may run those.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path());
        cmd.env_remove("PGPASSWORD").env_remove("PGSERVICE");
        cmd
    }
}

impl PgCluster {
    /// Stop the server at once (`-m immediate`: the data is thrown away anyway).
    fn stop(&self) {
        if self.port != 0 {
            let _ = self
                .server("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w"])
                .output();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        // The TempDir removes the directory after this.
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or the directory of
/// `initdb` on PATH.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        .ok_or_else(|| anyhow::anyhow!("no initdb in /usr/lib/postgresql/*/bin or on PATH"))
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Run `cmd` to completion; an error carries its stderr.
fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let shown = format!("{:?}", cmd);
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_serves_loopback_and_is_removed_on_drop() {
        let cluster = match PgCluster::start() {
            Ok(c) => c,
            Err(e) if format!("{e:#}").contains(NOT_INSTALLED) => {
                assert!(std::env::var_os("ACTIONBOX_REQUIRE_ALL_TESTS").is_none(), "{e:#}");
                eprintln!("skipped: {e:#}");
                return;
            }
            Err(e) => panic!("{e:#}"),
        };
        assert!(cluster.url().starts_with("postgres://postgres@127.0.0.1:"));
        std::net::TcpStream::connect(("127.0.0.1", cluster.port())).unwrap();
        let other = cluster.create_database("second_db").unwrap();
        assert!(other.ends_with("/second_db"));
        assert!(cluster.dump().unwrap().contains("PostgreSQL database dump"));
        let dir = cluster.dir.path().to_owned();
        let port = cluster.port();
        drop(cluster);
        assert!(!dir.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
