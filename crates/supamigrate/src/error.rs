//! The library's error type.
//!
//! Every error carries a [`ErrorKind`] that tells the caller two things: whether
//! retrying the same operation can succeed ([`Error::is_retryable`]) and whether
//! the cause is the user's input ([`Error::is_bad_input`], exit code 2 in the CLI).
//! Most errors also carry a hint: one sentence on how to fix it.
//!
//! Messages never contain passwords: connection strings are always shown through
//! [`crate::connect::ConnInfo`]'s redacted `Display`.

use std::fmt;

/// What went wrong, coarsely: drives retry decisions and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's input is wrong: a malformed URL, an unknown option, a missing
    /// setting. Nothing was changed. Exit code 2.
    InvalidInput,
    /// The server refused our credentials (SQLSTATE class 28). Exit code 2.
    Auth,
    /// TLS could not be set up or the server's certificate was refused.
    Tls,
    /// The network or the server went away; retrying may succeed.
    Connection,
    /// A database statement failed for a reason retrying cannot fix.
    Database,
    /// A database statement failed for a transient reason (deadlock,
    /// serialization failure, server shutting down, out of resources).
    DatabaseTransient,
    /// A privilege is missing (SQLSTATE 42501).
    Permission,
    /// A local file or process operation failed.
    Io,
    /// An external tool (initdb, pg_ctl, pg_dump…) is missing or failed.
    Tool,
    /// The local sandbox is not in the state the command expects.
    Sandbox,
    /// An object store (S3, Supabase Storage) refused or failed a request.
    ObjectStore,
    /// An AWS API (RDS) refused or failed a request for a reason the
    /// message names.
    Cloud,
    /// The two sides differ (verify, a restore test): the report says how.
    Mismatch,
    /// An operation stopped part-way after it changed something the message
    /// names and says how to finish or undo (a cutover that failed once the
    /// source's writes had stopped). Exit code 1: never "nothing changed".
    Interrupted,
    /// A bug in supamigrate (a worker that panicked, a broken invariant).
    Internal,
}

/// Responses whose HTTP status an S3 error can report.
pub trait HttpStatus {
    /// The status code.
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The library's error: a kind, a message, an optional fix hint and the cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Bad input (exit code 2).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Adds a fix hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The message prefixed with what we were doing (`context: message`).
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// An error a server sent (SQLSTATE `code`, its message and hint), read
    /// without the driver (the copy's source sessions): classified as
    /// [`Error::postgres`] classifies the driver's.
    pub fn server(code: &str, message: String, hint: Option<String>) -> Self {
        let (kind, ours) = classify_sqlstate(code);
        let mut err = Self::new(kind, message);
        err.hint = ours.or(hint);
        err
    }

    /// The same error said again as `kind`, with a new message and hint
    /// (the cause kept).
    pub fn restated(
        mut self,
        kind: ErrorKind,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        self.kind = kind;
        self.message = message.into();
        self.hint = Some(hint.into());
        self
    }

