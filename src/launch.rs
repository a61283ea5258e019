//! The one interface every face calls: [`Launch`], over domain types.
//!
//! Two implementations: the local [`crate::launcher::Launcher`] (on a
//! container engine) and the remote [`crate::client::Remote`] (a running
//! sidecar, over gRPC). The CLI verbs, `try` and the external builder call
//! only this, so a verb does the same thing, and prints the same, on either
//! road. Errors keep their [`Kind`] from where they arose to the gRPC status
//! and back.

mod follow;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;

use crate::package::Package;
use crate::platform::Platform;

pub use crate::runtime::Progress;
pub use follow::{follow, Follower};

/// What kind of failure an [`Error`] is: the gRPC codes that matter, so the
/// kind survives the trip through a sidecar unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request itself is wrong (a bad package, id, env entry, ...).
    InvalidArgument,
    NotFound,
    /// The state of things forbids it (a container not ours, a peer served
    /// by another sidecar).
    FailedPrecondition,
    PermissionDenied,
    /// It ran and failed (a build that exited non-zero).
    Aborted,
    Cancelled,
    DeadlineExceeded,
    ResourceExhausted,
    /// Try again later: the engine or the sidecar cannot be reached.
    Unavailable,
    Internal,
}

/// A failure of a [`Launch`] call: its kind, and the error itself (whose
/// message and causes are the message and causes of this one).
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    pub fn new(kind: Kind, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error {
            kind,
            error: error.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The error itself, to downcast to the implementation's own type.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// A chaincode's mutual-TLS client identity and the peer's root certificate,
/// all PEM. The key never appears in logs or debug output.
#[derive(Clone)]
pub struct TlsMaterial {
    pub client_cert: Vec<u8>,
    pub client_key: Vec<u8>,
    pub root_cert: Vec<u8>,
}

/// Some of the three TLS parts were given, not all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("give client_cert, client_key and root_cert together, or none for TLS off")]
pub struct TlsIncomplete;

impl TlsMaterial {
    /// The rule every face applies: all three parts (TLS on) or none (off).
    pub fn from_parts(
        client_cert: Vec<u8>,
        client_key: Vec<u8>,
        root_cert: Vec<u8>,
    ) -> Result<Option<TlsMaterial>, TlsIncomplete> {
        match (
            client_cert.is_empty(),
            client_key.is_empty(),
            root_cert.is_empty(),
        ) {
            (true, true, true) => Ok(None),
            (false, false, false) => Ok(Some(TlsMaterial {
                client_cert,
                client_key,
                root_cert,
            })),
            _ => Err(TlsIncomplete),
        }
    }

    /// Checks that each part is PEM, naming the part that is not.
    pub fn validate(&self) -> Result<(), NotPem> {
        for (part, pem) in [
            ("client certificate", &self.client_cert),
            ("client key", &self.client_key),
            ("root certificate", &self.root_cert),
        ] {
            let text = std::str::from_utf8(pem).map_err(|_| NotPem {
                part,
                why: "is not PEM text",
            })?;
            if !text.trim_start().starts_with("-----BEGIN ") || !text.contains("-----END ") {
                return Err(NotPem {
                    part,
                    why: "is not PEM (no -----BEGIN/-----END block)",
                });
            }
        }
        Ok(())
    }
}

/// A TLS part that is not PEM.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{part} {why}")]
pub struct NotPem {
    pub part: &'static str,
    why: &'static str,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field(
                "client_cert",
                &format_args!("{} bytes", self.client_cert.len()),
            )
            .field("client_key", &"<redacted>")
            .field("root_cert", &format_args!("{} bytes", self.root_cert.len()))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub package_id: String,
    /// Known when starting from a package; otherwise read from the image.
    pub platform: Option<Platform>,
    pub peer_address: String,
    /// `None` starts the chaincode with TLS off.
    pub tls: Option<TlsMaterial>,
    /// Defaults to `peer.localMspId`.
    pub msp_id: Option<String>,
    /// `KEY=value` entries added after the peer's own.
    pub extra_env: Vec<String>,
    /// Run the image built for this package id instead of `package_id`'s own
    /// (the external builder rebuilds the peer's package, so its id differs);
    /// `package_id` still names the container and the chaincode.
    pub image_of: Option<String>,
}

/// A build's outcome.
#[derive(Debug, Clone)]
pub struct Built {
    pub package_id: String,
    pub image: String,
    pub platform: Platform,
    /// The image already existed and was reused.
    pub reused: bool,
}

/// A start's outcome.
#[derive(Debug, Clone)]
pub struct Started {
    pub container: String,
    pub platform: Platform,
}

/// One of this peer's chaincode containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chaincode {
    pub package_id: String,
    pub container: String,
    /// The engine's word for it: created, running, exited, ...
    pub state: String,
    pub running: bool,
    pub exit_code: Option<i64>,
}

