//! cclaunch: a chaincode launcher that runs beside a Hyperledger Fabric peer.
//!
//! Data flows one way: a [`package::Package`] is validated, a
//! [`platform::Platform`] turns it into a build plan, the [`launcher::Launcher`]
//! drives a [`runtime::Engine`] to build and start it, and [`logs`] mirrors the
//! container's output. The CLI is a thin face over the launcher.

pub mod api;
pub mod builder;
pub mod cli;
pub mod client;
pub mod config;
pub mod devpeer;
pub mod launcher;
pub mod logs;
pub mod metrics;
pub mod naming;
pub mod package;
pub mod platform;
pub mod runtime;

/// An error and its causes on one line, each once (`a: b: c`), for messages
/// that cross a boundary as text (gRPC status, shared build outcomes).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
