//! Private throwaway Postgres and Redis servers on random ports, for tests that stop or
//! restart a dependency: such a test must never disturb the shared servers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::wait::free_port;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Returns the directory of the newest installed Postgres server binaries.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("CUDLY_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("postgres server binaries not found under /usr/lib/postgresql")?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb found under /usr/lib/postgresql/*/bin")
}

/// Runs a Postgres tool as the `postgres` OS user when we are root (initdb refuses
/// to run as root).
fn run_as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    } else {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }
    .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A private Postgres cluster in a temporary directory.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    /// Serves TLS only (TCP clients without it are refused).
    tls: bool,
}

impl PrivatePostgres {
    /// Initialises and starts a cluster with trust auth for user `postgres`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// As [`PrivatePostgres::start`], accepting TCP clients over TLS only, with the
    /// server certificate of `pki`.
    pub async fn start_tls(pki: &crate::tls::TestPki) -> anyhow::Result<Self> {
        Self::start_with(Some(pki)).await
    }

    async fn start_with(pki: Option<&crate::tls::TestPki>) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("cudly-pg-")
            .tempdir_in("/tmp")?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("chown of the private postgres directory failed");
            }
        }
        let data = dir.path().join("data");
        let data_str = data.to_string_lossy().to_string();
        let initdb = bin.join("initdb");
        tokio::task::spawn_blocking(move || {
            run_as_postgres(
                &initdb,
                &[
                    "-D",
                    &data_str,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            )
        })
        .await??;
        if let Some(pki) = pki {
            // The key must be the server user's, 0600; TCP clients only with TLS.
            for (from, to) in [
                (pki.server_cert_file(), "server.crt"),
                (pki.server_key_file(), "server.key"),
            ] {
                let target = data.join(to);
                std::fs::copy(&from, &target)?;
                std::fs::set_permissions(
                    &target,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                if is_root() {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&target)
                        .status()?;
                }
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )?;
        }
        let mut instance = Self {
            dir,
            bin,
            port: free_port(),
            running: false,
            tls: pki.is_some(),
        };
        instance.start_again().await?;
        Ok(instance)
    }

    /// Starts the (stopped) server again on the same port.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data").to_string_lossy().to_string();
        let log = self
            .dir
            .path()
            .join("postgres.log")
            .to_string_lossy()
            .to_string();
        let socket_dir = self.dir.path().to_string_lossy().to_string();
        let mut options = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port
        );
        if self.tls {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        tokio::task::spawn_blocking(move || {
            run_as_postgres(
                &pg_ctl,
                &[
                    "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
                ],
            )
        })
        .await??;
        self.running = true;
        Ok(())
    }

    /// Stops the server (fast shutdown: open connections are closed).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data").to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || {
            run_as_postgres(&pg_ctl, &["-D", &data, "-m", "fast", "-w", "stop"])
        })
        .await??;
        self.running = false;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let pg_ctl = self.bin.join("pg_ctl");
            let data = self.dir.path().join("data").to_string_lossy().to_string();
            let _ = run_as_postgres(&pg_ctl, &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// A private Redis server that keeps nothing on disk.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    /// TLS only: the server certificate, its key and the CA files.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl PrivateRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let mut instance = Self {
            port: free_port(),
            child: None,
            tls: None,
        };
        instance.start_again().await?;
        Ok(instance)
    }

    /// As [`PrivateRedis::start`], serving TLS only with the server certificate of
    /// `pki` (clients need no certificate of their own).
    pub async fn start_tls(pki: &crate::tls::TestPki) -> anyhow::Result<Self> {
        let mut instance = Self {
            port: free_port(),
            child: None,
            tls: Some((pki.server_cert_file(), pki.server_key_file(), pki.ca_file())),
        };
        instance.start_again().await?;
        Ok(instance)
    }

    /// Starts the (stopped) server again on the same port, empty.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let port = self.port.to_string();
        let mut args: Vec<String> = match &self.tls {
            None => vec!["--port".into(), port],
            Some((cert, key, ca)) => vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port,
                "--tls-cert-file".into(),
                cert.display().to_string(),
                "--tls-key-file".into(),
                key.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        };
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(str::to_owned));
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("private redis did not start on {addr}")
    }

    /// Kills the server.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
