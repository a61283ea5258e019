//! The one mapping from launcher errors to gRPC status codes.

use tonic::{Code, Status};

use crate::launcher::Error;
use crate::runtime;

pub use crate::error_chain as chain;

/// Metadata on the UNAVAILABLE status that ends following calls when the
/// sidecar shuts down: the sidecar is going (a restart, mostly), the
/// chaincode is not, so a follower waits for the next sidecar.
pub const SHUTTING_DOWN: &str = "cclaunch-shutting-down";

pub fn shutting_down() -> Status {
    let mut status = Status::unavailable(
        "the cclaunch sidecar is shutting down; the chaincode keeps running: call again once a sidecar is back",
    );
    status.metadata_mut().insert(
        SHUTTING_DOWN,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

/// Whether `status` is [`shutting_down`]'s.
pub fn is_shutting_down(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.metadata().contains_key(SHUTTING_DOWN)
}

pub fn to_status(error: &Error) -> Status {
    let code = match error {
        Error::Package(_)
        | Error::PackageId(_)
        | Error::Naming { .. }
        | Error::Platform { .. }
        | Error::Tls { .. }
        | Error::BadEnv { .. }
        | Error::ReservedEnv { .. }
        | Error::PeerAddress { .. } => Code::InvalidArgument,
        Error::NotBuilt { .. } | Error::NoContainer { .. } => Code::NotFound,
        Error::NotOurs { .. } | Error::UnknownType { .. } => Code::FailedPrecondition,
        Error::BuildFailed { .. } | Error::SharedBuild { .. } => Code::Aborted,
        Error::BuildTimeout { .. } => Code::DeadlineExceeded,
        Error::BuildCancelled { .. } => Code::Cancelled,
        Error::Engine { source, .. } | Error::EngineOnly(source) => match source {
            runtime::Error::Unreachable { .. } => Code::Unavailable,
            runtime::Error::NotFound { .. } => Code::NotFound,
            runtime::Error::Timeout { .. } => Code::DeadlineExceeded,
            runtime::Error::BuildFailed { .. } | runtime::Error::ImageBuildFailed { .. } => {
                Code::Aborted
            }
            _ => Code::Internal,
        },
        Error::Served { .. } => Code::FailedPrecondition,
        Error::Io { .. } | Error::Lock { .. } => Code::Internal,
    };
    Status::new(code, chain(error))
}
