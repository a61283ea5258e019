//! Package uploads (Build chunks) spooled to disk, bounded: each upload by
//! `cclaunch.package.maxPackageBytes` (compressed, as sent), the uploads on
//! disk at once by `maxConcurrentUploads`, and an upload that stalls by
//! `uploadIdleTimeout`. Files go in `<stateDir>/spool` (mode 0700), each
//! locked (flock) by the process that writes it before it takes its name;
//! a `serve` starting removes the unlocked ones a killed predecessor left
//! behind, and never one a live sidecar sharing the directory holds.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, Streaming};

use super::pb;
use crate::config::Config;

/// How long an upload over the cap waits for one under way to end before
/// it is refused.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Names of spool files, so a sweep touches nothing else in the directory.
const PREFIX: &str = "upload-";
/// A spool file's name until it is locked.
const NEW_PREFIX: &str = ".new-upload-";
/// A file still named [`NEW_PREFIX`] after this long was left by a process
/// killed between making and locking it.
const NEW_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{uploads} package uploads are under way, as many as cclaunch.package.maxConcurrentUploads allows; try again when one has ended")]
    Busy { uploads: usize },
    #[error("package is larger than {max} bytes (cclaunch.package.maxPackageBytes)")]
    TooLarge { max: u64 },
    #[error("no package bytes came for {} s (cclaunch.package.uploadIdleTimeout); upload abandoned", idle.as_secs_f64())]
    Idle { idle: Duration },
    #[error("after package bytes only more chunks may follow")]
    NotAChunk,
    #[error("the package upload broke off")]
    Broken(#[source] Status),
    #[error("{} is not a directory of this user's; refusing to spool packages there (cclaunch.stateDir)", dir.display())]
    Unsafe { dir: PathBuf },
    #[error("cannot spool the package in {}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn to_status(&self) -> Status {
        match self {
            Error::Busy { .. } => Status::resource_exhausted(self.to_string()),
            Error::TooLarge { .. } | Error::NotAChunk => Status::invalid_argument(self.to_string()),
            Error::Idle { .. } => Status::deadline_exceeded(self.to_string()),
            Error::Broken(status) => status.clone(),
            Error::Unsafe { .. } | Error::Io { .. } => Status::internal(crate::error_chain(self)),
        }
    }
}

/// Where uploads are spooled, and how many may be.
pub struct Spool {
    dir: PathBuf,
    slots: Arc<Semaphore>,
    max_uploads: usize,
    max_bytes: u64,
    idle: Duration,
}

/// An upload on disk, locked as this process's while it lives; removed
/// when dropped (after the build that reads it).
pub struct Spooled {
    path: tempfile::TempPath,
    _lock: File,
    _slot: OwnedSemaphorePermit,
}

