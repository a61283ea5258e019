//! [`Launch`] through a running sidecar: each call one gRPC call, converted
//! by [`crate::wire`]; a status comes back as an error of its code's kind,
//! saying which sidecar answered.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use tonic::transport::Channel;

use super::{connect, Address, ClientTls, CONNECT_TIMEOUT};
use crate::launch::{
    self, Built, Chaincode, Collected, Health, Kind, Launch, LineStream, LogQuery, Progress,
    Selection, StartRequest, Started,
};
use crate::package::Package;
use crate::proto::v1::{self as pb, launcher_client::LauncherClient};
use crate::wire;

/// Package bytes per Build request.
const CHUNK: usize = 256 << 10;

/// A running sidecar, as the [`Launch`] interface.
#[derive(Clone)]
pub struct Remote {
    address: Address,
    client: LauncherClient<Channel>,
}

/// An error said by (or about) the sidecar at an address: `sidecar at ADDR`,
/// then what happened.
#[derive(Debug, thiserror::Error)]
#[error("sidecar at {address}")]
struct AtSidecar {
    address: Address,
    #[source]
    error: Box<dyn std::error::Error + Send + Sync>,
}

/// The connection failed on a call over mutual TLS: most likely the
/// sidecar refused this client's certificate.
#[derive(Debug, thiserror::Error)]
#[error("the connection failed (mutual TLS: is --server-cert signed by the CA the sidecar trusts, its --tls-client-ca?)")]
struct TlsRefused(#[source] Answer);

/// The sidecar's answer: its status message.
#[derive(Debug)]
struct Answer(tonic::Status);

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.message().is_empty() {
            f.write_str(self.0.code().description())
        } else {
            f.write_str(self.0.message())
        }
    }
}

impl std::error::Error for Answer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// The sidecar's status behind an error of a [`Remote`] call, if it answered
/// one (for faces that tell statuses apart, such as a sidecar shutting down).
pub fn answer(error: &launch::Error) -> Option<&tonic::Status> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error.get_ref());
    while let Some(e) = next {
        if let Some(Answer(status)) = e.downcast_ref::<Answer>() {
            return Some(status);
        }
        next = e.source();
    }
    None
}

