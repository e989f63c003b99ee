//! A throwaway PostgreSQL server for tests, started from the system's binaries.
//!
//! [`shared`] starts one server per test binary (on first use) and [`database`] gives each
//! test a database of its own on it; [`Server::start`] starts a private one (to stop and
//! restart, or with `fsync` on). Servers listen only on a unix socket in their temporary
//! directory (`listen_addresses = ''`). Each runs under a small watchdog shell that reads its
//! standard input from this process: when the pipe closes (the `Server` is dropped, or the test
//! binary exits however it exits, even killed), the watchdog stops the server with a fast
//! shutdown and removes its directory, so no server outlives the tests.
//!
//! [`Server::start_tls`] starts a private one that also listens on 127.0.0.1 at a free port
//! with `ssl = on`, a given certificate and key, and a given `pg_hba.conf`.
//!
//! `initdb` refuses to run as root: as root, the directory is given to the `postgres` user
//! and the server runs as that user (`runuser -u postgres --`).
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The port in the socket's file name (`.s.PGSQL.5432`): the directory is private, so any
/// port works and none is bound on the network.
const PORT: u16 = 5432;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running (or stopped) PostgreSQL server with its data directory.
pub struct Server {
    dir: PathBuf,
    bindir: PathBuf,
    fsync: bool,
    /// The socket's port ([`PORT`]), or the TCP port when the server also listens on
    /// 127.0.0.1 ([`Server::start_tls`]).
    port: u16,
    /// `listen_addresses`: empty (the socket only), or `127.0.0.1`.
    listen: &'static str,
    /// More `-c name=value` settings.
    settings: Vec<String>,
    watchdog: Option<(Child, ChildStdin)>,
}

/// The server every test of this binary shares, started on first use.
pub fn shared() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start(false))
}

/// The connection string of a new, empty database on the [`shared`] server.
pub async fn database() -> String {
    shared().create_database().await
}

impl Server {
    /// Initialises a data directory and starts a server on it. `fsync` off (tests) skips
    /// flushing to disk; on (benchmarks) is the server's default durability.
    pub fn start(fsync: bool) -> Server {
        let mut server = Server::init(fsync);
        server.launch();
        server
    }