    /// Adds the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// An S3 request error with what we were doing, classified: network and
    /// timeouts are retryable, refused credentials are bad input.
    pub fn s3<E, R>(context: impl Into<String>, e: aws_sdk_s3::error::SdkError<E, R>) -> Self
    where
        E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static + HttpStatus,
    {
        use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
        let (kind, detail) = match &e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                (ErrorKind::Connection, DisplayErrorContext(&e).to_string())
            }
            SdkError::ServiceError(s) => {
                let code = s
                    .err()
                    .code()
                    .unwrap_or("an answer without an S3 error code");
                let kind = match code {
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => {
                        ErrorKind::Auth
                    }
                    "InvalidStorageClass" | "InvalidArgument" | "InvalidBucketName" => {
                        ErrorKind::InvalidInput
                    }
                    "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
                        ErrorKind::Connection
                    }
                    _ => ErrorKind::ObjectStore,
                };
                let detail = match s.err().message() {
                    Some(m) => format!("{code} (HTTP {}): {m}", s.raw().status_code()),
                    None => format!("{code} (HTTP {})", s.raw().status_code()),
                };
                (kind, detail)
            }
            _ => (ErrorKind::ObjectStore, DisplayErrorContext(&e).to_string()),
        };
        let err = Error::new(kind, format!("{}: {detail}", context.into()));
        match kind {
            ErrorKind::Auth => err.with_hint(
                "check the S3 credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and their permissions",
            ),
            ErrorKind::InvalidInput => err.with_hint(
                "the S3 server refused a setting: check --storage-class (STANDARD, STANDARD_IA…) and the bucket prefix",
            ),
            _ => err,
        }
    }

    /// An AWS API error (RDS) with what we were doing, classified: network,
    /// throttling and AWS's own failures are retryable; refused credentials
    /// and permissions, quotas and refused parameters are bad input, each
    /// with what to change. `action` is the API action (`CreateDBInstance`).
    pub fn aws<E, R>(
        context: impl Into<String>,
        action: &str,
        e: aws_sdk_rds::error::SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error + aws_sdk_rds::error::ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static + HttpStatus,
    {
        use aws_sdk_rds::error::{DisplayErrorContext, SdkError};
        let context = context.into();
        let (code, message) = match &e {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                return Error::new(
                    ErrorKind::Connection,
                    format!("{context}: {}", DisplayErrorContext(&e)),
                )
                .with_hint(
                    "check the network and the RDS endpoint (AWS_REGION, AWS_ENDPOINT_URL_RDS)",
                );
            }
            SdkError::ServiceError(s) => (
                s.err()
                    .code()
                    .unwrap_or("an answer without an error code")
                    .to_string(),
                s.err().message().unwrap_or("").to_string(),
            ),
            _ => {
                return Error::new(
                    ErrorKind::Cloud,
                    format!("{context}: {}", DisplayErrorContext(&e)),
                )
            }
        };
        let (kind, hint) = classify_aws(action, &code, &message);
        let detail = if message.is_empty() {
            code
        } else {
            format!("{code}: {message}")
        };
        let err = Error::new(kind, format!("{context}: {detail}"));
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }

    /// A bug: an invariant that should hold did not (a worker panicked…).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message).with_hint(
            "this is a bug in supamigrate; please report it with the command and its output",
        )
    }

    /// An I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, context).with_source(source)
    }

    /// A PostgreSQL error, classified by SQLSTATE. `context` says what we were doing.
    pub fn postgres(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        let context = context.into();
        let (kind, hint) = classify_postgres(&source);
        let message = match source.as_db_error() {
            // The DbError's own Display carries severity, message, detail and hint.
            Some(db) => format!("{context}: {}", db.message()),
            None => context,
        };
        // Ours, else the server's own (it names the setting to change).
        let hint = hint.or_else(|| {
            source
                .as_db_error()
                .and_then(|d| d.hint())
                .map(str::to_string)
        });
        let mut err = Self::new(kind, message).with_source(source);
        err.hint = hint;
        err
    }

    /// The error with `mask` applied to its message; its cause is dropped
    /// when masking would change how the cause reads (it held a secret).
    pub fn masked(mut self, mask: &dyn Fn(&str) -> String) -> Self {
        self.message = mask(&self.message);
        if let Some(src) = &self.source {
            let text = src.to_string();
            if mask(&text) != text {
                self.source = None;
            }
        }
        self
    }

    /// The coarse kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (without cause or hint).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How to fix it, when we know.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection | ErrorKind::DatabaseTransient
        )
    }

    /// Whether the user's input is at fault (the CLI exits with code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self.kind, ErrorKind::InvalidInput | ErrorKind::Auth)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// AWS's parameter names and the options that set them.
const AWS_PARAMETERS: &[(&str, &str)] = &[
    ("DBInstanceClass", "--class"),
    ("instance class", "--class"),
    ("MaxAllocatedStorage", "--max-storage-gib"),
    ("AllocatedStorage", "--storage-gib"),
    ("EngineVersion", "--engine-version"),
    ("engine version", "--engine-version"),
    ("DBSubnetGroup", "--subnet-group"),
    ("VpcSecurityGroup", "--security-group"),
    ("security group", "--security-group"),
    ("BackupRetentionPeriod", "--backup-retention-days"),
    ("MasterUsername", "--master-user"),
    ("DBName", "--database"),
    ("MultiAZ", "--single-az"),
    ("storage", "--storage-gib"),
];

fn classify_aws(action: &str, code: &str, message: &str) -> (ErrorKind, Option<String>) {
    let named = AWS_PARAMETERS
        .iter()
        .find(|(p, _)| {
            let p = p.to_lowercase();
            message.to_lowercase().contains(&p) || code.to_lowercase().contains(&p.replace(' ', ""))
        })
        .map(|(p, flag)| format!("AWS refused {p}: change {flag}"));
    match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
        | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken"
        | "UnrecognizedClientException" | "AuthFailure" => (
            ErrorKind::Auth,
            Some(format!(
                "the AWS identity needs the IAM permission {} (and valid credentials): grant it, or use a profile that has it (AWS_PROFILE)",
                if action.contains(':') { action.to_string() } else { format!("rds:{action}") }
            )),
        ),
        c if c.ends_with("QuotaExceeded") || c.ends_with("QuotaExceededFault") => (
            ErrorKind::InvalidInput,
            Some("the account's RDS quota is used up: delete instances (or snapshots, parameter groups) it no longer needs, or ask for more in Service Quotas (Amazon RDS)".into()),
        ),
        "InsufficientDBInstanceCapacity" => (
            ErrorKind::InvalidInput,
            Some("the region has no capacity for this class now: change --class, or try again later".into()),
        ),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
        | "ServiceUnavailable" | "InternalFailure" | "InternalError" => (ErrorKind::Connection, None),
        "InvalidParameterValue" | "InvalidParameterCombination" | "MissingParameter"
        | "StorageTypeNotSupported" | "StorageTypeNotSupportedFault"
        | "DBSubnetGroupNotFoundFault" | "InvalidSubnet" | "InvalidVPCNetworkStateFault"
        | "DBParameterGroupNotFound" | "DBInstanceAlreadyExists"
        | "DBInstanceNotFound" | "DBSnapshotAlreadyExists" | "InvalidDBInstanceState"
        | "KMSKeyNotAccessibleFault" | "DBSecurityGroupNotFound" => (
            ErrorKind::InvalidInput,
            Some(named.unwrap_or_else(|| {
                "the message names the parameter AWS refused: change the option that sets it (`supamigrate rds create --help`)".into()
            })),
        ),
        _ => (ErrorKind::Cloud, named),
    }
}

