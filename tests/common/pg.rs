//! The PostgreSQL a test archives history to: a private server ([`OwnPostgres`],
//! restartable, crashable), a fresh database of the test's own ([`TestDb`]), and one-off
//! queries ([`execute`], [`rows`], [`query_i64`]).
//!
//! Tests use the server named by `PROOF_MARKET_TEST_DATABASE_URL` (an admin URL, started
//! by `deploy/test.sh`), each in a database of its own (`pm_<random hex>`), so they run in
//! parallel and nothing needs dropping; without it, or when a test must crash PostgreSQL,
//! each starts a private server.
//!
//! A private server is `initdb` in a temp dir (superuser `postgres`, trust on loopback)
//! and `postgres` on a free loopback port with its unix socket in that dir. Debian keeps
//! the binaries in `/usr/lib/postgresql/<version>/bin` (not on PATH), and both refuse to
//! run as root: as root they run as the `postgres` system user, set on the spawned
//! process itself (uid/gid) rather than through `runuser`, which would stand between the
//! test and the postmaster (its PID is the one `kill9` must hit; and runuser answers a
//! signal with SIGTERM, then SIGKILL, to the server).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A PostgreSQL server started for one test; killed (SIGKILL, then waited for, with its
/// children) when dropped.
pub struct OwnPostgres {
    child: Option<Child>,
    pub port: u16,
    bin: PathBuf,
    /// uid and gid of the `postgres` user when the test runs as root.
    run_as: Option<(u32, u32)>,
    /// The data dir (`data/`), the unix socket and the server's log (`postgres.log`).
    dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// initdb in a temp dir, then the server on a free loopback port; waits until it
    /// accepts connections.
    pub fn start() -> OwnPostgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("a temp dir for PostgreSQL");
        let run_as = postgres_user_if_root();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown of PostgreSQL's temp dir to the postgres user");
        }
        let out = Self::as_owner(run_as, bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            // No fsync of initdb's files: they are gone with the test anyway, and a
            // SIGKILL of the server (kill9) does not lose the OS's page cache.
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ])
            .current_dir(dir.path())
            .output()
            .expect("could not run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = OwnPostgres {
            child: None,
            port: free_port(),
            bin,
            run_as,
            dir,
        };
        pg.start_again();
        pg
    }

    fn as_owner(run_as: Option<(u32, u32)>, program: PathBuf) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// The URL of database `db` on this server, as superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The postmaster's process id (0 while stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Starts the server again (same data dir and port; after [`OwnPostgres::kill9`] it
    /// runs crash recovery from its WAL) and waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("PostgreSQL's log file");
        let child = Self::as_owner(self.run_as, self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            // Light: several private servers may run at once.
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=100"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("PostgreSQL's log file"))
            .stderr(log)
            .spawn()
            .expect("could not start postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(tool(&self.bin, "pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-t", "2"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!(
                    "PostgreSQL on port {} did not start ({}); its log:\n{log}",
                    self.port,
                    if exited { "it exited" } else { "30 s" }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the postmaster and every process it started, as a machine crash would
    /// end them (nothing flushed, no shutdown checkpoint); returns once they are gone.
    /// What was committed survives: it is in the WAL, fsynced at commit.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Stopped first, the postmaster starts no process between the listing and the kill.
        signal(child.id(), "-STOP");
        let children = children_of(child.id());
        let _ = child.kill();
        let _ = child.wait();
        for pid in &children {
            signal(*pid, "-KILL");
        }
        // The orphans were reparented (to init, or to the nearest subreaper): wait until
        // none is alive. A zombie holds nothing (no shared memory, no port).
        let deadline = Instant::now() + Duration::from_secs(10);
        while children.iter().any(|p| alive(*p)) {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL's processes survive SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`OwnPostgres::kill9`], then [`OwnPostgres::start_again`].
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        self.start_again();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The directory of `initdb` and `postgres`: initdb's on PATH (symlinks resolved), else
/// the highest version under `/usr/lib/postgresql` (Debian's layout).
pub fn bin_dir() -> PathBuf {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if let Ok(initdb) = std::fs::canonicalize(d.join("initdb")) {
                if let Some(real) = initdb.parent().filter(|r| has_both(r)) {
                    return real.to_path_buf();
                }
            }
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL must be installed (initdb on PATH or in /usr/lib/postgresql/*/bin; \
         deploy/test.sh installs it)",
    )
}

/// A client tool (`pg_isready`, `psql`) beside the server, else from PATH.
fn tool(bin: &Path, name: &str) -> PathBuf {
    let beside = bin.join(name);
    if beside.is_file() {
        beside
    } else {
        PathBuf::from(name)
    }
}

/// The `postgres` user's uid and gid when this process runs as root.
fn postgres_user_if_root() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if me != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("could not run id");
        assert!(
            out.status.success(),
            "running as root needs the postgres system user (apt-get install postgresql)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    Some((id("-u"), id("-g")))
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let child: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the ')'.
            let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// `kill SIG PID`; a process already gone is no error here.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A fresh, empty database of one test: on the server named by
/// `PROOF_MARKET_TEST_DATABASE_URL`, or on a private server kept alive as long as this.
pub struct TestDb {
    /// `postgres://postgres@127.0.0.1:PORT/pm_<hex>`.
    pub url: String,
    pub name: String,
    _own: Option<OwnPostgres>,
}

impl TestDb {
    /// A database `pm_<random hex>` on the shared test server, or on a private one.
    pub async fn new() -> TestDb {
        match std::env::var("PROOF_MARKET_TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => Self::create(&admin, None).await,
            _ => {
                let own = OwnPostgres::start();
                let admin = own.url("postgres");
                Self::create(&admin, Some(own)).await
            }
        }
    }

    /// A database `pm_<random hex>` on `pg`, a private server the test controls (to
    /// crash it, for instance); the test keeps `pg` alive.
    pub async fn on(pg: &OwnPostgres) -> TestDb {
        Self::create(&pg.url("postgres"), None).await
    }

    async fn create(admin_url: &str, own: Option<OwnPostgres>) -> TestDb {
        let name = format!("pm_{:016x}", rand::random::<u64>());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await;
        // The admin URL names its database last: `postgres://.../postgres[?options]`.
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (admin_url, None),
        };
        let server = match base.rsplit_once('/') {
            Some((server, _db)) if server.contains("//") => server,
            _ => panic!("not a postgres://HOST/DB URL: {admin_url}"),
        };
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        TestDb {
            url,
            name,
            _own: own,
        }
    }
}

/// A client connected to `url` (its connection runs on a spawned task).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("could not connect to {url}: {e}"));
    tokio::spawn(async move {
        // Ends with an error when the server goes away (a test's kill9): expected.
        let _ = connection.await;
    });
    client
}

/// Runs `sql` (one or several statements, no parameters) on `url`.
pub async fn execute(url: &str, sql: &str) {
    connect(url)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows `sql` returns on `url`.
pub async fn rows(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    connect(url)
        .await
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The first column of the first row `sql` returns: a bigint (`count(*)`, `sum` of
/// bigints) or an integer.
pub async fn query_i64(url: &str, sql: &str) -> i64 {
    let rows = rows(url, sql).await;
    let row = rows
        .first()
        .unwrap_or_else(|| panic!("{sql}: no row returned"));
    row.try_get::<_, i64>(0)
        .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
        .unwrap_or_else(|e| panic!("{sql}: the first column is not an integer: {e}"))
}