    /// Starts a server that also listens on 127.0.0.1, at a free port, with TLS on: the
    /// certificate (chain) and key are PEM files, copied into the data directory, and
    /// `pg_hba` replaces `pg_hba.conf` (keep a `local` line: the harness connects over the
    /// socket). [`conninfo`](Self::conninfo) still names the socket; see
    /// [`tcp_port`](Self::tcp_port).
    pub fn start_tls(certificate: &Path, key: &Path, pg_hba: &str) -> Server {
        let mut server = Server::init(false);
        let data = server.dir.join("data");
        let copy = |from: &Path, to: &str| {
            let to = data.join(to);
            std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from:?} to {to:?}: {e}"));
            to
        };
        let files = [
            copy(certificate, "server.crt"),
            copy(key, "server.key"),
            data.join("pg_hba.conf"),
        ];
        std::fs::write(&files[2], pg_hba).expect("write pg_hba.conf");
        // The server refuses a key that others can read.
        for file in &files {
            run(Command::new("chmod").arg("600").arg(file));
            if running_as_root() {
                run(Command::new("chown").arg("postgres:postgres").arg(file));
            }
        }
        server.port = free_port();
        server.listen = "127.0.0.1";
        server.settings = [
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ]
        .map(str::to_owned)
        .to_vec();
        server.launch();
        server
    }

    /// The TCP port on 127.0.0.1 of a server from [`start_tls`](Self::start_tls).
    pub fn tcp_port(&self) -> u16 {
        self.port
    }

    /// A data directory, made by `initdb`, and no server running yet.
    fn init(fsync: bool) -> Server {
        let bindir = bindir();
        let dir = std::env::temp_dir().join(format!(
            "graph-runtime-pg-{}-{}",
            std::process::id(),
            NEXT_SERVER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("socket")).expect("a directory for the test server");
        if running_as_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir));
        }
        let mut initdb = as_server_user(&bindir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(dir.join("data"))
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync"]);
        run(&mut initdb);
        Server {
            dir,
            bindir,
            fsync,
            port: PORT,
            listen: "",
            settings: Vec::new(),
            watchdog: None,
        }
    }

    /// The connection string of database `dbname` on this server.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={dbname}",
            self.dir.join("socket").display(),
            self.port
        )
    }

    /// Creates a new, empty database and returns its connection string.
    pub async fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let (client, connection) =
            tokio_postgres::connect(&self.conninfo("postgres"), tokio_postgres::NoTls)
                .await
                .expect("a connection to the test server");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("a new test database");
        drop(client);
        let _ = connection.await;
        self.conninfo(&name)
    }

    /// Stops the server (fast shutdown) and keeps its data directory.
    pub fn stop(&mut self) {
        self.shut_down(false);
    }

    /// Starts the server again on the same data directory (after [`stop`](Self::stop)).
    pub fn restart(&mut self) {
        assert!(self.watchdog.is_none(), "restart a stopped server");
        self.launch();
    }

    fn launch(&mut self) {
        let data = self.dir.join("data");
        let fsync = if self.fsync { "on" } else { "off" };
        let mut server = format!(
            "{} -D '{}' -k '{}' -p {} -c listen_addresses={} -c fsync={fsync} \
             -c synchronous_commit={fsync} -c full_page_writes={fsync} -c max_connections=200",
            self.bindir.join("postgres").display(),
            data.display(),
            self.dir.join("socket").display(),
            self.port,
            self.listen,
        );
        for setting in &self.settings {
            server.push_str(&format!(" -c {setting}"));
        }
        let server = if running_as_root() {
            format!("runuser -u postgres -- {server}")
        } else {
            server
        };
        // The watchdog: the server in the background, then a blocking read of our pipe.
        let script = format!(
            "{server} >>'{log}' 2>&1 &\n\
             read what\n\
             pid=$(head -n 1 '{data}/postmaster.pid' 2>/dev/null) && kill -INT \"$pid\"\n\
             wait\n\
             if [ \"$what\" != keep ]; then rm -rf '{dir}'; fi\n",
            log = self.dir.join("server.log").display(),
            data = data.display(),
            dir = self.dir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh, to watch the test server");
        let stdin = child.stdin.take().expect("the watchdog's stdin");
        self.watchdog = Some((child, stdin));
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bindir.join("pg_isready"))
                .arg("-h")
                .arg(self.dir.join("socket"))
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            let exited = self
                .watchdog
                .as_mut()
                .is_some_and(|(child, _)| matches!(child.try_wait(), Ok(Some(_))));
            if exited || started.elapsed() > READY_TIMEOUT {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("the test PostgreSQL server did not start; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn shut_down(&mut self, remove: bool) {
        let Some((mut child, mut stdin)) = self.watchdog.take() else {
            return;
        };
        // What the watchdog does after the server stops: keep or remove the directory (it
        // removes it when the pipe closes without a word: this process has exited).
        let _ = writeln!(stdin, "{}", if remove { "remove" } else { "keep" });
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) {
            // Should not happen; make sure nothing survives: the watchdog's process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT_SERVER: AtomicUsize = AtomicUsize::new(0);

/// The directory of `postgres` and `initdb`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn bindir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("initdb").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_server(&dir) {
            return dir;
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let dir = entry.path().join("bin");
            has_server(&dir).then_some((version, dir))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "these tests need the PostgreSQL server binaries (`postgres`, `initdb`), found \
             neither through `pg_config --bindir` nor in /usr/lib/postgresql/*/bin: install \
             them, e.g. `apt-get install postgresql-15` on Debian"
        ),
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the system's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
    })
}

fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

#[track_caller]
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
