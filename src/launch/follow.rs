//! Following a chaincode to its end: its output line by line and its exit
//! code, riding out a sidecar (or engine) that goes away meanwhile: the
//! chaincode outlives it, so it is waited for, not fatal.

use std::time::Duration;

use futures_util::StreamExt;

use super::{Error, Kind, Launch, Line, LogQuery};

/// How often a lost launcher is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// After the chaincode exited, how long its last lines may take to arrive.
const LAST_LINES: Duration = Duration::from_secs(10);

/// What a follower is told besides the exit code.
pub trait Follower: Send + Sync {
    /// A line of the chaincode's output.
    fn line(&self, line: &Line);
    /// The launcher stopped answering (the first failure of a run of them);
    /// it is tried again every second until it answers.
    fn lost(&self, _error: &Error) {}
}

/// Whether a failure may be the road to the launcher (a sidecar restarting,
/// an engine briefly away) rather than the request.
fn passing(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::NotFound | Kind::InvalidArgument | Kind::FailedPrecondition | Kind::PermissionDenied
    )
}

/// Follows `package_id` until its container exits: every output line to
/// `follower`, then the exit code once its last lines are out. A broken
/// output stream is followed again from the second it broke (a line of that
/// second may come twice).
pub async fn follow(
    launch: &dyn Launch,
    package_id: &str,
    follower: &dyn Follower,
) -> Result<i64, Error> {
    let output = async {
        let mut since = 0;
        loop {
            let query = LogQuery {
                follow: true,
                tail: None,
                since,
            };
            match launch.logs(package_id, query).await {
                Ok(mut lines) => loop {
                    match lines.next().await {
                        Some(Ok(line)) => follower.line(&line),
                        Some(Err(e)) if passing(e.kind()) => break,
                        Some(Err(_)) => return,
                        // The output ended with the container.
                        None => return,
                    }
                },
                Err(e) if !passing(e.kind()) => return,
                Err(_) => {}
            }
            since = i64::try_from(crate::output::unix_now().as_secs()).unwrap_or(i64::MAX);
            tokio::time::sleep(RETRY).await;
        }
    };
    let exit = async {
        let mut lost = false;
        loop {
            match launch.wait(package_id).await {
                Ok(code) => return Ok(code),
                Err(e) if !passing(e.kind()) => return Err(e),
                Err(e) => {
                    if !lost {
                        follower.lost(&e);
                        lost = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    };
    tokio::pin!(output, exit);
    let mut output_ended = false;
    let code = loop {
        tokio::select! {
            code = &mut exit => break code?,
            () = &mut output, if !output_ended => output_ended = true,
        }
    };
    if !output_ended {
        let _ = tokio::time::timeout(LAST_LINES, output).await;
    }
    launch.drain(package_id).await;
    Ok(code)
}
