//! Mirror checkpoints: how far each chaincode container's output has been
//! mirrored, kept on disk so a restarted sidecar resumes where the last one
//! stopped instead of logging every line again.
//!
//! One small JSON file per container, replaced atomically (write, rename).
//! A writer task follows the mirror's position and writes it as soon as it
//! moves, at most every [`MIN_INTERVAL`]: a chaincode logging slowly is
//! checkpointed after every line; under a flood, a SIGKILL re-mirrors at most
//! the last interval's lines. A clean shutdown writes the exact position.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::logs::{unix_now, Position, Skip};

const MIN_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The engine's container id: a newer container of the same name starts
    /// from nothing.
    container_id: String,
    #[serde(flatten)]
    position: Position,
    /// When this was written (ns since the Unix epoch): every line counted
    /// in `position` was logged by the engine before it.
    saved_at_ns: u64,
}

/// Where checkpoints live. The directory is made on first use; if it cannot
/// be written, that is said once and mirroring goes on without resuming.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    warned: Arc<AtomicBool>,
}

impl Checkpoints {
    pub fn new(state_dir: &Path) -> Checkpoints {
        Checkpoints {
            dir: state_dir.join("mirror"),
            warned: Arc::default(),
        }
    }

    fn path(&self, container: &str) -> PathBuf {
        // Container names are [A-Za-z0-9_.-] (naming.rs), safe as file names.
        self.dir.join(format!("{container}.json"))
    }

    /// What the last mirror of this container (by id) logged.
    pub fn load(&self, container: &str, container_id: &str) -> Option<Skip> {
        let text = std::fs::read(self.path(container)).ok()?;
        let record: Record = serde_json::from_slice(&text)
            .inspect_err(
                |e| tracing::warn!(container, error = %e, "ignoring a damaged mirror checkpoint"),
            )
            .ok()?;
        (record.container_id == container_id).then_some(Skip {
            at: record.position,
            saved_at: Duration::from_nanos(record.saved_at_ns),
        })
    }

    pub fn save(&self, container: &str, container_id: &str, position: Position) {
        let record = Record {
            container_id: container_id.to_string(),
            position,
            saved_at_ns: u64::try_from(unix_now().as_nanos()).unwrap_or(u64::MAX),
        };
        let path = self.path(container);
        let written = write_atomically(&path, &record).or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
            std::fs::create_dir_all(&self.dir)?;
            write_atomically(&path, &record)
        });
        if let Err(e) = written {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write mirror checkpoints (cclaunch.stateDir); after a restart, chaincode output is mirrored from the restart on");
            }
        }
    }

    pub fn remove(&self, container: &str) {
        let _ = std::fs::remove_file(self.path(container));
    }

    /// Writes the position each time it moves, until the mirror ends. A
    /// fresh mirror writes its start at once (so a restart right after it
    /// knows the output was mirrored from the first line); a resumed one
    /// leaves the loaded checkpoint as it is until it moves past it.
    pub fn follow(
        &self,
        container: String,
        container_id: String,
        mut position: watch::Receiver<Position>,
        fresh: bool,
    ) -> tokio::task::JoinHandle<()> {
        let checkpoints = self.clone();
        tokio::spawn(async move {
            let save = |at: Position| {
                let (checkpoints, container, id) =
                    (checkpoints.clone(), container.clone(), container_id.clone());
                // Small synced file writes: off the async workers.
                tokio::task::spawn_blocking(move || checkpoints.save(&container, &id, at))
            };
            let mut written = *position.borrow_and_update();
            if fresh {
                let _ = save(written).await;
            }
            while position.changed().await.is_ok() {
                written = *position.borrow_and_update();
                let _ = save(written).await;
                tokio::time::sleep(MIN_INTERVAL).await;
            }
            // The mirror ended: its last position may have come in meanwhile.
            let last = *position.borrow();
            if last != written {
                let _ = save(last).await;
            }
        })
    }

    /// Deletes the checkpoints of containers that no longer exist.
    pub fn sweep(&self, existing: &std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let container = name.strip_suffix(".json").unwrap_or(&name);
            if !existing.contains(container) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A temp file of its own (two writers never share one), synced, renamed
/// over the checkpoint: a reader sees the old record or the new, whole.
fn write_atomically(path: &Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
    temp.as_file().sync_data()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_belongs_to_one_container_id() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path());
        let at = Position {
            stdout: 7,
            stderr: 2,
        };
        let before = unix_now();
        checkpoints.save("dev-peer0-cc", "abc", at);
        let loaded = checkpoints.load("dev-peer0-cc", "abc").unwrap();
        assert_eq!(loaded.at, at);
        assert!(loaded.saved_at >= before && loaded.saved_at <= unix_now());
        assert_eq!(checkpoints.load("dev-peer0-cc", "newer"), None);
        std::fs::write(dir.path().join("mirror/dev-peer0-cc.json"), b"{oops").unwrap();
        assert_eq!(checkpoints.load("dev-peer0-cc", "abc"), None);
        checkpoints.remove("dev-peer0-cc");
        assert!(!dir.path().join("mirror/dev-peer0-cc.json").exists());
    }

    #[tokio::test]
    async fn the_writer_keeps_up_and_writes_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path());
        let (tx, rx) = watch::channel(Position::default());
        let writer = checkpoints.follow("c".into(), "id".into(), rx, true);
        for n in 1..=100 {
            tx.send_replace(Position {
                stdout: n,
                stderr: 0,
            });
        }
        drop(tx);
        writer.await.unwrap();
        assert_eq!(
            checkpoints.load("c", "id").map(|s| s.at),
            Some(Position {
                stdout: 100,
                stderr: 0
            })
        );
    }
}
