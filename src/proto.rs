//! Generated protobuf code (compiled by build.rs from proto/): the sidecar's
//! own API and the Fabric subset devpeer speaks. A base layer, so the client
//! side of the API never imports the server.

#![allow(clippy::all, missing_docs)]

/// `cclaunch.v1`: the sidecar API (proto/cclaunch/v1/launcher.proto).
pub mod v1 {
    tonic::include_proto!("cclaunch.v1");
    /// For gRPC reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("cclaunch_v1_descriptor");
}

/// Fabric's messages (proto/fabric): the chaincode shim protocol and what a
/// proposal carries.
pub mod fabric {
    pub mod protos {
        tonic::include_proto!("protos");
    }
    pub mod common {
        tonic::include_proto!("common");
    }
    pub mod msp {
        tonic::include_proto!("msp");
    }
    pub mod queryresult {
        tonic::include_proto!("queryresult");
    }
}