/// Something a [`Remote`] call found wrong before or after asking.
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("cannot read the package {}", file.display())]
    Read {
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the build ended without an outcome")]
    NoOutcome,
    #[error("built {built} but {} is {package_id}", file.display())]
    OtherPackage {
        built: String,
        file: std::path::PathBuf,
        package_id: String,
    },
    #[error(transparent)]
    UnknownType(#[from] wire::UnknownType),
}

impl Remote {
    /// Connects to the sidecar at `address`; fails within
    /// [`CONNECT_TIMEOUT`] if nobody answers.
    pub async fn connect(
        address: Address,
        tls: Option<&ClientTls>,
    ) -> Result<Remote, super::Error> {
        let client = connect(&address, tls, CONNECT_TIMEOUT).await?;
        Ok(Remote { address, client })
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    fn client(&self) -> LauncherClient<Channel> {
        self.client.clone()
    }

    /// A status the sidecar answered (or the connection failed with).
    fn refused(&self, status: tonic::Status) -> launch::Error {
        let kind = wire::kind(status.code());
        // A status with a local source is the connection failing, not the
        // sidecar answering. Over mutual TLS a refused client certificate
        // shows up that way, on the first call rather than at connect.
        let dropped = std::error::Error::source(&status).is_some();
        let error: Box<dyn std::error::Error + Send + Sync> =
            if dropped && matches!(self.address, Address::Https(_)) {
                Box::new(TlsRefused(Answer(status)))
            } else {
                Box::new(Answer(status))
            };
        self.failed(kind, error)
    }

    fn failed(
        &self,
        kind: Kind,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> launch::Error {
        launch::Error::new(
            kind,
            AtSidecar {
                address: self.address.clone(),
                error: error.into(),
            },
        )
    }
}

#[async_trait]
impl Launch for Remote {
    /// Streams the package file to the sidecar's Build in chunks (the
    /// sidecar need not share this disk).
    async fn build(
        &self,
        package: &Package,
        progress: &dyn Progress,
    ) -> Result<Built, launch::Error> {
        use pb::{build_event::Event, build_request::Source, BuildRequest};
        let file = &package.file;
        let read = |source| Failed::Read {
            file: file.to_path_buf(),
            source,
        };
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| self.failed(Kind::InvalidArgument, read(e)))?;
        // A read error ends the stream early (the sidecar then refuses a
        // short package); it is kept to be the error reported.
        let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let requests = {
            let read_error = Arc::clone(&read_error);
            tokio_util::io::ReaderStream::with_capacity(opened, CHUNK).scan((), move |_, chunk| {
                std::future::ready(match chunk {
                    Ok(bytes) => Some(BuildRequest {
                        source: Some(Source::Chunk(bytes.to_vec())),
                    }),
                    Err(e) => {
                        *read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        None
                    }
                })
            })
        };
        let failed = |status| match read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => self.failed(Kind::Internal, read(e)),
            None => self.refused(status),
        };
        let mut events = self
            .client()
            .build(requests)
            .await
            .map_err(failed)?
            .into_inner();
        while let Some(event) = events.next().await {
            match event.map_err(failed)?.event {
                Some(Event::Output(line)) => progress.line(&line),
                Some(Event::Stage(stage)) => progress.stage(&stage.stage),
                Some(Event::Done(done)) => {
                    if done.package_id != package.id {
                        return Err(self.failed(
                            Kind::Internal,
                            Failed::OtherPackage {
                                built: done.package_id,
                                file: file.clone(),
                                package_id: package.id.clone(),
                            },
                        ));
                    }
                    return wire::from_built(done)
                        .map_err(|e| self.failed(Kind::Internal, Failed::from(e)));
                }
                None => {}
            }
        }
        Err(self.failed(Kind::Unavailable, Failed::NoOutcome))
    }

    async fn start(&self, request: StartRequest) -> Result<Started, launch::Error> {
        let started = self
            .client()
            .start(wire::start_request(request))
            .await
            .map_err(|s| self.refused(s))?
            .into_inner();
        wire::from_started(started).map_err(|e| self.failed(Kind::Internal, Failed::from(e)))
    }

    async fn stop(&self, package_id: &str) -> Result<String, launch::Error> {
        Ok(self
            .client()
            .stop(reference(package_id))
            .await
            .map_err(|s| self.refused(s))?
            .into_inner()
            .container)
    }

    async fn wait(&self, package_id: &str) -> Result<i64, launch::Error> {
        Ok(self
            .client()
            .wait(reference(package_id))
            .await
            .map_err(|s| self.refused(s))?
            .into_inner()
            .exit_code)
    }

    async fn logs(&self, package_id: &str, query: LogQuery) -> Result<LineStream, launch::Error> {
        let Some(request) = wire::logs_request(package_id, query) else {
            return Ok(Box::pin(futures_util::stream::empty()));
        };
        let lines = self
            .client()
            .logs(request)
            .await
            .map_err(|s| self.refused(s))?
            .into_inner();
        let remote = self.clone();
        Ok(Box::pin(lines.map(move |line| match line {
            Ok(line) => Ok(wire::from_line(line)),
            Err(status) => Err(remote.refused(status)),
        })))
    }

    async fn list(&self) -> Result<Vec<Chaincode>, launch::Error> {
        Ok(self
            .client()
            .list(pb::ListRequest {})
            .await
            .map_err(|s| self.refused(s))?
            .into_inner()
            .chaincodes
            .into_iter()
            .map(wire::from_chaincode)
            .collect())
    }

    async fn gc(&self, selection: &Selection) -> Result<Collected, launch::Error> {
        let collected = self
            .client()
            .gc(wire::gc_request(selection))
            .await
            .map_err(|s| self.refused(s))?
            .into_inner();
        Ok(wire::from_collected(collected))
    }

    async fn health(&self) -> Result<Health, launch::Error> {
        let health = self
            .client()
            .health(pb::HealthRequest {})
            .await
            .map_err(|s| self.refused(s))?
            .into_inner();
        Ok(Health {
            reached: format!("via sidecar at {}", self.address),
            engine: match health.engine.as_str() {
                "" => "Docker".to_string(),
                engine => engine.to_string(),
            },
            version: health.engine_version,
            api_version: health.api_version,
        })
    }
}

fn reference(package_id: &str) -> pb::ChaincodeRef {
    pb::ChaincodeRef {
        package_id: package_id.to_string(),
    }
}
