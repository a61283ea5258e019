//! Which road a verb takes: a launcher of the CLI's own on the engine, or a
//! running sidecar (`--server`). [`launch`] is the one place that picks;
//! verbs call the [`Launch`] interface it returns and print its answers the
//! same way whichever road was taken.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::ServerArgs;
use crate::client::{Address, ClientTls, Remote};
use crate::config::{Config, EngineKind, ImageSource};
use crate::launch::Launch;
use crate::launcher::Launcher;
use crate::runtime::docker::Docker;
use crate::runtime::kubernetes::Kubernetes;
use crate::runtime::swarm::{Swarm, SwarmOptions};

impl ServerArgs {
    /// The sidecar's address and, for https, this client's TLS material.
    pub(crate) fn target(&self) -> Result<Option<(Address, Option<ClientTls>)>> {
        let Some(text) = self.server.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let address = Address::parse(text)?;
        if !matches!(address, Address::Https(_)) {
            return Ok(Some((address, None)));
        }
        let (ca, cert, key) = match (&self.server_ca, &self.server_cert, &self.server_key) {
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            _ => {
                let missing: Vec<&str> = [
                    (self.server_ca.is_none(), "--server-ca"),
                    (self.server_cert.is_none(), "--server-cert"),
                    (self.server_key.is_none(), "--server-key"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                anyhow::bail!(
                    "sidecar at {address}: https is mutual TLS and needs {} (or CCLAUNCH_SERVER_CA, _CERT, _KEY)",
                    missing.join(", ")
                );
            }
        };
        let read = |what: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
        };
        let tls = ClientTls {
            ca: read("the sidecar's CA certificate (--server-ca)", ca)?,
            cert: read("the client certificate (--server-cert)", cert)?,
            key: read("the client key (--server-key)", key)?,
            domain: None,
        };
        Ok(Some((address, Some(tls))))
    }
}

/// The sidecar when `server` names one, else a launcher on the engine.
pub async fn launch(server: &ServerArgs, config: &Config) -> Result<Box<dyn Launch>> {
    match server.target()? {
        Some((address, tls)) => Ok(Box::new(Remote::connect(address, tls.as_ref()).await?)),
        None => Ok(Box::new(launcher(config.clone()).await?)),
    }
}

/// A launcher that builds on the engine `vm.endpoint` names and runs
/// chaincode there, or on the swarm or Kubernetes cluster
/// `cclaunch.engine.kind` asks for (its images pushed to `cclaunch.registry`,
/// unless Kubernetes nodes have them: `imageSource: node`).
pub async fn launcher(config: Config) -> Result<Launcher> {
    let timeouts = (&config.cclaunch.engine).into();
    let docker = Arc::new(
        Docker::connect(&config.vm.endpoint)
            .await?
            .with_timeouts(timeouts),
    );
    let mut registry = config.registry()?;
    let launcher = match config.cclaunch.engine.kind {
        EngineKind::Docker => Launcher::new(docker, config),
        EngineKind::Swarm => {
            let swarm = &config.cclaunch.swarm;
            let endpoint = match swarm.endpoint.as_str() {
                "" => config.vm.endpoint.as_str(),
                endpoint => endpoint,
            };
            let options = SwarmOptions {
                network: swarm.network.clone(),
                constraints: swarm.constraints.clone(),
                timeouts,
            };
            let runner = Arc::new(Swarm::connect(endpoint, options).await?);
            Launcher::with_runner(docker, runner, config)
        }
        EngineKind::Kubernetes => {
            let kubernetes = &config.cclaunch.engine.kubernetes;
            if kubernetes.image_source == ImageSource::Node {
                // The image is run by its name from the node's runtime.
                registry = None;
            }
            let runner = Arc::new(Kubernetes::connect((&config.cclaunch.engine).into()).await?);
            Launcher::with_runner(docker, runner, config)
        }
    };
    Ok(match registry {
        Some(registry) => launcher.with_registry(registry),
        None => launcher,
    })
}
