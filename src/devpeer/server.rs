//! The `protos.ChaincodeSupport` service and its listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status, Streaming};

use super::proto::protos::chaincode_message::Type;
use super::proto::protos::chaincode_support_server::{ChaincodeSupport, ChaincodeSupportServer};
use super::proto::protos::{ChaincodeId, ChaincodeMessage, DelState, GetState, PutState};
use super::{DevPeer, Error, Session};

const MAX_MESSAGE: usize = 100 << 20;

/// Mutual TLS for the listener: the server identity and the CA client
/// certificates must chain to (a chaincode without one is refused).
#[derive(Clone)]
pub struct TlsSetup {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

/// A running listener; dropping it stops serving.
pub struct Listening {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Stops accepting and lets open chaincode streams finish for up to
    /// five seconds, then cuts them.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(super) async fn listen(
    peer: DevPeer,
    addr: SocketAddr,
    tls: Option<TlsSetup>,
) -> Result<Listening, Error> {
    let (listener, addr) = super::bind(addr).await?;
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(tls.cert_pem, tls.key_pem))
            .client_ca_root(Certificate::from_pem(tls.client_ca_pem));
        builder = builder
            .tls_config(config)
            .map_err(|e| Error::Tls(e.to_string()))?;
    }
    let (tx, rx) = oneshot::channel::<()>();
    // Fabric's peer accepts chaincode messages up to 100 MiB; tonic's default is 4.
    let service = ChaincodeSupportServer::new(Service { peer })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let router = builder.add_service(service);
    let task = tokio::spawn(async move {
        let incoming = TcpListenerStream::new(listener);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await
        {
            tracing::error!(error = %e, "devpeer stopped serving");
        }
    });
    tracing::info!(%addr, "devpeer listening");
    Ok(Listening {
        addr,
        shutdown: Some(tx),
        task,
    })
}

struct Service {
    peer: DevPeer,
}

#[tonic::async_trait]
impl ChaincodeSupport for Service {
    type RegisterStream = ReceiverStream<Result<ChaincodeMessage, Status>>;

    async fn register(
        &self,
        request: Request<Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::RegisterStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let peer = self.peer.clone();
        tokio::spawn(async move { serve_chaincode(peer, inbound, tx).await });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

fn reply(kind: Type, payload: Vec<u8>, to: &ChaincodeMessage) -> ChaincodeMessage {
    ChaincodeMessage {
        r#type: kind as i32,
        timestamp: None,
        payload,
        txid: to.txid.clone(),
        proposal: None,
        chaincode_event: None,
        channel_id: to.channel_id.clone(),
    }
}

/// One chaincode's stream: the handshake, then its state requests and its
/// answers to our transactions, until it goes away.
async fn serve_chaincode(
    peer: DevPeer,
    mut inbound: Streaming<ChaincodeMessage>,
    tx: mpsc::Sender<Result<ChaincodeMessage, Status>>,
) {
    let first = match inbound.message().await {
        Ok(Some(message)) => message,
        _ => return,
    };
    let name = match handshake(&peer, &first) {
        Ok(name) => name,
        Err(reason) => {
            tracing::warn!(%reason, "devpeer refused a registration");
            let _ = tx
                .send(Ok(reply(Type::Error, reason.into_bytes(), &first)))
                .await;
            return;
        }
    };
    let session = Arc::new(Session {
        outbound: tx.clone(),
        pending: Default::default(),
    });
    peer.shared
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.clone(), session.clone());
    let registered = tx
        .send(Ok(reply(Type::Registered, Vec::new(), &first)))
        .await
        .is_ok()
        && tx
            .send(Ok(reply(Type::Ready, Vec::new(), &first)))
            .await
            .is_ok();
    if registered {
        tracing::info!(chaincode = %name, "chaincode registered with devpeer");
        peer.registered
            .send_modify(|names| names.push(name.clone()));
        while let Ok(Some(message)) = inbound.message().await {
            handle(&peer, &name, &session, message).await;
        }
    }
    tracing::info!(chaincode = %name, "chaincode stream ended");
    peer.shared
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&name);
    peer.registered
        .send_modify(|names| names.retain(|n| n != &name));
    // Waiters on this chaincode's transactions learn that it is gone.
    session
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// The first message must be REGISTER with a ChaincodeID naming a chaincode
/// not registered yet.
fn handshake(peer: &DevPeer, first: &ChaincodeMessage) -> Result<String, String> {
    if first.r#type != Type::Register as i32 {
        return Err(format!(
            "expected REGISTER as the first message, got {}",
            type_name(first.r#type)
        ));
    }
    let id = ChaincodeId::decode(first.payload.as_slice())
        .map_err(|e| format!("REGISTER payload is not a ChaincodeID: {e}"))?;
    if id.name.is_empty() {
        return Err("REGISTER names no chaincode".to_string());
    }
    let sessions = peer
        .shared
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if sessions.contains_key(&id.name) {
        return Err(format!(
            "duplicate chaincodeID: {} is already registered",
            id.name
        ));
    }
    Ok(id.name)
}

fn type_name(kind: i32) -> String {
    Type::try_from(kind)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| kind.to_string())
}

