//! `bin/run BLD RUNDIR`: the chaincode's life, as long as it lives.
//!
//! Starts the image `build` recorded under the peer's chaincode id (so the
//! container, CORE_CHAINCODE_ID_NAME and the registration all carry the
//! peer's id), with the peer address, TLS material and MSP id of
//! RUNDIR/chaincode.json; mirrors the chaincode's output to stderr (which the
//! peer logs), and exits with the chaincode's exit code. The peer stops a
//! chaincode with SIGTERM (SIGKILL 5 s later): on SIGTERM or SIGINT the
//! chaincode is stopped through the sidecar first.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::signal::unix::{signal, SignalKind};
use tonic::transport::Channel;

use super::{Record, Sidecar};
use crate::client::Address;
use crate::printable::{render, Sgr};
use crate::proto::v1::{self as pb, launcher_client::LauncherClient};

/// The peer kills `run` 5 s after SIGTERM: the stop must fit in that.
const STOP_TIMEOUT: Duration = Duration::from_secs(4);
/// How often a lost sidecar is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Output still in flight once the chaincode exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// RUNDIR/chaincode.json, as the peer writes it (`externalbuilder.runConfig`).
#[derive(Debug, Deserialize)]
struct RunConfig {
    chaincode_id: String,
    peer_address: String,
    /// PEM; the three TLS fields are all empty when TLS is off.
    #[serde(default)]
    client_cert: String,
    #[serde(default)]
    client_key: String,
    #[serde(default)]
    root_cert: String,
    #[serde(default)]
    mspid: String,
}

pub async fn run(sidecar: &Sidecar, bld: &Path, rundir: &Path) -> Result<i32> {
    let record = Record::read(bld)?;
    if record.is_ccaas() {
        anyhow::bail!(
            "chaincode {}: ccaas chaincode runs as a service the peer dials (release wrote \
             chaincode/server/connection.json); there is nothing to run",
            record.label
        );
    }
    let path = rundir.join("chaincode.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let run: RunConfig = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not the peer's run config", path.display()))?;
    crate::ccid::check(&run.chaincode_id)
        .with_context(|| format!("{}: chaincode_id", path.display()))?;
    let id = run.chaincode_id.clone();
    let address = super::address(sidecar).with_context(|| format!("chaincode {id}"))?;
    // Listen before anything starts, so a SIGTERM during the start is not lost.
    let mut signals = Signals::new().with_context(|| format!("chaincode {id}"))?;
    let mut client = super::connect(sidecar)
        .await
        .with_context(|| format!("chaincode {id}"))?;

    let tls =
        !(run.client_cert.is_empty() && run.client_key.is_empty() && run.root_cert.is_empty());
    let request = pb::StartRequest {
        package_id: id.clone(),
        peer_address: run.peer_address.clone(),
        client_cert: run.client_cert.into_bytes(),
        client_key: run.client_key.into_bytes(),
        root_cert: run.root_cert.into_bytes(),
        msp_id: run.mspid,
        extra_env: Vec::new(),
        image_of: record.package_id.clone(),
    };
    let started = tokio::select! {
        started = client.start(request) => started.map_err(|s| {
            anyhow::anyhow!("chaincode {id}: the sidecar at {address} could not start it: {}", s.message())
        })?.into_inner(),
        name = signals.recv() => return Ok(stop(&mut client, address, &id, name).await),
    };
    eprintln!(
        "cclaunch: started chaincode {id} in container {} ({}, image of {}, peer {}, TLS {})",
        started.container,
        started.r#type,
        record.package_id,
        run.peer_address,
        if tls { "on" } else { "off" }
    );

    let mirror = tokio::spawn(mirror(client.clone(), id.clone()));
    // The chaincode outlives a sidecar restart, and the peer keeps its hold
    // on it through this process: a lost sidecar is waited for, not fatal.
    let mut lost = false;
    let code = loop {
        let waited = tokio::select! {
            waited = client.wait(pb::ChaincodeRef { package_id: id.clone() }) => waited,
            name = signals.recv() => {
                let code = stop(&mut client, address, &id, name).await;
                mirror.abort();
                return Ok(code);
            }
        };
        match waited {
            Ok(reply) => break reply.into_inner().exit_code,
            Err(status) if status.code() == tonic::Code::NotFound => {
                mirror.abort();
                anyhow::bail!(
                    "chaincode {id}: its container is gone (removed by someone else?): {}",
                    status.message()
                );
            }
            Err(status) => {
                if !lost && crate::api::status::is_shutting_down(&status) {
                    eprintln!(
                        "cclaunch: chaincode {id}: the sidecar at {address} is shutting down \
                         (restarting?); the chaincode keeps running, waiting for the sidecar to \
                         come back"
                    );
                } else if !lost {
                    eprintln!(
                        "cclaunch: chaincode {id}: lost the sidecar at {address} ({}: {}); \
                         the chaincode keeps running, waiting for the sidecar to come back",
                        status.code(),
                        status.message()
                    );
                }
                lost = true;
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    name = signals.recv() => {
                        let code = stop(&mut client, address, &id, name).await;
                        mirror.abort();
                        return Ok(code);
                    }
                }
            }
        }
    };
    // The log stream ends when the container has; wait a little for it.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, mirror).await;
    eprintln!("cclaunch: chaincode {id} exited with code {code}");
    Ok(i32::try_from(code)
        .ok()
        .filter(|c| (0..=255).contains(c))
        .unwrap_or(1))
}

