//! The client side of the sidecar API: how CLI verbs (`--server`), `try`,
//! the external builder and harnesses reach a running `cclaunch serve`, and
//! [`Remote`], the [`crate::launch::Launch`] interface over it.
//!
//! An address is `unix:/path` (or an absolute socket path), `https://host:port`
//! (mutual TLS: the client presents its certificate and checks the server's
//! against a CA) or `http://host:port` (plain TCP, which a sidecar serves only
//! with `--insecure-plain-tcp`).

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::proto::v1::launcher_client::LauncherClient;

mod remote;

pub use remote::{answer, Remote};

/// How long a client waits for the sidecar to answer its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming the sidecar's address (the external
/// builder reads it; a peer passes it on through `propagateEnvironment`).
pub const SERVER_ENV: &str = "CCLAUNCH_SERVER";

/// Where a sidecar listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Http(String),
    Https(String),
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, Error> {
        let bad = |why: &str| Error::BadAddress {
            address: text.to_string(),
            why: why.to_string(),
        };
        if let Some(path) = text.strip_prefix("unix://").or(text.strip_prefix("unix:")) {
            if !path.starts_with('/') {
                return Err(bad("a unix socket path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(text)));
        }
        let (tls, authority) = match (text.strip_prefix("https://"), text.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                return Err(bad("use unix:/path, http://host:port or https://host:port"))
            }
        };
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(bad("expected host:port after the scheme"));
        }
        Ok(if tls {
            Address::Https(authority.to_string())
        } else {
            Address::Http(authority.to_string())
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Http(authority) => write!(f, "http://{authority}"),
            Address::Https(authority) => write!(f, "https://{authority}"),
        }
    }
}

/// The client's side of mutual TLS, as PEM.
#[derive(Clone)]
pub struct ClientTls {
    /// The CA the server's certificate must chain to.
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    /// Never logged.
    pub key: Vec<u8>,
    /// The name to check the server's certificate for (default: the host).
    pub domain: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sidecar address {address:?}: {why}")]
    BadAddress { address: String, why: String },
    #[error("sidecar at {address}: https needs the client's TLS certificate, key and CA")]
    TlsMissing { address: Address },
    #[error("cannot reach the sidecar at {address}")]
    Connect {
        address: Address,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to the sidecar; fails fast (within `timeout`) if nobody answers.
pub async fn connect(
    address: &Address,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<LauncherClient<Channel>, Error> {
    let fail = |source| Error::Connect {
        address: address.clone(),
        source,
    };
    let channel = match address {
        Address::Unix(path) => {
            let path = path.clone();
            // The URI is a placeholder: the connector below ignores it.
            Endpoint::from_static("http://sidecar")
                .connect_timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
                .map_err(fail)?
        }
        Address::Http(authority) => Endpoint::from_shared(format!("http://{authority}"))
            .map_err(fail)?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(fail)?,
        Address::Https(authority) => {
            let tls = tls.ok_or_else(|| Error::TlsMissing {
                address: address.clone(),
            })?;
            let mut config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca))
                .identity(Identity::from_pem(&tls.cert, &tls.key));
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            Endpoint::from_shared(format!("https://{authority}"))
                .map_err(fail)?
                .connect_timeout(timeout)
                .tls_config(config)
                .map_err(fail)?
                .connect()
                .await
                .map_err(fail)?
        }
    };
    Ok(LauncherClient::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("unix:/run/cclaunch.sock").ok(),
            Some(Address::Unix("/run/cclaunch.sock".into()))
        );
        assert_eq!(
            Address::parse("unix:///run/cclaunch.sock").ok(),
            Some(Address::Unix("/run/cclaunch.sock".into()))
        );
        assert_eq!(
            Address::parse("/tmp/s.sock").ok(),
            Some(Address::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            Address::parse("https://10.0.0.2:7443").ok(),
            Some(Address::Https("10.0.0.2:7443".into()))
        );
        assert_eq!(
            Address::parse("http://127.0.0.1:7000/").ok(),
            Some(Address::Http("127.0.0.1:7000".into()))
        );
        for bad in [
            "unix:relative.sock",
            "127.0.0.1:7000",
            "https://host",
            "ftp://x:1",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
