//! A source session that reads `COPY … TO STDOUT` in bounded pieces.
//!
//! tokio-postgres (like libpq) hands over COPY data one whole protocol
//! message at a time: text COPY sends one message per row, so a row holding
//! an 800 MB value is 800 MB in our memory, at least once. This session
//! speaks the protocol itself for the few things a copy worker does on the
//! source (log in, set up its transaction, `COPY … TO STDOUT`, end it) and
//! reads a CopyData message's payload as it arrives, in pieces no larger
//! than the caller asks for. Logging in follows [`super::connect`]: the
//! same TLS modes (`sslmode`), passwords in clear, MD5 or SCRAM-SHA-256.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conninfo::{ConnInfo, SslMode};
use crate::error::{Error, ErrorKind, Result};

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// What the socket reads at a time (and the most a small message may be
/// before the buffer grows for it).
const READ_SIZE: usize = 256 * 1024;

/// One source session speaking the protocol directly (see the module).
pub struct RawSession {
    io: Box<dyn Stream>,
    buf: BytesMut,
    label: String,
    /// A COPY was left part-read (its reader dropped on an error): the
    /// stream is mid-message, and the session can only be closed.
    broken: bool,
}

/// A server message other than CopyData, whole.
struct Message {
    tag: u8,
    body: Bytes,
}

impl RawSession {
    /// Connects and logs in to `info`, within its connect timeout.
    pub async fn connect(info: &ConnInfo) -> Result<RawSession> {
        let timeout = Duration::from_secs(info.connect_timeout_or_default());
        match tokio::time::timeout(timeout, Self::connect_now(info)).await {
            Ok(r) => r,
            Err(_) => Err(super::no_answer(info, timeout)),
        }
    }

    async fn connect_now(info: &ConnInfo) -> Result<RawSession> {
        let io = open(info).await?;
        let mut s = RawSession {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            label: info.to_string(),
            broken: false,
        };
        s.startup(info).await?;
        Ok(s)
    }

    async fn startup(&mut self, info: &ConnInfo) -> Result<()> {
        let app = info.application_name.as_deref().unwrap_or("supamigrate");
        let mut params = vec![
            ("user", info.user.as_str()),
            ("database", info.dbname.as_str()),
            ("application_name", app),
            ("client_encoding", "UTF8"),
        ];
        if let Some(o) = &info.options {
            params.push(("options", o.as_str()));
        }
        let mut out = BytesMut::new();
        frontend::startup_message(params.iter().copied(), &mut out)
            .map_err(|e| self.io_error("writing the startup message", e))?;
        self.write(&out).await?;
        self.authenticate(info).await?;
        // Parameter statuses and the cancel key, then ready.
        self.until_ready().await
    }

