//! devpeer: a stand-in for a Fabric peer's chaincode side, so a launched
//! chaincode can be seen to register and answer transactions without a whole
//! Fabric network.
//!
//! It serves `protos.ChaincodeSupport/Register` (wire-compatible with Fabric's
//! peer/chaincode_shim.proto): the REGISTER → REGISTERED → READY handshake,
//! INIT and TRANSACTION with a signed proposal whose creator is an X.509
//! identity, and GET_STATE / PUT_STATE / DEL_STATE against an in-memory world
//! state per channel and chaincode. Writes are kept per transaction and applied
//! only when the chaincode completes it successfully, as endorsement would.
//! It never sends KEEPALIVE (the Node shim exits on one).

pub mod ca;
pub mod control;
pub mod proto;
mod server;
pub mod tryout;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use proto::protos::chaincode_message::Type;
use proto::protos::{ChaincodeInput, ChaincodeMessage};

pub use server::{Listening, TlsSetup};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chaincode {0} is not registered with devpeer")]
    NotRegistered(String),
    #[error("chaincode {chaincode} did not answer transaction {txid} within {} s", timeout.as_secs())]
    Timeout {
        chaincode: String,
        txid: String,
        timeout: Duration,
    },
    #[error("chaincode {0} went away during the transaction")]
    Gone(String),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("devpeer TLS set-up failed: {0}")]
    Tls(String),
}

/// What the chaincode answered: Fabric's peer.Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: i32,
    pub message: String,
    pub payload: Vec<u8>,
}

/// The identity transactions are signed as (the proposal creator).
#[derive(Debug, Clone)]
pub struct Creator {
    pub msp_id: String,
    pub cert_pem: Vec<u8>,
}

/// A chaincode connection: where to send, and who waits for which txid.
struct Session {
    outbound: mpsc::Sender<Result<ChaincodeMessage, tonic::Status>>,
    pending: Mutex<HashMap<String, oneshot::Sender<ChaincodeMessage>>>,
}

type WorldState = BTreeMap<String, Vec<u8>>;
/// A transaction's pending writes: key → new value, or `None` for a delete.
type Writes = BTreeMap<String, Option<Vec<u8>>>;

#[derive(Default)]
struct Shared {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Committed state per (channel, chaincode).
    state: Mutex<HashMap<(String, String), WorldState>>,
    /// Writes of in-flight transactions per txid: key → Some(value) | None (delete).
    writes: Mutex<HashMap<String, Writes>>,
}

/// The devpeer: shared state plus a feed of registrations.
#[derive(Clone)]
pub struct DevPeer {
    shared: Arc<Shared>,
    registered: watch::Sender<Vec<String>>,
    creator: Creator,
}

impl DevPeer {
    pub fn new(creator: Creator) -> DevPeer {
        DevPeer {
            shared: Arc::default(),
            registered: watch::channel(Vec::new()).0,
            creator,
        }
    }

    /// Names of the chaincodes registered now, in registration order.
    pub fn registered(&self) -> Vec<String> {
        self.registered.borrow().clone()
    }

    /// Resolves when `name` has registered.
    pub async fn wait_registered(&self, name: &str) {
        let mut rx = self.registered.subscribe();
        let _ = rx.wait_for(|names| names.iter().any(|n| n == name)).await;
    }

    /// Sends INIT or TRANSACTION to a registered chaincode and waits for its
    /// COMPLETED (or ERROR) answer.
    pub async fn invoke(
        &self,
        chaincode: &str,
        channel: &str,
        args: Vec<Vec<u8>>,
        init: bool,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let session = {
            let sessions = self
                .shared
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            sessions.get(chaincode).cloned()
        }
        .ok_or_else(|| Error::NotRegistered(chaincode.to_string()))?;

        let (nonce, txid) = new_txid(&self.creator);
        let input = ChaincodeInput {
            args,
            decorations: HashMap::new(),
            is_init: init,
        };
        let message = ChaincodeMessage {
            r#type: if init { Type::Init } else { Type::Transaction } as i32,
            timestamp: Some(now()),
            payload: input.encode_to_vec(),
            txid: txid.clone(),
            proposal: Some(proto::signed_proposal(
                &self.creator,
                channel,
                &txid,
                &nonce,
                &input,
            )),
            chaincode_event: None,
            channel_id: channel.to_string(),
        };
        let (tx, rx) = oneshot::channel();
        session
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(txid.clone(), tx);
        self.shared
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(txid.clone(), Writes::new());
        let outcome = async {
            session
                .outbound
                .send(Ok(message))
                .await
                .map_err(|_| Error::Gone(chaincode.to_string()))?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(Error::Gone(chaincode.to_string())),
                Err(_) => Err(Error::Timeout {
                    chaincode: chaincode.to_string(),
                    txid: txid.clone(),
                    timeout,
                }),
            }
        }
        .await;
        let writes = self
            .shared
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&txid)
            .unwrap_or_default();
        session
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&txid);
        let answer = outcome?;

        let response = if answer.r#type == Type::Completed as i32 {
            let r = proto::protos::Response::decode(answer.payload.as_slice()).unwrap_or_default();
            Response {
                status: r.status,
                message: r.message,
                payload: r.payload,
            }
        } else {
            // ERROR: the payload is the error text.
            Response {
                status: 500,
                message: String::from_utf8_lossy(&answer.payload).into_owned(),
                payload: Vec::new(),
            }
        };
        if response.status < 400 {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            let world = state
                .entry((channel.to_string(), chaincode.to_string()))
                .or_default();
            for (key, value) in writes {
                match value {
                    Some(v) => world.insert(key, v),
                    None => world.remove(&key),
                };
            }
        }
        Ok(response)
    }

    /// Serves on `addr` (plain TCP, or mutual TLS when `tls` is given) until
    /// the returned handle is dropped or shut down.
    pub async fn listen(
        &self,
        addr: SocketAddr,
        tls: Option<server::TlsSetup>,
    ) -> Result<Listening, Error> {
        server::listen(self.clone(), addr, tls).await
    }
}

/// Binds a TCP listener; the address it got (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let fail = |source| Error::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    Ok((listener, bound))
}

fn now() -> prost_types::Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

/// Fabric's txid: hex(sha256(nonce ‖ creator)).
fn new_txid(creator: &Creator) -> (Vec<u8>, String) {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seed = format!(
        "{:?}-{}-{}",
        std::time::SystemTime::now(),
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let nonce = Sha256::digest(seed.as_bytes())[..24].to_vec();
    let identity = proto::serialized_identity(creator);
    let mut hasher = Sha256::new();
    hasher.update(&nonce);
    hasher.update(&identity);
    (nonce, hex::encode(hasher.finalize()))
}
