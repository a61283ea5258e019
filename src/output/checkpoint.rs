//! Mirror checkpoints: how far each chaincode container's output has been
//! mirrored, kept on disk so a restarted sidecar resumes where the last one
//! stopped instead of logging every line again.
//!
//! Each peer (network id and peer id) has a directory of its own under
//! `stateDir/mirror`, so sidecars of several peers may share a stateDir; a
//! sidecar holds that directory's lock for its life, so two sidecars of one
//! peer never mirror (and checkpoint) the same containers.
//!
//! One small JSON file per container, replaced atomically (write, rename).
//! A writer task follows the mirror's position and writes it as soon as it
//! moves, at most every [`MIN_INTERVAL`]: a chaincode logging slowly is
//! checkpointed after every line; under a flood, a SIGKILL re-mirrors at most
//! the last interval's lines (more when a thousand mirrors wait their turn
//! for one of the few writes at once, or while the disk is slow to take a
//! write). A clean shutdown writes the exact position.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{unix_now, Position, Skip};

const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Checkpoint writes on the blocking pool at once, for all mirrors. Each
/// takes a thread while it runs; unbounded, a stall of the disk under a
/// thousand mirrors would grow the pool by hundreds of threads (and their
/// memory). A mirror waiting its turn writes its newest position then.
const WRITES_AT_ONCE: usize = 4;

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

/// The lock a sidecar holds on its peer's checkpoint directory.
const LOCK_FILE: &str = "serve.lock";

/// Where checkpoints live. The directory is made on first use; if it cannot
/// be written, that is said once and mirroring goes on without resuming.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    /// Where checkpoints of every peer lived before they had a directory
    /// each: one found there for a container of this peer is moved over.
    legacy: PathBuf,
    warned: Arc<AtomicBool>,
    /// Shared by every clone: see [`WRITES_AT_ONCE`].
    writing: Arc<tokio::sync::Semaphore>,
}