async fn handle(peer: &DevPeer, chaincode: &str, session: &Session, message: ChaincodeMessage) {
    let kind = Type::try_from(message.r#type).unwrap_or(Type::Undefined);
    let answer = match kind {
        Type::Completed | Type::Error => {
            let waiter = session
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&message.txid);
            if let Some(waiter) = waiter {
                let _ = waiter.send(message);
            }
            return;
        }
        Type::GetState => match GetState::decode(message.payload.as_slice()) {
            Ok(get) => {
                let state = peer.shared.state.lock().unwrap_or_else(|p| p.into_inner());
                let value = state
                    .get(&(message.channel_id.clone(), chaincode.to_string()))
                    .and_then(|world| world.get(&state_key(&get.collection, &get.key)))
                    .cloned()
                    .unwrap_or_default();
                reply(Type::Response, value, &message)
            }
            Err(e) => reply(
                Type::Error,
                format!("GET_STATE payload: {e}").into_bytes(),
                &message,
            ),
        },
        Type::PutState => match PutState::decode(message.payload.as_slice()) {
            Ok(put) => record_write(
                peer,
                &message,
                state_key(&put.collection, &put.key),
                Some(put.value),
            ),
            Err(e) => reply(
                Type::Error,
                format!("PUT_STATE payload: {e}").into_bytes(),
                &message,
            ),
        },
        Type::DelState => match DelState::decode(message.payload.as_slice()) {
            Ok(del) => record_write(peer, &message, state_key(&del.collection, &del.key), None),
            Err(e) => reply(
                Type::Error,
                format!("DEL_STATE payload: {e}").into_bytes(),
                &message,
            ),
        },
        other => reply(
            Type::Error,
            format!("devpeer does not support {}", other.as_str_name()).into_bytes(),
            &message,
        ),
    };
    let _ = session.outbound.send(Ok(answer)).await;
}

/// Private data collections get their own key space.
fn state_key(collection: &str, key: &str) -> String {
    if collection.is_empty() {
        key.to_string()
    } else {
        format!("\u{0}{collection}\u{0}{key}")
    }
}

fn record_write(
    peer: &DevPeer,
    message: &ChaincodeMessage,
    key: String,
    value: Option<Vec<u8>>,
) -> ChaincodeMessage {
    let mut writes = peer.shared.writes.lock().unwrap_or_else(|p| p.into_inner());
    match writes.get_mut(&message.txid) {
        Some(tx_writes) => {
            tx_writes.insert(key, value);
            reply(Type::Response, Vec::new(), message)
        }
        None => reply(
            Type::Error,
            format!("no transaction {} in progress", message.txid).into_bytes(),
            message,
        ),
    }
}