    async fn authenticate(&mut self, info: &ConnInfo) -> Result<()> {
        let password = info.password.as_ref().map(|p| p.expose().as_bytes());
        let mut scram: Option<ScramSha256> = None;
        loop {
            let m = self.message().await?;
            if m.tag == b'E' {
                return Err(server_error(&m.body).context(format!("connecting to {}", self.label)));
            }
            if m.tag != b'R' {
                return Err(self.unexpected(m.tag, "logging in"));
            }
            let mut body = m.body;
            let code = get_i32(&mut body)?;
            let mut out = BytesMut::new();
            match code {
                0 => return Ok(()),
                3 => frontend::password_message(need(password, info)?, &mut out)
                    .map_err(|e| self.io_error("answering the password request", e))?,
                5 => {
                    let salt: [u8; 4] = body
                        .get(..4)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| self.protocol("a short MD5 salt"))?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        info.user.as_bytes(),
                        need(password, info)?,
                        salt,
                    );
                    frontend::password_message(hash.as_bytes(), &mut out)
                        .map_err(|e| self.io_error("answering the password request", e))?;
                }
                10 => {
                    let offered = body
                        .split(|b| *b == 0)
                        .any(|m| m == SCRAM_SHA_256.as_bytes());
                    if !offered {
                        return Err(
                            self.unsupported_auth("a SASL mechanism other than SCRAM-SHA-256")
                        );
                    }
                    let s = ScramSha256::new(need(password, info)?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                        .map_err(|e| self.io_error("starting SCRAM", e))?;
                    scram = Some(s);
                }
                11 | 12 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| self.protocol("SCRAM out of order"))?;
                    if code == 11 {
                        s.update(&body).map_err(|e| self.io_error("SCRAM", e))?;
                        frontend::sasl_response(s.message(), &mut out)
                            .map_err(|e| self.io_error("SCRAM", e))?;
                    } else {
                        s.finish(&body).map_err(|e| {
                            Error::new(
                                ErrorKind::Auth,
                                format!(
                                    "connecting to {}: the server's SCRAM proof is wrong",
                                    self.label
                                ),
                            )
                            .with_source(e)
                        })?;
                    }
                }
                other => {
                    return Err(self.unsupported_auth(&format!("authentication method {other}")))
                }
            }
            if !out.is_empty() {
                self.write(&out).await?;
            }
        }
    }

    /// Runs `sql` (one or more statements, no rows wanted) as a simple query.
    pub async fn execute(&mut self, sql: &str) -> Result<()> {
        self.usable()?;
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.io_error("writing a query", e))?;
        self.write(&out).await?;
        self.until_ready().await
    }

    /// Starts `COPY … TO STDOUT`; read its data with [`CopyOut::next`].
    pub async fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>> {
        self.usable()?;
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.io_error("writing a query", e))?;
        self.write(&out).await?;
        loop {
            let m = self.message().await?;
            match m.tag {
                b'H' => {
                    self.broken = true;
                    return Ok(CopyOut {
                        session: self,
                        left: 0,
                        done: false,
                    });
                }
                b'E' => {
                    let e = server_error(&m.body);
                    self.until_ready().await?;
                    return Err(e);
                }
                b'N' | b'S' | b'A' => {}
                other => return Err(self.unexpected(other, "starting COPY")),
            }
        }
    }

    /// Reads messages until ReadyForQuery; the first ErrorResponse seen is
    /// returned then.
    async fn until_ready(&mut self) -> Result<()> {
        let mut error = None;
        loop {
            let m = self.message().await?;
            match m.tag {
                b'Z' => return error.map_or(Ok(()), Err),
                b'E' => {
                    error.get_or_insert(server_error(&m.body));
                }
                b'd' | b'H' | b'G' | b'W' => {
                    return Err(self.unexpected(m.tag, "running a statement"));
                }
                _ => {}
            }
        }
    }

    /// The next whole message (CopyData included: only for small ones).
    async fn message(&mut self) -> Result<Message> {
        self.fill(5).await?;
        let len = (&self.buf[1..5]).get_u32() as usize;
        if len < 4 {
            return Err(self.protocol("a message length under 4"));
        }
        self.fill(1 + len).await?;
        let tag = self.buf[0];
        self.buf.advance(5);
        let body = self.buf.split_to(len - 4).freeze();
        Ok(Message { tag, body })
    }

    /// Reads until the buffer holds at least `n` bytes.
    async fn fill(&mut self, n: usize) -> Result<()> {
        while self.buf.len() < n {
            self.buf.reserve(READ_SIZE.max(n - self.buf.len()));
            let read = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| self.io_error("reading from the server", e))?;
            if read == 0 {
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!("{}: the server closed the connection", self.label),
                ));
            }
        }
        Ok(())
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.io
            .write_all(data)
            .await
            .map_err(|e| self.io_error("writing to the server", e))?;
        self.io
            .flush()
            .await
            .map_err(|e| self.io_error("writing to the server", e))
    }

    fn usable(&self) -> Result<()> {
        if self.broken {
            return Err(Error::internal(format!(
                "{}: a COPY was left part-read on this session",
                self.label
            )));
        }
        Ok(())
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::new(ErrorKind::Connection, format!("{}: {what}", self.label)).with_source(e)
    }

    fn protocol(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("{}: the server sent {what}", self.label),
        )
    }

    fn unexpected(&self, tag: u8, during: &str) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!(
                "{}: unexpected message {:?} while {during}",
                self.label, tag as char
            ),
        )
    }

    fn unsupported_auth(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Auth,
            format!("connecting to {}: the server asks for {what}, which the copy's source sessions do not speak", self.label),
        )
        .with_hint("allow scram-sha-256, md5 or password authentication for this role in the server's pg_hba.conf")
    }
}

/// A `COPY … TO STDOUT` in progress on a [`RawSession`].
pub struct CopyOut<'a> {
    session: &'a mut RawSession,
    /// Bytes of the current CopyData message not read yet.
    left: usize,
    done: bool,
}