/// Another process holds a peer's lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("held by another process{}", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    Held { holder: Option<u32> },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A peer's lock, held until dropped (or the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl Checkpoints {
    pub fn new(state_dir: &Path, network_id: &str, peer_id: &str) -> Checkpoints {
        let legacy = state_dir.join("mirror");
        Checkpoints {
            dir: legacy.join(component(network_id)).join(component(peer_id)),
            legacy,
            warned: Arc::default(),
            writing: Arc::new(tokio::sync::Semaphore::new(WRITES_AT_ONCE)),
        }
    }

    /// The peer's lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Takes the peer's lock (flock, so a killed holder releases it) and
    /// writes this process's id into it for whoever finds it held.
    pub fn lock(&self) -> Result<Lock, LockError> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let mut file = self.open_lock()?;
        let mut tries = 0;
        while let Err(e) =
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            if e != rustix::io::Errno::WOULDBLOCK {
                return Err(std::io::Error::from(e).into());
            }
            // A CLI's probe holds it for an instant; a sidecar for good.
            tries += 1;
            if tries == 3 {
                return Err(LockError::Held {
                    holder: self.holder(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Lock { _file: file })
    }

    /// Whether another process holds the peer's lock (it is not kept).
    pub fn probe(&self) -> Result<(), LockError> {
        let file = match self.open_lock() {
            Ok(file) => file,
            // No lock file: nobody ever served this peer with this stateDir.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(LockError::Held {
                holder: self.holder(),
            }),
            Err(e) => Err(std::io::Error::from(e).into()),
        }
    }

    /// The process id the lock's holder wrote, if readable.
    fn holder(&self) -> Option<u32> {
        std::fs::read_to_string(self.lock_path())
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    fn open_lock(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.lock_path())
    }

    fn path(&self, container: &str) -> PathBuf {
        // Container names are [A-Za-z0-9_.-] (naming.rs), safe as file names.
        self.dir.join(format!("{container}.json"))
    }

    /// What the last mirror of this container (by id) logged.
    pub fn load(&self, container: &str, container_id: &str) -> Option<Skip> {
        let path = self.path(container);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(_) => self.adopt_legacy(container)?,
        };
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

    /// A checkpoint an older cclaunch wrote for this container (a container
    /// of this peer: the caller listed it by its labels), moved here.
    fn adopt_legacy(&self, container: &str) -> Option<Vec<u8>> {
        let old = self.legacy.join(format!("{container}.json"));
        let text = std::fs::read(&old).ok()?;
        let moved = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::rename(&old, self.path(container)));
        if let Err(e) = moved {
            tracing::debug!(container, error = %e, "could not move an old mirror checkpoint");
        }
        Some(text)
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
            let id = container_id.as_str();
            let mut written = *position.borrow_and_update();
            if fresh {
                written = checkpoints.write(&container, id, &mut position).await;
            }
            while position.changed().await.is_ok() {
                written = checkpoints.write(&container, id, &mut position).await;
                tokio::time::sleep(MIN_INTERVAL).await;
            }
            // The mirror ended: its last position may have come in meanwhile.
            if *position.borrow() != written {
                checkpoints.write(&container, id, &mut position).await;
            }
        })
    }

    /// Writes the newest `position` once a write may begin (the small file
    /// writes run on the blocking pool, [`WRITES_AT_ONCE`] at a time), so
    /// waiting for the turn costs no line, only writes; returns what it
    /// wrote.
    async fn write(
        &self,
        container: &str,
        container_id: &str,
        position: &mut watch::Receiver<Position>,
    ) -> Position {
        let (checkpoints, container, id) = (
            self.clone(),
            container.to_string(),
            container_id.to_string(),
        );
        self.in_turn(position, move |at| checkpoints.save(&container, &id, at))
            .await
    }

    /// Runs `save` with the newest position on the blocking pool once one
    /// of the [`WRITES_AT_ONCE`] turns is free, and holds the turn until it
    /// returns (a stalled disk keeps its thread: the turn bounds those).
    async fn in_turn(
        &self,
        position: &mut watch::Receiver<Position>,
        save: impl FnOnce(Position) + Send + 'static,
    ) -> Position {
        // Never closed.
        let _turn = self.writing.acquire().await;
        let at = *position.borrow_and_update();
        let _ = tokio::task::spawn_blocking(move || save(at)).await;
        at
    }

    /// Deletes this peer's checkpoints of containers that no longer exist.
    pub fn sweep(&self, existing: &std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(container) = name.strip_suffix(".json") else {
                continue; // the lock, a write in progress
            };
            if !existing.contains(container) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A network or peer id as one directory name: `[A-Za-z0-9_.-]` kept,
/// anything else (and a leading dot) as `%XX`, so distinct ids never share
/// a directory and none climbs out of it.
fn component(id: &str) -> String {
    let mut name = String::with_capacity(id.len().max(1));
    for (i, byte) in id.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || b"_-".contains(&byte) || (byte == b'.' && i > 0);
        if plain {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.is_empty() {
        name.push('%');
    }
    name
}

/// Replaces the checkpoint whole, unsynced (see
/// [`crate::atomic::write_unsynced`]): a checkpoint is written for every
/// line a slow chaincode logs, a thousand a second with a thousand
/// chaincodes, and it is for a sidecar restart, which the kernel's cache
/// outlives. After a host crash a checkpoint may be empty: it is ignored as
/// damaged, and that container's output is mirrored from then on.
fn write_atomically(path: &Path, record: &Record) -> std::io::Result<()> {
    let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    crate::atomic::write_unsynced(path, &json, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_checkpoint_belongs_to_one_container_id() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path(), "net", "peer0");
        let at = Position {
            stdout: 7,
            stderr: 2,
            first_stdout: Some(42),
            first_stderr: None,
        };
        let before = unix_now();
        checkpoints.save("dev-peer0-cc", "abc", at);
        let loaded = checkpoints.load("dev-peer0-cc", "abc").unwrap();
        assert_eq!(loaded.at, at);
        assert!(loaded.saved_at >= before && loaded.saved_at <= unix_now());
        assert_eq!(checkpoints.load("dev-peer0-cc", "newer"), None);
        // Written before first lines were fingerprinted: counts and time only.
        let file = dir.path().join("mirror/net/peer0/dev-peer0-cc.json");
        std::fs::write(
            &file,
            br#"{"container_id":"abc","stdout":7,"stderr":2,"saved_at_ns":5}"#,
        )
        .unwrap();
        let old = checkpoints.load("dev-peer0-cc", "abc").unwrap();
        assert_eq!((old.at.stdout, old.at.first_stdout), (7, None));
        std::fs::write(&file, b"{oops").unwrap();
        assert_eq!(checkpoints.load("dev-peer0-cc", "abc"), None);
        checkpoints.remove("dev-peer0-cc");
        assert!(!file.exists());
    }

    #[test]
    fn an_unscoped_checkpoint_of_an_older_cclaunch_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let old = Checkpoints {
            dir: dir.path().join("mirror"),
            legacy: dir.path().join("mirror"),
            warned: Arc::default(),
            writing: Arc::new(tokio::sync::Semaphore::new(WRITES_AT_ONCE)),
        };
        let at = Position {
            stdout: 3,
            stderr: 1,
            ..Position::default()
        };
        old.save("net-peer0-cc", "abc", at);
        let checkpoints = Checkpoints::new(dir.path(), "net", "peer0");
        assert_eq!(
            checkpoints.load("net-peer0-cc", "abc").map(|s| s.at),
            Some(at)
        );
        assert!(!dir.path().join("mirror/net-peer0-cc.json").exists());
        assert!(dir
            .path()
            .join("mirror/net/peer0/net-peer0-cc.json")
            .exists());
    }

    #[test]
    fn ids_become_one_safe_directory_name_each() {
        assert_eq!(component("peer0.org1-x_y"), "peer0.org1-x_y");
        assert_eq!(component(".."), "%2E.");
        assert_eq!(component("a/b"), "a%2Fb");
        assert_eq!(component("a%2Fb"), "a%252Fb");
        assert_eq!(component(""), "%");
    }

    #[test]
    fn a_peers_lock_is_held_once_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path(), "net", "peer0");
        assert!(checkpoints.probe().is_ok(), "never locked");
        let lock = checkpoints.lock().unwrap();
        // flock locks belong to the open file: a second open is another holder.
        let pid = std::process::id();
        assert!(matches!(checkpoints.lock(), Err(LockError::Held { holder: Some(p) }) if p == pid));
        assert!(matches!(checkpoints.probe(), Err(LockError::Held { .. })));
        let other = Checkpoints::new(dir.path(), "net", "peer1");
        let _other = other.lock().expect("another peer's lock is its own");
        drop(lock);
        assert!(checkpoints.probe().is_ok());
        assert!(checkpoints.lock().is_ok());
    }

    /// A stalled disk holds at most [`WRITES_AT_ONCE`] blocking threads,
    /// however many mirrors want to write; the others write their newest
    /// position once a turn frees.
    #[tokio::test]
    async fn stalled_writes_hold_at_most_a_few_threads() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path(), "net", "peer0");
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(released));
        let (saved, mut saves) = tokio::sync::mpsc::unbounded_channel();
        let mut senders = Vec::new();
        let mut writers = Vec::new();
        for mirror in 0..20u64 {
            let (tx, mut rx) = watch::channel(Position::default());
            senders.push(tx);
            let (checkpoints, running, most) = (checkpoints.clone(), running.clone(), most.clone());
            let (released, saved) = (released.clone(), saved.clone());
            writers.push(tokio::spawn(async move {
                checkpoints
                    .in_turn(&mut rx, move |at| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // The stalled disk: this thread waits to be let go.
                        let _ = released.lock().unwrap().recv();
                        running.fetch_sub(1, Ordering::SeqCst);
                        saved.send((mirror, at.stdout)).unwrap();
                    })
                    .await
            }));
        }
        // Every mirror moves on while the first writes are stalled.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while running.load(Ordering::SeqCst) < WRITES_AT_ONCE {
            assert!(tokio::time::Instant::now() < deadline, "no stalled writes");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(running.load(Ordering::SeqCst), WRITES_AT_ONCE);
        for (n, tx) in senders.iter().enumerate() {
            tx.send_replace(Position {
                stdout: 1000 + n as u64,
                ..Position::default()
            });
        }
        let mut written = HashMap::new();
        for _ in 0..20 {
            release.send(()).unwrap();
            let (mirror, stdout) = saves.recv().await.unwrap();
            written.insert(mirror, stdout);
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), WRITES_AT_ONCE);
        // The four that began before the move wrote the old position; every
        // mirror that waited its turn wrote the newest.
        let old = written.values().filter(|&&s| s == 0).count();
        assert_eq!(old, WRITES_AT_ONCE);
        for (mirror, stdout) in written {
            assert!(stdout == 0 || stdout == 1000 + mirror, "{mirror}: {stdout}");
        }
    }

    #[tokio::test]
    async fn the_writer_keeps_up_and_writes_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints::new(dir.path(), "net", "peer0");
        let (tx, rx) = watch::channel(Position::default());
        let writer = checkpoints.follow("c".into(), "id".into(), rx, true);
        for n in 1..=100 {
            tx.send_replace(Position {
                stdout: n,
                ..Position::default()
            });
        }
        drop(tx);
        writer.await.unwrap();
        assert_eq!(
            checkpoints.load("c", "id").map(|s| s.at),
            Some(Position {
                stdout: 100,
                ..Position::default()
            })
        );
    }
}
