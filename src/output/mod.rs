//! Output in one home: a chaincode container's stdout and stderr split into
//! lines, mirrored into the logger `peer.chaincode.<container name>` (as a
//! Fabric peer names it), and where each mirror is (positions, engine timestamps, checkpoints) so a restarted
//! sidecar resumes with no line lost or repeated. The launcher uses it; the
//! runtime knows nothing of it.

#[cfg(test)]
pub mod captured;
pub mod checkpoint;
mod lines;
mod logger;
mod mirror;
mod position;

pub use lines::{Line, Lines};
pub use logger::ChaincodeLogger;
pub use mirror::mirror;
pub use position::{unix_now, Position, Skip};
