//! The one mapping from launcher errors to gRPC status codes.

use tonic::{Code, Status};

use crate::launcher::Error;
use crate::runtime;

pub use crate::error_chain as chain;

pub fn to_status(error: &Error) -> Status {
    let code = match error {
        Error::Package(_)
        | Error::Naming { .. }
        | Error::Platform { .. }
        | Error::Tls { .. }
        | Error::BadEnv { .. } => Code::InvalidArgument,
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
        Error::Io { .. } => Code::Internal,
    };
    Status::new(code, chain(error))
}
