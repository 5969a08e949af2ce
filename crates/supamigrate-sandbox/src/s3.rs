//! A local S3 server for the demo: moto's server (installed by
//! scripts/setup.sh into `.tools/moto`, or `moto_server` on `PATH`) on a
//! free loopback port. It checks no signature, so no key is given to any
//! process; the client signs with made-up keys. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use supamigrate::connect::Password;
use supamigrate::error::{Error, ErrorKind, Result};
use supamigrate::storage::config::S3Keys;

/// A running local S3 server.
pub struct LocalS3 {
    child: Child,
    port: u16,
}

impl LocalS3 {
    /// moto's server: the project's `.tools/moto`, else on `PATH`.
    pub fn program() -> Option<PathBuf> {
        let local =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/moto/bin/moto_server");
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("moto_server"))
                .find(|p| p.is_file())
        });
        Some(local).filter(|p| p.is_file()).or(on_path)
    }

    /// Starts it.
    pub fn start() -> Result<LocalS3> {
        let program = Self::program().ok_or_else(|| {
            Error::new(
                ErrorKind::Tool,
                "moto's S3 server (the demo's local S3) is not installed",
            )
            .with_hint("run scripts/setup.sh (it installs moto[server] into .tools/moto)")
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::io("finding a free port", e))?
            .port();
        let child = supamigrate::connect::child(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Tool, "starting moto's S3 server").with_source(e))?;
        let s3 = LocalS3 { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Tool,
                    "moto's S3 server did not start listening within 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(s3)
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Keys to sign with (the server checks none).
    pub fn keys(&self) -> S3Keys {
        S3Keys {
            access_key: "supamigrate-demo".into(),
            secret_key: Password::new("supamigrate-demo"),
            region: "us-east-1".into(),
        }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
