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
use serde::Deserialize;

use super::{said, Record, Target};
use crate::client::{self, Address, Remote};
use crate::launch::{self, Kind, Launch, Line, StartRequest, TlsMaterial};
use crate::printable::{render, Sgr};
use crate::signals::Signals;

/// The peer kills `run` 5 s after SIGTERM: the stop must fit in that.
const STOP_TIMEOUT: Duration = Duration::from_secs(4);

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

pub async fn run(target: &Target, bld: &Path, rundir: &Path) -> Result<i32> {
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
    let tls = TlsMaterial::from_parts(
        run.client_cert.into_bytes(),
        run.client_key.into_bytes(),
        run.root_cert.into_bytes(),
    )
    .with_context(|| format!("{}", path.display()))?;
    let address = super::address(target).with_context(|| format!("chaincode {id}"))?;
    // Listen before anything starts, so a SIGTERM during the start is not lost.
    let mut signals = Signals::new()
        .context("cannot handle SIGTERM and SIGINT")
        .with_context(|| format!("chaincode {id}"))?;
    let remote = super::connect(target)
        .await
        .with_context(|| format!("chaincode {id}"))?;

    let tls_on = tls.is_some();
    let request = StartRequest {
        package_id: id.clone(),
        platform: None,
        peer_address: run.peer_address.clone(),
        tls,
        msp_id: (!run.mspid.is_empty()).then_some(run.mspid),
        extra_env: Vec::new(),
        image_of: (!record.package_id.is_empty()).then(|| record.package_id.clone()),
    };
    let started = tokio::select! {
        started = remote.start(request) => started.map_err(|e| {
            anyhow::anyhow!("chaincode {id}: the sidecar at {address} could not start it: {}", said(&e))
        })?,
        name = signals.recv() => return Ok(stop(&remote, address, &id, name).await),
    };
    eprintln!(
        "cclaunch: started chaincode {id} in container {} ({}, image of {}, peer {}, TLS {})",
        started.container,
        started.platform,
        record.package_id,
        run.peer_address,
        if tls_on { "on" } else { "off" }
    );

    // The chaincode outlives a sidecar restart, and the peer keeps its hold
    // on it through this process: a lost sidecar is waited for, not fatal.
    let follower = PeerLog { id: &id, address };
    let code = tokio::select! {
        code = launch::follow(&remote, &id, &follower) => match code {
            Ok(code) => code,
            Err(e) if e.kind() == Kind::NotFound => anyhow::bail!(
                "chaincode {id}: its container is gone (removed by someone else?): {}",
                said(&e)
            ),
            Err(e) => anyhow::bail!(
                "chaincode {id}: the sidecar at {address} could not wait for it: {}",
                said(&e)
            ),
        },
        name = signals.recv() => return Ok(stop(&remote, address, &id, name).await),
    };
    eprintln!("cclaunch: chaincode {id} exited with code {code}");
    remove_exited(&remote, address, &id).await;
    Ok(i32::try_from(code)
        .ok()
        .filter(|c| (0..=255).contains(c))
        .unwrap_or(1))
}

/// The chaincode's output lines to stderr (the peer's log), and word of a
/// lost sidecar.
struct PeerLog<'a> {
    id: &'a str,
    address: &'a Address,
}

impl launch::Follower for PeerLog<'_> {
    /// Into the peer's log: shown as the sidecar logs it.
    fn line(&self, line: &Line) {
        eprintln!("{}", render(&line.text, Sgr::Strip));
    }

    fn lost(&self, error: &launch::Error) {
        let (id, address) = (self.id, self.address);
        match client::answer(error) {
            Some(status) if crate::wire::is_shutting_down(status) => eprintln!(
                "cclaunch: chaincode {id}: the sidecar at {address} is shutting down \
                 (restarting?); the chaincode keeps running, waiting for the sidecar to \
                 come back"
            ),
            answer => eprintln!(
                "cclaunch: chaincode {id}: lost the sidecar at {address} ({}: {}); \
                 the chaincode keeps running, waiting for the sidecar to come back",
                answer.map_or_else(|| format!("{:?}", error.kind()), |s| s.code().to_string()),
                said(error)
            ),
        }
    }
}

/// `run` is the chaincode's life: what is left once it exited goes with it
/// (an exited container; on a swarm, a service with the chaincode's TLS
/// key among its secrets). The peer relaunches through a new `run`, which
/// starts afresh anyway. A failure is reported, and the exit code kept.
async fn remove_exited(remote: &Remote, address: &Address, id: &str) {
    match tokio::time::timeout(STOP_TIMEOUT, remote.stop(id)).await {
        Ok(Ok(container)) => eprintln!("cclaunch: removed container {container} of chaincode {id}"),
        Ok(Err(e)) if e.kind() == Kind::NotFound => {}
        Ok(Err(e)) => eprintln!(
            "cclaunch: the sidecar at {address} could not remove the container of chaincode {id}: {}",
            said(&e)
        ),
        Err(_) => eprintln!(
            "cclaunch: the sidecar at {address} did not remove the container of chaincode {id} within {} s; it goes on removing it",
            STOP_TIMEOUT.as_secs()
        ),
    }
}

/// Stops the chaincode through the sidecar; the exit code for `run`.
async fn stop(remote: &Remote, address: &Address, id: &str, signal: &'static str) -> i32 {
    match tokio::time::timeout(STOP_TIMEOUT, remote.stop(id)).await {
        Ok(Ok(container)) => {
            eprintln!("cclaunch: {signal}: stopped chaincode {id} (container {container} removed)")
        }
        Ok(Err(e)) if e.kind() == Kind::NotFound => {
            eprintln!("cclaunch: {signal}: chaincode {id} had no container left to stop")
        }
        Ok(Err(e)) => eprintln!(
            "cclaunch: {signal}: the sidecar at {address} could not stop chaincode {id}: {}",
            said(&e)
        ),
        Err(_) => eprintln!(
            "cclaunch: {signal}: the sidecar at {address} did not stop chaincode {id} within {} s; it goes on stopping it",
            STOP_TIMEOUT.as_secs()
        ),
    }
    crate::signals::exit_code(signal)
}