impl Spooled {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Spool {
    /// The spool of `config` (under its state directory). Made and swept of
    /// what a killed `serve` left: a problem with it is logged, and uploads
    /// then fail saying why.
    pub fn open(config: &Config) -> Spool {
        let package = &config.cclaunch.package;
        let spool = Spool {
            dir: config.state_dir().join("spool"),
            slots: Arc::new(Semaphore::new(
                package.max_concurrent_uploads.min(Semaphore::MAX_PERMITS),
            )),
            max_uploads: package.max_concurrent_uploads,
            max_bytes: package.max_package_bytes,
            // Checked when the config was loaded.
            idle: config
                .upload_idle_timeout()
                .unwrap_or(Duration::from_secs(30)),
        };
        match spool.prepare().and_then(|()| spool.sweep()) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(dir = %spool.dir.display(), removed, "removed package uploads an earlier sidecar left behind")
            }
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "package uploads cannot be spooled")
            }
        }
        spool
    }

    /// Makes the directory (0700) or checks the one there is this user's.
    fn prepare(&self) -> Result<(), Error> {
        let io_err = |source| Error::Io {
            dir: self.dir.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err)?;
        let meta = std::fs::symlink_metadata(&self.dir).map_err(io_err)?;
        if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(Error::Unsafe {
                dir: self.dir.clone(),
            });
        }
        if meta.mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Removes the spool files no live process holds.
    fn sweep(&self) -> Result<usize, Error> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Io {
            dir: self.dir.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let left = if name.starts_with(PREFIX) {
                is_file
            } else if name.starts_with(NEW_PREFIX) {
                // Not locked yet, maybe by a sidecar making it right now.
                is_file
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > NEW_GRACE))
            } else {
                false
            };
            let path = entry.path();
            let unlocked = || File::open(&path).is_ok_and(|file| lock(&file).is_ok());
            if left && unlocked() && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Receives an upload whose first chunk is `first` into a spool file.
    pub async fn receive(
        &self,
        first: Vec<u8>,
        requests: &mut Streaming<pb::BuildRequest>,
    ) -> Result<Spooled, Error> {
        use pb::build_request::Source;
        let slot = tokio::time::timeout(SLOT_WAIT, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Error::Busy {
                uploads: self.max_uploads,
            })?;
        let io_err = |source| Error::Io {
            dir: self.dir.clone(),
            source,
        };
        self.prepare()?;
        // Locked first, named as a spool file second: a sweep never sees
        // a spool file that nobody holds but a live process.
        let new = tempfile::Builder::new()
            .prefix(NEW_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(io_err)?;
        lock(new.as_file()).map_err(io_err)?;
        let name = new
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(NEW_PREFIX))
            .map(|random| self.dir.join(format!("{PREFIX}{random}")))
            .ok_or_else(|| io_err(io::Error::other("unexpected temp file name")))?;
        let file = new.persist_noclobber(&name).map_err(|e| io_err(e.error))?;
        let spooled = Spooled {
            path: tempfile::TempPath::try_from_path(name).map_err(io_err)?,
            _lock: file.try_clone().map_err(io_err)?,
            _slot: slot,
        };
        let mut out = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        let mut chunk = first;
        loop {
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(Error::TooLarge {
                    max: self.max_bytes,
                });
            }
            out.write_all(&chunk).await.map_err(io_err)?;
            let next = tokio::time::timeout(self.idle, requests.message())
                .await
                .map_err(|_| Error::Idle { idle: self.idle })?
                .map_err(Error::Broken)?;
            chunk = match next.map(|r| r.source) {
                None => break,
                Some(Some(Source::Chunk(chunk))) => chunk,
                Some(_) => return Err(Error::NotAChunk),
            };
        }
        out.flush().await.map_err(io_err)?;
        Ok(spooled)
    }
}

/// An exclusive lock on `file`, without waiting.
fn lock(file: &File) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_unlocked_leftovers_only() {
        use std::time::SystemTime;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool {
            dir: dir.path().join("spool"),
            slots: Arc::new(Semaphore::new(1)),
            max_uploads: 1,
            max_bytes: 1,
            idle: Duration::from_secs(1),
        };
        spool.prepare().unwrap();
        let mode = std::fs::metadata(&spool.dir).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        let file = |name: &str, age: Duration| {
            let path = spool.dir.join(name);
            let f = File::create(&path).unwrap();
            f.set_modified(SystemTime::now() - age).unwrap();
            (path, f)
        };
        let minute = Duration::from_secs(61);
        let (left, _) = file("upload-left", Duration::ZERO);
        let (left_new, _) = file(".new-upload-left", minute);
        let (held, held_file) = file("upload-held", minute);
        // flock locks belong to an open file: the sweep's own open of the
        // held file cannot take it either.
        lock(&held_file).unwrap();
        let (fresh_new, _) = file(".new-upload-fresh", Duration::ZERO);
        let (other, _) = file("notes.txt", minute);
        assert_eq!(spool.sweep().unwrap(), 2);
        assert!(!left.exists() && !left_new.exists());
        assert!(held.exists() && fresh_new.exists() && other.exists());
    }
}
