//! Start: image → running chaincode container, in the peer's order: remove
//! any previous container of the name, create with Fabric's args and env,
//! with the TLS files in place, attach the output (before start, so nothing
//! is missed), start. A failure after create removes the container again.

use std::sync::Arc;

use super::{engine, env, tls, Error, Launcher, StartRequest, Started};
use crate::platform::{PeerAddress, Platform};
use crate::runtime::{self, ContainerSpec, RemoveOnDrop};

impl Launcher {
    pub async fn start(&self, request: StartRequest) -> Result<Started, Error> {
        let began = std::time::Instant::now();
        let started = self.start_container(request).await?;
        crate::metrics::launch_finished(began.elapsed());
        Ok(started)
    }

    async fn start_container(&self, request: StartRequest) -> Result<Started, Error> {
        let package_id = request.package_id.as_str();
        // Every input is checked before any engine work; the id first, as
        // every later message names it.
        crate::ccid::check(package_id)?;
        let peer_address =
            PeerAddress::parse(&request.peer_address).map_err(|source| Error::PeerAddress {
                package_id: package_id.to_string(),
                source,
            })?;
        if let Some(tls) = &request.tls {
            tls.validate().map_err(|source| Error::Tls {
                package_id: package_id.to_string(),
                source,
            })?;
        }
        for entry in &request.extra_env {
            env::check_extra(entry).map_err(|refused| match refused {
                env::Refused::Malformed => Error::BadEnv {
                    package_id: package_id.to_string(),
                    entry: entry.clone(),
                },
                _ => Error::ReservedEnv {
                    package_id: package_id.to_string(),
                    key: entry
                        .split_once('=')
                        .map(|(k, _)| k)
                        .unwrap_or(entry)
                        .to_string(),
                    why: refused.why(),
                },
            })?;
        }
        let image = match &request.image_of {
            Some(built) => self.names(built)?.image,
            None => self.names(package_id)?.image,
        };
        let turn = self.turn(package_id).await?;
        let (names, existing) = self.own_container(package_id).await?;
        let platform = self.platform_of(&request, &image).await?;
        if existing.is_some() {
            tracing::info!(chaincode = package_id, container = %names.container, "removing previous container");
            self.remove_container(package_id, &names.container).await?;
        }

        let msp_id = request
            .msp_id
            .as_deref()
            .unwrap_or(&self.config.peer.local_msp_id);
        let image = self
            .published(
                package_id,
                &image,
                runtime::Push::IfNotPushed,
                &|_: &str| {},
            )
            .await?;
        let spec = ContainerSpec {
            name: names.container.clone(),
            image: image.clone(),
            args: platform.args(&peer_address),
            env: env::chaincode_env(
                package_id,
                &self.config.logging_env(),
                request.tls.is_some(),
                msp_id,
            )
            .into_iter()
            .chain(request.extra_env.iter().cloned())
            .collect(),
            labels: self.labels(package_id),
            host_config: self.config.vm.docker.host_config.clone(),
            files: request.tls.as_ref().map(tls::files).unwrap_or_default(),
        };
        tracing::debug!(chaincode = package_id, args = ?spec.args, env = ?spec.env, "creating container");
        // The TLS files go in with the create (on Docker: uploaded before
        // start, as the peer does).
        // The engine finishes a create even if this caller goes away midway,
        // so the call runs as its own task and a cancelled caller leaves a
        // reaper behind that removes what it made.
        let create = tokio::spawn({
            let runner = Arc::clone(&self.runner);
            async move { runner.create_container(&spec).await }
        });
        let pending = PendingCreate {
            handle: Some(create),
            container: names.container.clone(),
            runner: Arc::clone(&self.runner),
            turn: Some(turn),
        };
        let (id, _turn) = pending.finish().await;
        let id = id.map_err(engine(package_id))?;

        // From here on the container exists: if this call is cancelled before
        // it is started, the guard removes it (by id, so a newer container of
        // the same name is never hit).
        let guard = RemoveOnDrop::new(Arc::clone(&self.runner), &id);
        let prepared = self
            .attach_and_start(package_id, &names.container, &id)
            .await;
        guard.disarm();
        match prepared {
            Ok(()) => {
                tracing::info!(chaincode = package_id, container = %names.container, "started chaincode container");
                Ok(Started {
                    container: names.container,
                    platform,
                })
            }
            Err(e) => {
                // Leave nothing half-done: the container never ran.
                if let Err(cleanup) = self.runner.remove_container(&id).await {
                    tracing::warn!(chaincode = package_id, error = %cleanup, "could not remove the container after a failed start");
                }
                self.forget_checkpoint(&names.container).await;
                Err(e)
            }
        }
    }

    async fn attach_and_start(
        &self,
        package_id: &str,
        container: &str,
        container_id: &str,
    ) -> Result<(), Error> {
        if self.config.vm.docker.attach_stdout {
            let output = self
                .runner
                .attach(container)
                .await
                .map_err(engine(package_id))?;
            self.spawn_mirror(package_id, container, container_id, output, None);
        }
        self.runner
            .start_container(container)
            .await
            .map_err(engine(package_id))
    }

    /// The platform from the request, or from the type label Fabric puts on
    /// every chaincode image (so images a peer built start too).
    async fn platform_of(&self, request: &StartRequest, image: &str) -> Result<Platform, Error> {
        let package_id = request.package_id.as_str();
        let labels = self
            .engine
            .image_labels(image)
            .await
            .map_err(engine(package_id))?;
        let Some(labels) = labels else {
            return Err(Error::NotBuilt {
                package_id: package_id.to_string(),
                image: image.to_string(),
            });
        };
        if let Some(platform) = request.platform {
            return Ok(platform);
        }
        let kind = labels
            .get(runtime::LABEL_FABRIC_TYPE)
            .ok_or_else(|| Error::UnknownType {
                package_id: package_id.to_string(),
                image: image.to_string(),
            })?;
        Platform::from_type(kind).map_err(|source| Error::Platform {
            package_id: package_id.to_string(),
            source,
        })
    }
}

/// A create call in flight; dropped before it finishes, it removes the
/// container the engine goes on to make, holding the chaincode's turn until
/// then so the next start cannot collide with the late create.
struct PendingCreate {
    handle: Option<tokio::task::JoinHandle<Result<String, crate::runtime::Error>>>,
    container: String,
    runner: Arc<dyn crate::runtime::Runner>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

type Turn = Option<tokio::sync::OwnedMutexGuard<()>>;

impl PendingCreate {
    /// Waits for the create; the outcome, and the turn handed back. If this
    /// future is dropped first, the guard (moved into it) is dropped with the
    /// handle still set, and reaps.
    async fn finish(mut self) -> (Result<String, crate::runtime::Error>, Turn) {
        let outcome = match self.handle.as_mut() {
            Some(handle) => handle.await,
            None => unreachable!("a create is finished once: finish takes it by value"),
        };
        self.handle = None;
        let id = match outcome {
            Ok(id) => id,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Its task was dropped: the runtime is shutting down.
            Err(_) => Err(crate::runtime::Error::Cancelled {
                op: "create container",
                target: std::mem::take(&mut self.container),
            }),
        };
        (id, self.turn.take())
    }
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        let (Some(handle), Ok(runtime)) =
            (self.handle.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let runner = Arc::clone(&self.runner);
        let turn = self.turn.take();
        runtime.spawn(async move {
            if let Ok(Ok(id)) = handle.await {
                if let Err(e) = runner.remove_container(&id).await {
                    tracing::warn!(container = %id, error = %e, "could not remove the container of a cancelled start");
                }
            }
            drop(turn);
        });
    }
}
