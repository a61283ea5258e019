//! cclaunch: a chaincode launcher that runs beside a Hyperledger Fabric peer.
//!
//! Data flows one way: a [`package::Package`] is validated, a
//! [`platform::Platform`] turns it into a build plan, the [`launcher::Launcher`]
//! drives a [`runtime::Engine`] to build and start it, and [`logs`] mirrors the
//! container's output. The CLI is a thin face over the launcher.

pub mod api;
pub mod cli;
pub mod config;
pub mod devpeer;
pub mod launcher;
pub mod logs;
pub mod metrics;
pub mod naming;
pub mod package;
pub mod platform;
pub mod runtime;