impl CopyOut<'_> {
    /// The next piece of COPY data, at most `max` bytes (whole rows where
    /// they fit, a row's part where one is larger), and how many rows ended
    /// in it; `None` once the COPY has ended.
    pub async fn next(&mut self, max: usize) -> Result<Option<(Bytes, u64)>> {
        let mut out = BytesMut::new();
        let mut rows = 0;
        while !self.done && out.len() < max {
            if self.left > 0 {
                if self.session.buf.is_empty() {
                    self.session.fill(1).await?;
                }
                let n = self.left.min(self.session.buf.len()).min(max - out.len());
                out.put(self.session.buf.split_to(n));
                self.left -= n;
                if self.left == 0 {
                    rows += 1;
                }
                continue;
            }
            self.session.fill(5).await?;
            let len = (&self.session.buf[1..5]).get_u32() as usize;
            if self.session.buf[0] == b'd' && len >= 4 {
                self.session.buf.advance(5);
                self.left = len - 4;
                if self.left == 0 {
                    rows += 1;
                }
                continue;
            }
            self.other_message().await?;
        }
        Ok((!out.is_empty()).then(|| (out.freeze(), rows)))
    }

    /// A message between or after the CopyData ones: CopyDone,
    /// CommandComplete, notices, and ReadyForQuery ending the COPY (or an
    /// error).
    async fn other_message(&mut self) -> Result<()> {
        let m = self.session.message().await?;
        match m.tag {
            b'c' | b'C' | b'N' | b'S' | b'A' => Ok(()),
            b'Z' => {
                self.done = true;
                self.session.broken = false;
                Ok(())
            }
            b'E' => {
                let e = server_error(&m.body);
                self.session.until_ready().await?;
                self.done = true;
                self.session.broken = false;
                Err(e)
            }
            other => Err(self.session.unexpected(other, "reading COPY data")),
        }
    }
}

/// Opens the socket and sets up TLS as `info.sslmode` says.
async fn open(info: &ConnInfo) -> Result<Box<dyn Stream>> {
    let tcp = if info.host.starts_with('/') {
        let path = format!("{}/.s.PGSQL.{}", info.host, info.port);
        let unix = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| refused(info, e))?;
        return Ok(Box::new(unix));
    } else {
        tokio::net::TcpStream::connect((info.host.as_str(), info.port))
            .await
            .map_err(|e| refused(info, e))?
    };
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
    let Some(config) = super::tls::client_config(info)? else {
        return Ok(Box::new(tcp));
    };
    negotiate_tls(info, tcp, config).await
}

async fn negotiate_tls(
    info: &ConnInfo,
    mut tcp: tokio::net::TcpStream,
    config: rustls::ClientConfig,
) -> Result<Box<dyn Stream>> {
    let mut out = BytesMut::new();
    frontend::ssl_request(&mut out);
    let mut answer = [0u8; 1];
    let talk = async {
        tcp.write_all(&out).await?;
        tcp.read_exact(&mut answer).await
    };
    talk.await.map_err(|e| refused(info, e))?;
    if answer[0] != b'S' {
        if matches!(info.sslmode, SslMode::Allow | SslMode::Prefer) {
            return Ok(Box::new(tcp));
        }
        return Err(Error::new(
            ErrorKind::Tls,
            format!(
                "connecting to {info}: the server has TLS turned off, and sslmode={} requires it",
                info.sslmode.as_str()
            ),
        ));
    }
    let name = rustls_pki_types::ServerName::try_from(info.host.clone()).map_err(|e| {
        Error::invalid_input(format!(
            "{info}: host {:?} is not a valid TLS server name",
            info.host
        ))
        .with_source(e)
    })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| match super::tls::explain_tls_failure(&e, info) {
            Some((message, hint)) => {
                Error::new(ErrorKind::Tls, format!("connecting to {info}: {message}"))
                    .with_hint(hint)
            }
            None => Error::new(
                ErrorKind::Tls,
                format!("connecting to {info}: TLS handshake failed"),
            )
            .with_source(e),
        })?;
    Ok(Box::new(tls))
}

fn refused(info: &ConnInfo, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Connection, format!("connecting to {info}: {e}"))
        .with_hint("check that the host and port are right and the server is running and reachable")
}

fn need<'a>(password: Option<&'a [u8]>, info: &ConnInfo) -> Result<&'a [u8]> {
    password.ok_or_else(|| {
        Error::new(
            ErrorKind::Auth,
            format!("connecting to {info}: the server asks for a password and none was given"),
        )
    })
}

fn get_i32(body: &mut Bytes) -> Result<i32> {
    if body.len() < 4 {
        return Err(Error::new(
            ErrorKind::Connection,
            "the server sent a short authentication message",
        ));
    }
    Ok(body.get_i32())
}

/// An ErrorResponse as our error, classified by its SQLSTATE as
/// [`Error::postgres`] classifies a driver's.
fn server_error(body: &[u8]) -> Error {
    let (mut code, mut message, mut hint) = (String::new(), String::new(), None);
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            b'H' => hint = Some(text),
            _ => {}
        }
    }
    Error::server(&code, message, hint)
}