/// What to collect.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These package ids.
    Only(Vec<String>),
    /// Every package id except these.
    AllBut(Vec<String>),
    /// No chaincode: the engine's build caches (shared by every peer on it).
    Caches,
}

impl Selection {
    pub fn wants(&self, package_id: &str) -> bool {
        match self {
            Selection::Only(ids) => ids.iter().any(|id| id == package_id),
            Selection::AllBut(keep) => !keep.iter().any(|id| id == package_id),
            Selection::Caches => false,
        }
    }
}

/// What garbage collection removed.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    /// Build cache volumes.
    pub volumes: Vec<String>,
}

/// The engine's answer to a health check, and how it was reached.
#[derive(Debug, Clone)]
pub struct Health {
    /// The engine's endpoint, or the sidecar it was reached through.
    pub reached: String,
    /// What runs chaincode: "Docker" or "Kubernetes".
    pub engine: String,
    pub version: String,
    pub api_version: String,
}

/// Which of a chaincode's logged output to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogQuery {
    /// Keep streaming new output until the container exits.
    pub follow: bool,
    /// Only the last N lines; `None` = all.
    pub tail: Option<u64>,
    /// Only output logged at or after this Unix time (seconds); 0 = from the start.
    pub since: i64,
}

/// Which of a container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of a chaincode's output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub stream: Stream,
}

/// A chaincode's output, line by line; an error ends it.
pub type LineStream = Pin<Box<dyn futures_util::Stream<Item = Result<Line, Error>> + Send>>;

#[async_trait]
pub trait Launch: Send + Sync {
    /// Builds a package into its chaincode image, or reuses the image if it
    /// exists; stages and build output go to `progress`.
    async fn build(&self, package: &Package, progress: &dyn Progress) -> Result<Built, Error>;
    async fn start(&self, request: StartRequest) -> Result<Started, Error>;
    /// Stops and removes the chaincode's container; its name.
    async fn stop(&self, package_id: &str) -> Result<String, Error>;
    /// Blocks until the chaincode's container exits; its exit code.
    async fn wait(&self, package_id: &str) -> Result<i64, Error>;
    async fn logs(&self, package_id: &str, query: LogQuery) -> Result<LineStream, Error>;
    /// This peer's chaincode containers, by name.
    async fn list(&self) -> Result<Vec<Chaincode>, Error>;
    async fn gc(&self, selection: &Selection) -> Result<Collected, Error>;
    async fn health(&self) -> Result<Health, Error>;
    /// For calls that make or remove chaincode containers: refused when
    /// another process owns this peer's chaincode (a sidecar serving it,
    /// whose mirrors and checkpoints a second owner would compete with).
    fn exclusive(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Once the chaincode exited: lets the output this process mirrors of
    /// it reach its end (briefly). Nothing to do where another process
    /// (a sidecar) mirrors it.
    async fn drain(&self, _package_id: &str) {}
}