/// Copies the chaincode's output lines to stderr until its container ends.
/// When the sidecar goes away it follows again once it is back, from the
/// second the stream broke (a line of that second may come twice).
async fn mirror(mut client: LauncherClient<Channel>, id: String) {
    let mut since = 0;
    loop {
        let request = pb::LogsRequest {
            package_id: id.clone(),
            follow: true,
            since,
            ..Default::default()
        };
        match client.logs(request).await {
            Ok(reply) => {
                let mut lines = reply.into_inner();
                loop {
                    match lines.next().await {
                        // Into the peer's log: shown as the sidecar logs it.
                        Some(Ok(line)) => eprintln!("{}", render(&line.line, Sgr::Strip)),
                        Some(Err(_)) => break, // the sidecar went away
                        None => return,        // the container's output ended
                    }
                }
            }
            Err(status) if status.code() == tonic::Code::NotFound => return,
            Err(_) => {}
        }
        since = i64::try_from(crate::logs::unix_now().as_secs()).unwrap_or(i64::MAX);
        tokio::time::sleep(RETRY).await;
    }
}

/// Stops the chaincode through the sidecar; the exit code for `run`.
async fn stop(
    client: &mut LauncherClient<Channel>,
    address: &Address,
    id: &str,
    signal: &'static str,
) -> i32 {
    let stopped = tokio::time::timeout(
        STOP_TIMEOUT,
        client.stop(pb::ChaincodeRef {
            package_id: id.to_string(),
        }),
    )
    .await;
    match stopped {
        Ok(Ok(reply)) => eprintln!(
            "cclaunch: {signal}: stopped chaincode {id} (container {} removed)",
            reply.into_inner().container
        ),
        Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
            eprintln!("cclaunch: {signal}: chaincode {id} had no container left to stop")
        }
        Ok(Err(status)) => eprintln!(
            "cclaunch: {signal}: the sidecar at {address} could not stop chaincode {id}: {}",
            status.message()
        ),
        Err(_) => eprintln!(
            "cclaunch: {signal}: the sidecar at {address} did not stop chaincode {id} within {} s",
            STOP_TIMEOUT.as_secs()
        ),
    }
    match signal {
        "SIGINT" => 130,
        _ => 143,
    }
}

/// SIGTERM and SIGINT, registered up front.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    /// The name of the first signal that arrives.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
