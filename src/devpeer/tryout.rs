//! `cclaunch try`: one command that proves a package works. It starts a
//! devpeer, builds and starts the package pointed at it (with fresh mutual-TLS
//! material when asked), waits until the chaincode registers, runs the
//! invocations in order, and stops the chaincode again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ca::DevCa;
use super::server::TlsSetup;
use super::{Creator, DevPeer, Response};
use futures_util::StreamExt;

use crate::launch::{self, Launch, LogQuery, Progress, StartRequest};
use crate::package::Package;
use crate::printable::{render, Sgr};

/// Lines of output shown when a chaincode dies before registering.
pub const FAILURE_TAIL: usize = 50;

#[derive(Debug, Clone)]
pub struct Invocation {
    pub args: Vec<String>,
    /// Sent as INIT rather than TRANSACTION.
    pub init: bool,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub tls: bool,
    pub channel: String,
    pub msp_id: String,
    pub startup_timeout: Duration,
    pub invoke_timeout: Duration,
    pub invocations: Vec<Invocation>,
    /// Leave the chaincode running at the end.
    pub keep: bool,
    /// Where devpeer listens, and so the peer address the chaincode dials:
    /// loopback for chaincode beside this machine; on a cluster, an address
    /// of this machine its nodes reach.
    pub listen: SocketAddr,
}

#[derive(Debug)]
pub struct Outcome {
    pub package_id: String,
    pub container: String,
    pub peer_address: SocketAddr,
    /// From `start` to REGISTER seen by devpeer.
    pub registered_after: Duration,
    /// Container start alone (create + TLS upload + start).
    pub start_took: Duration,
    pub responses: Vec<(Invocation, Result<Response, super::Error>)>,
}

impl Outcome {
    /// Every invocation answered with a success status.
    pub fn all_ok(&self) -> bool {
        self.responses
            .iter()
            .all(|(_, r)| matches!(r, Ok(r) if r.status < 400))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Launch(#[from] launch::Error),
    #[error(transparent)]
    DevPeer(#[from] super::Error),
    #[error(transparent)]
    Ca(#[from] super::ca::Error),
    /// Fabric says only the first line; the output is what users ask for.
    #[error("chaincode registration failed: container exited with {code}\n--- last {} lines of output of {container} (chaincode {package_id}) ---\n{}", output.len(), output.join("\n"))]
    ExitedBeforeRegistering {
        package_id: String,
        container: String,
        code: i64,
        output: Vec<String>,
    },
    #[error("chaincode {package_id} did not register within {} s (chaincode.startuptimeout); its container is still running", timeout.as_secs())]
    StartupTimeout {
        package_id: String,
        timeout: Duration,
    },
}

/// Runs the package through `launch` (a launcher on the engine, or a
/// sidecar), devpeer listening at `options.listen` in this process.
pub async fn run(
    launch: &dyn Launch,
    package: &Package,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Outcome, Error> {
    let ca = DevCa::new()?;
    // Transactions are proposed by an identity of the chaincode's own org.
    let admin = ca.client(&format!("Admin@{}", options.msp_id))?;
    let peer = DevPeer::new(Creator {
        msp_id: options.msp_id.clone(),
        cert_pem: admin.client_cert,
    });
    let tls = if options.tls {
        // The chaincode checks the peer's certificate against the address
        // it dials.
        let server = ca.server(&[options.listen.ip().to_string()])?;
        Some(TlsSetup {
            cert_pem: server.cert_pem,
            key_pem: server.key_pem,
            client_ca_pem: ca.ca_pem(),
        })
    } else {
        None
    };
    let listening = peer.listen(options.listen, tls).await?;
    let peer_address = listening.addr;

    let built = launch.build(package, progress).await?;
    let client_tls = if options.tls {
        Some(ca.client(&package.id)?)
    } else {
        None
    };
    let started_at = Instant::now();
    let started = launch
        .start(StartRequest {
            package_id: package.id.clone(),
            platform: Some(built.platform),
            peer_address: peer_address.to_string(),
            tls: client_tls,
            msp_id: Some(options.msp_id.clone()),
            extra_env: Vec::new(),
            image_of: None,
        })
        .await?;
    let start_took = started_at.elapsed();

    let registration = tokio::select! {
        _ = peer.wait_registered(&package.id) => Ok(started_at.elapsed()),
        exited = launch.wait(&package.id) => Err(exited),
        _ = tokio::time::sleep(options.startup_timeout) => {
            return Err(Error::StartupTimeout { package_id: package.id.clone(), timeout: options.startup_timeout });
        }
    };
    let registered_after = match registration {
        Ok(after) => after,
        Err(exited) => {
            let code = exited?;
            let output = last_lines(launch, &package.id).await;
            let _ = launch.stop(&package.id).await;
            return Err(Error::ExitedBeforeRegistering {
                package_id: package.id.clone(),
                container: started.container,
                code,
                output,
            });
        }
    };

    let mut responses = Vec::new();
    for invocation in &options.invocations {
        let args = invocation
            .args
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        let response = peer
            .invoke(
                &package.id,
                &options.channel,
                args,
                invocation.init,
                options.invoke_timeout,
            )
            .await;
        responses.push((invocation.clone(), response));
    }
    if !options.keep {
        launch.stop(&package.id).await?;
    }
    listening.shutdown().await;
    Ok(Outcome {
        package_id: package.id.clone(),
        container: started.container,
        peer_address,
        registered_after,
        start_took,
        responses,
    })
}

/// The last lines an exited chaincode wrote, as the mirror shows them; none
/// if its log cannot be read.
async fn last_lines(launch: &dyn Launch, package_id: &str) -> Vec<String> {
    let query = LogQuery {
        follow: false,
        tail: Some(FAILURE_TAIL as u64),
        since: 0,
    };
    let Ok(lines) = launch.logs(package_id, query).await else {
        return Vec::new();
    };
    lines
        .filter_map(|line| async move { line.ok() })
        .map(|line| render(&line.text, Sgr::Strip).into_owned())
        .collect()
        .await
}
