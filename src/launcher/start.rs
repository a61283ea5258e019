//! Start: image → running chaincode container, in the peer's order: remove
//! any previous container of the name, create with Fabric's args and env,
//! with the TLS files in place, attach the output (before start, so nothing
//! is missed), start. A failure after create removes the container again.

use std::sync::Arc;

use super::prepared::{self, Profile};
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
        let profile = Profile {
            peer_address,
            msp_id: request
                .msp_id
                .clone()
                .unwrap_or_else(|| self.config.peer.local_msp_id.clone()),
            tls: request.tls.is_some(),
            extra_env: request.extra_env.clone(),
            platform: request.platform,
            image_of: request.image_of.clone(),
        };
        let files = request.tls.as_ref().map(tls::files).unwrap_or_default();
        let turn = self.turn(package_id).await?;
        let (names, existing) = self.own_container(package_id).await?;
        let (platform, image_id) = self.platform_of(&request, &image).await?;
        let mut turn = Some(turn);
        if let Some(found) = existing {
            let mut gone = false;
            // A prepared container that is the one this start would create:
            // only the files go in (see `prepared`).
            if self.uses_prepared() {
                let spec = self.spec(
                    package_id,
                    &names.container,
                    image.clone(),
                    platform,
                    &profile,
                );
                match prepared::check(&found, &spec, &image_id) {
                    Ok(()) => {
                        let taken = prepared::Taken::new(Arc::clone(&self.runner), &found.id, turn);
                        match self
                            .start_prepared(package_id, &names.container, &found.id, &files, taken)
                            .await?
                        {
                            Prepared::Started => {
                                self.started_with(package_id, profile);
                                return Ok(Started {
                                    container: names.container,
                                    platform,
                                });
                            }
                            // Removed meanwhile (`gc`): created as always.
                            Prepared::Gone(back) => {
                                turn = back;
                                gone = true;
                            }
                        }
                    }
                    Err(mismatch) => {
                        if found.labels.contains_key(prepared::LABEL_PREPARED) {
                            tracing::info!(chaincode = package_id, container = %names.container, why = mismatch.what(), "replacing a prepared container that does not match this start");
                        }
                    }
                }
            }
            if !gone {
                tracing::info!(chaincode = package_id, container = %names.container, "removing previous container");
                self.remove_container(package_id, &names.container).await?;
            }
        }

        let image = self
            .published(
                package_id,
                &image,
                runtime::Push::IfNotPushed,
                &|_: &str| {},
            )
            .await?;
        let mut spec = self.spec(package_id, &names.container, image, platform, &profile);
        spec.files = files;
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
            turn,
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
                self.started_with(package_id, profile);
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

    /// The container this start creates, as [`prepared::chaincode_spec`]
    /// makes it with this launcher's labels.
    fn spec(
        &self,
        package_id: &str,
        container: &str,
        image: String,
        platform: Platform,
        profile: &Profile,
    ) -> ContainerSpec {
        prepared::chaincode_spec(
            &self.config,
            package_id,
            container,
            image,
            platform,
            profile,
            self.labels(package_id),
        )
    }

    /// Starts a prepared container: the files in, attach, start. A failure
    /// removes it, as a failed start removes a created one.
    async fn start_prepared(
        &self,
        package_id: &str,
        container: &str,
        id: &str,
        files: &[runtime::File],
        taken: prepared::Taken,
    ) -> Result<Prepared, Error> {
        let mut outcome = Ok(());
        if !files.is_empty() {
            if let Err(e) = self.runner.put_files(id, files).await {
                if e.is_not_found() && !self.exists(id).await {
                    return Ok(Prepared::Gone(taken.release()));
                }
                outcome = Err(engine(package_id)(e));
            }
        }
        if outcome.is_ok() {
            outcome = self.attach_and_start(package_id, container, id).await;
        }
        let _turn = taken.release();
        match outcome {
            Ok(()) => {
                tracing::info!(
                    chaincode = package_id,
                    container,
                    "started the prepared chaincode container"
                );
                Ok(Prepared::Started)
            }
            Err(e) => {
                if let Err(cleanup) = self.runner.remove_container(id).await {
                    tracing::warn!(chaincode = package_id, error = %cleanup, "could not remove the prepared container after a failed start");
                }
                self.forget_checkpoint(container).await;
                Err(e)
            }
        }
    }

    /// Whether the container (by id) is still there.
    async fn exists(&self, id: &str) -> bool {
        !matches!(self.runner.inspect_container(id).await, Ok(None))
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
    /// every chaincode image (so images a peer built start too); and the
    /// image's id.
    async fn platform_of(
        &self,
        request: &StartRequest,
        image: &str,
    ) -> Result<(Platform, String), Error> {
        let package_id = request.package_id.as_str();
        let found = self
            .engine
            .inspect_image(image)
            .await
            .map_err(engine(package_id))?;
        let Some(found) = found else {
            return Err(Error::NotBuilt {
                package_id: package_id.to_string(),
                image: image.to_string(),
            });
        };
        if let Some(platform) = request.platform {
            return Ok((platform, found.id));
        }
        let kind = found
            .labels
            .get(runtime::LABEL_FABRIC_TYPE)
            .ok_or_else(|| Error::UnknownType {
                package_id: package_id.to_string(),
                image: image.to_string(),
            })?;
        let platform = Platform::from_type(kind).map_err(|source| Error::Platform {
            package_id: package_id.to_string(),
            source,
        })?;
        Ok((platform, found.id))
    }
}

/// How a Start with a prepared container ended, when not in an error.
enum Prepared {
    Started,
    /// The container was gone before its files went in: the turn back, to
    /// create one as always.
    Gone(Turn),
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
