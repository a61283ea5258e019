//! The proposal a peer attaches to every transaction, made from Fabric's
//! messages (generated in [`crate::proto::fabric`]).

use prost::Message;

pub use crate::proto::fabric::{common, msp, protos, queryresult};

use super::Creator;

/// `msp.SerializedIdentity{mspid, id_bytes = PEM}`, encoded.
pub fn serialized_identity(creator: &Creator) -> Vec<u8> {
    msp::SerializedIdentity {
        mspid: creator.msp_id.clone(),
        id_bytes: creator.cert_pem.clone(),
    }
    .encode_to_vec()
}

/// The SignedProposal a peer sends with INIT/TRANSACTION. Contract-API
/// chaincode reads the creator, channel and txid out of it; the signature is
/// not checked by chaincode, so it is left empty.
pub fn signed_proposal(
    creator: &Creator,
    channel: &str,
    txid: &str,
    nonce: &[u8],
    input: &protos::ChaincodeInput,
) -> protos::SignedProposal {
    let channel_header = common::ChannelHeader {
        r#type: common::HeaderType::EndorserTransaction as i32,
        version: 0,
        timestamp: Some(super::now()),
        channel_id: channel.to_string(),
        tx_id: txid.to_string(),
        epoch: 0,
        extension: Vec::new(),
        tls_cert_hash: Vec::new(),
    };
    let signature_header = common::SignatureHeader {
        creator: serialized_identity(creator),
        nonce: nonce.to_vec(),
    };
    let header = common::Header {
        channel_header: channel_header.encode_to_vec(),
        signature_header: signature_header.encode_to_vec(),
    };
    let payload = protos::ChaincodeProposalPayload {
        input: input.encode_to_vec(),
        transient_map: Default::default(),
    };
    let proposal = protos::Proposal {
        header: header.encode_to_vec(),
        payload: payload.encode_to_vec(),
        extension: Vec::new(),
    };
    protos::SignedProposal {
        proposal_bytes: proposal.encode_to_vec(),
        signature: Vec::new(),
    }
}
