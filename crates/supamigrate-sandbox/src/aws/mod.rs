//! A local AWS API for tests: moto's server, with the RDS calls moto lacks
//! (`DescribeDBEngineVersions`), a record of every RDS request and injected
//! errors (`rds_api.py`, run with the project's `.tools/moto` Python). It
//! checks no signature; clients sign with made-up keys. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use supamigrate::error::{Error, ErrorKind, Result};

const SCRIPT: &str = include_str!("rds_api.py");

/// One engine version the local API offers.
#[derive(Debug, Clone, Serialize)]
pub struct OfferedVersion {
    pub version: String,
    pub family: String,
    pub status: String,
}

impl OfferedVersion {
    /// An available version; the family is `postgres<major>`.
    pub fn available(version: &str) -> OfferedVersion {
        let major = version.split('.').next().unwrap_or(version);
        OfferedVersion {
            version: version.into(),
            family: format!("postgres{major}"),
            status: "available".into(),
        }
    }
}

/// An AWS error the local API answers one call of an action with.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub action: String,
    pub code: String,
    pub message: String,
    pub status: u16,
}

/// A local server the instances stand for (`run --create-instance` tests):
/// the endpoint every instance reports, and the password a managed master
/// secret holds.
#[derive(Debug, Clone, Default)]
pub struct StandIn {
    pub endpoint: Option<(String, u16)>,
    pub master_password: Option<supamigrate::connect::Password>,
}

/// A running local AWS API.
pub struct LocalAws {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// One recorded RDS request: its form parameters (`Action` among them).
pub type Request = std::collections::BTreeMap<String, String>;

#[derive(Deserialize)]
struct Requests(Vec<Request>);

impl LocalAws {
    /// The project's moto Python (scripts/setup.sh installs it).
    pub fn python() -> Option<PathBuf> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/moto/bin/python");
        Some(p).filter(|p| p.is_file())
    }

    /// Starts it, offering these engine versions.
    pub fn start(versions: &[OfferedVersion]) -> Result<LocalAws> {
        Self::start_with(versions, &StandIn::default())
    }

    /// Starts it, offering these engine versions, with every instance standing
    /// in for `stand_in`'s server.
    pub fn start_with(versions: &[OfferedVersion], stand_in: &StandIn) -> Result<LocalAws> {
        let python = Self::python().ok_or_else(|| {
            Error::new(
                ErrorKind::Tool,
                "moto (the tests' local AWS API) is not installed",
            )
            .with_hint("run scripts/setup.sh (it installs moto[server] into .tools/moto)")
        })?;
        let dir = tempfile::tempdir().map_err(|e| Error::io("making a temporary directory", e))?;
        let script = dir.path().join("rds_api.py");
        std::fs::write(&script, SCRIPT).map_err(|e| Error::io("writing the local AWS API", e))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::io("finding a free port", e))?
            .port();
        let versions = serde_json::to_string(versions).map_err(|e| {
            Error::new(ErrorKind::Internal, "encoding engine versions").with_source(e)
        })?;
        let child = supamigrate::connect::child(&python)
            .arg(&script)
            .arg(port.to_string())
            .env("SUPAMIGRATE_ENGINE_VERSIONS", versions)
            .envs(
                stand_in
                    .endpoint
                    .as_ref()
                    .map(|(h, p)| ("SUPAMIGRATE_RDS_ENDPOINT", format!("{h}:{p}"))),
            )
            .envs(
                stand_in
                    .master_password
                    .as_ref()
                    .map(|p| ("SUPAMIGRATE_RDS_MASTER_PASSWORD", p.expose().to_string())),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::new(ErrorKind::Tool, "starting the local AWS API").with_source(e)
            })?;
        let aws = LocalAws {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Tool,
                    "the local AWS API did not start listening within 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(aws)
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client needs to talk to it: endpoint, region, made-up keys.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "supamigrate-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "supamigrate-test".into()),
        ]
    }

    /// Every RDS request so far, in order.
    pub fn requests(&self) -> Result<Vec<Request>> {
        let body = self.http("GET", "/stub/requests", "")?;
        let Requests(list) = serde_json::from_str(&body).map_err(|e| {
            Error::new(ErrorKind::Internal, "reading recorded requests").with_source(e)
        })?;
        Ok(list)
    }

    /// Answers the next call of `failure.action` with this error.
    pub fn fail(&self, failure: &Failure) -> Result<()> {
        let body = serde_json::to_string(failure)
            .map_err(|e| Error::new(ErrorKind::Internal, "encoding a failure").with_source(e))?;
        self.http("POST", "/stub/fail", &body).map(drop)
    }

    fn http(&self, method: &str, path: &str, body: &str) -> Result<String> {
        use std::io::{Read, Write};
        let io = |e| Error::io("talking to the local AWS API", e);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(io)?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .map_err(io)?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(io)?;
        let (_, body) = out.split_once("\r\n\r\n").unwrap_or(("", ""));
        Ok(body.to_string())
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