fn classify_postgres(err: &tokio_postgres::Error) -> (ErrorKind, Option<String>) {
    let Some(code) = err.code() else {
        // No SQLSTATE: the connection failed or closed (retryable), or the
        // client refused the statement itself (a type mismatch: a bug, not retryable).
        let io = std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>());
        return if err.is_closed() || io {
            (ErrorKind::Connection, None)
        } else {
            (ErrorKind::Database, None)
        };
    };
    classify_sqlstate(code.code())
}

/// A SQLSTATE's kind and our hint for it.
fn classify_sqlstate(code: &str) -> (ErrorKind, Option<String>) {
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        ("28", _) => (
            ErrorKind::Auth,
            Some("check the user name and password in the connection string".into()),
        ),
        ("3D", _) => (
            ErrorKind::InvalidInput,
            Some("check the database name in the connection string".into()),
        ),
        ("42", "42501") => (
            ErrorKind::Permission,
            Some("the connecting role lacks a privilege this step needs".into()),
        ),
        // Out of shared memory: the lock table is full. The same statements
        // fill it again: not transient.
        ("53", "53200") => (
            ErrorKind::Database,
            Some("this server's lock table is too small for this many objects in one transaction: raise max_locks_per_transaction on it (on RDS, in the instance's DB parameter group; it takes a reboot)".into()),
        ),
        ("08", _) | ("53", _) | ("57", _) => (ErrorKind::DatabaseTransient, None),
        ("40", "40001") | ("40", "40P01") => (ErrorKind::DatabaseTransient, None),
        _ => (ErrorKind::Database, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_and_retryable_are_classified() {
        let cases = [
            (ErrorKind::InvalidInput, true, false),
            (ErrorKind::Auth, true, false),
            (ErrorKind::Tls, false, false),
            (ErrorKind::Connection, false, true),
            (ErrorKind::DatabaseTransient, false, true),
            (ErrorKind::Database, false, false),
            (ErrorKind::Io, false, false),
        ];
        for (kind, bad_input, retryable) in cases {
            let e = Error::new(kind, "x");
            assert_eq!(e.is_bad_input(), bad_input, "{kind:?}");
            assert_eq!(e.is_retryable(), retryable, "{kind:?}");
        }
    }

    #[test]
    fn hint_and_source_are_kept() {
        let e = Error::io("reading x", std::io::Error::other("boom")).with_hint("fix it");
        assert_eq!(e.hint(), Some("fix it"));
        assert_eq!(e.to_string(), "reading x");
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "boom");
    }

    #[test]
    fn aws_refusals_are_classified_with_the_flag_to_change() {
        // (code, message, kind, a part of the hint)
        let cases = [
            ("AccessDenied", "not authorized to perform: rds:CreateDBInstance", ErrorKind::Auth, "rds:CreateDBInstance"),
            ("InstanceQuotaExceeded", "DB Instance quota exceeded", ErrorKind::InvalidInput, "Service Quotas"),
            ("StorageQuotaExceeded", "storage quota", ErrorKind::InvalidInput, "Service Quotas"),
            ("InsufficientDBInstanceCapacity", "no capacity", ErrorKind::InvalidInput, "--class"),
            ("InvalidParameterValue", "Invalid DB Instance class: db.x9.huge", ErrorKind::InvalidInput, "--class"),
            ("InvalidParameterCombination", "RDS does not support creating a DB instance with the following combination: DBInstanceClass=db.t2.nano", ErrorKind::InvalidInput, "--class"),
            ("InvalidParameterValue", "Invalid storage size for engine name postgres and storage type gp3: 5", ErrorKind::InvalidInput, "--storage-gib"),
            ("InvalidParameterValue", "MaxAllocatedStorage must be greater than AllocatedStorage", ErrorKind::InvalidInput, "--max-storage-gib"),
            ("InvalidParameterCombination", "Cannot find version 17.99 for postgres", ErrorKind::InvalidInput, "change the option"),
            ("DBSubnetGroupNotFoundFault", "DBSubnetGroup nope not found", ErrorKind::InvalidInput, "--subnet-group"),
            ("Throttling", "Rate exceeded", ErrorKind::Connection, ""),
        ];
        for (code, message, kind, hint) in cases {
            let (k, h) = classify_aws("CreateDBInstance", code, message);
            assert_eq!(k, kind, "{code}: {message}");
            assert!(
                h.unwrap_or_default().contains(hint),
                "{code}: {message}: hint should name {hint}"
            );
        }
        assert!(Error::new(ErrorKind::Connection, "x").is_retryable());
    }
}
