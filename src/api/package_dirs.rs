//! `Build{path}`: a package file on the sidecar's own disk, opened only
//! inside the directories of `cclaunch.api.packageDirs` (none by default:
//! then path builds are refused) and only when it is a regular file.
//!
//! The sidecar can read what its callers may not (the engine socket's
//! neighbours, keys), so a refusal never says whether a path outside those
//! directories exists, and never quotes a file. The path is canonicalised
//! (symlinks resolved) and checked; the file is opened without following a
//! final symlink and without blocking (a FIFO or a device is refused, never
//! waited on), and the opened descriptor itself is checked: a regular file,
//! still inside. The package is then read through that descriptor
//! (`/proc/self/fd/N`), so a path swapped after the checks changes nothing.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::excerpt::quote;

/// The configuration key, as messages name it.
pub const KEY: &str = "cclaunch.api.packageDirs";

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "Build by path is off: this sidecar has no {KEY}; send the package bytes (chunks) instead"
    )]
    Off,
    /// Outside the directories, missing, or unreadable as a path: one
    /// answer for all, so nothing outside is revealed.
    #[error(
        "package path {} is not a file inside the directories of {KEY}",
        quote(path)
    )]
    Outside { path: String },
    #[error("package path {} is a {kind}, not a regular file", quote(path))]
    NotAFile { path: String, kind: &'static str },
    #[error("cannot open package path {}", quote(path))]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A package file opened for a build; the descriptor stays open (and the
/// package is read through it) as long as this lives.
#[derive(Debug)]
pub struct Opened {
    file: File,
}

impl Opened {
    /// The path that reads this very file, whatever happens to its name.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// Opens `requested` if it is a regular file inside one of `dirs`.
/// Blocking (file system calls): run it off the async threads.
pub fn open(dirs: &[String], requested: &str) -> Result<Opened, Refused> {
    if dirs.is_empty() {
        return Err(Refused::Off);
    }
    let outside = || Refused::Outside {
        path: requested.to_string(),
    };
    let path = Path::new(requested);
    // Nothing outside is even looked at: the path must name a place inside
    // a directory as configured (or as it resolves), with no `..`.
    let lexical = path.is_absolute() && !path.components().any(|c| c == Component::ParentDir);
    let canonical_dirs: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect();
    let named_inside = dirs
        .iter()
        .map(PathBuf::from)
        .chain(canonical_dirs.iter().cloned())
        .any(|d| path.starts_with(&d) && path != d);
    if !lexical || !named_inside {
        return Err(outside());
    }
    let resolved = std::fs::canonicalize(path).map_err(|_| outside())?;
    let inside = |p: &Path| canonical_dirs.iter().any(|d| p.starts_with(d) && p != d);
    if !inside(&resolved) {
        return Err(outside());
    }
    let not_a_file = |kind| Refused::NotAFile {
        path: requested.to_string(),
        kind,
    };
    let kind = std::fs::symlink_metadata(&resolved)
        .map_err(|_| outside())?
        .file_type();
    if !kind.is_file() {
        return Err(not_a_file(kind_name(&kind)));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&resolved)
        .map_err(|source| match source.raw_os_error() {
            // The name became a symlink after the checks.
            Some(libc::ELOOP) => outside(),
            _ => Refused::Open {
                path: requested.to_string(),
                source,
            },
        })?;
    let opened = Opened { file };
    // What was opened, not what the name says now.
    let kind = opened
        .file
        .metadata()
        .map_err(|source| Refused::Open {
            path: requested.to_string(),
            source,
        })?
        .file_type();
    if !kind.is_file() {
        return Err(not_a_file(kind_name(&kind)));
    }
    let real = std::fs::read_link(opened.path()).map_err(|_| outside())?;
    if !inside(&real) {
        return Err(outside());
    }
    Ok(opened)
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else if kind.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree {
        _root: tempfile::TempDir,
        allowed: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("packages");
        let outside = root.path().join("private");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(allowed.join("cc.tar.gz"), "package").unwrap();
        std::fs::write(allowed.join("sub/cc.tar.gz"), "package").unwrap();
        std::fs::write(outside.join("key.pem"), "SECRET").unwrap();
        std::os::unix::fs::symlink(outside.join("key.pem"), allowed.join("link.tar.gz")).unwrap();
        std::os::unix::fs::symlink(&outside, allowed.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(allowed.join("cc.tar.gz"), allowed.join("alias.tar.gz"))
            .unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(allowed.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        Tree {
            _root: root,
            allowed,
            outside,
        }
    }

    fn text(p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn regular_files_inside_open_and_read_through_their_descriptor() {
        let t = tree();
        let dirs = [text(&t.allowed)];
        for name in ["cc.tar.gz", "sub/cc.tar.gz", "alias.tar.gz", "./cc.tar.gz"] {
            let opened = open(&dirs, &text(&t.allowed.join(name))).expect(name);
            assert_eq!(std::fs::read(opened.path()).unwrap(), b"package", "{name}");
        }
    }

    #[test]
    fn nothing_outside_is_opened_and_missing_and_present_look_alike() {
        let t = tree();
        let dirs = [text(&t.allowed)];
        let refusal = |p: String| match open(&dirs, &p) {
            Err(Refused::Outside { path }) => assert_eq!(path, p),
            other => panic!("{p}: {other:?}"),
        };
        refusal(text(&t.outside.join("key.pem")));
        refusal(text(&t.outside.join("missing.pem")));
        refusal(text(&t.allowed.join("../private/key.pem")));
        refusal(text(&t.allowed.join("link.tar.gz")));
        refusal(text(&t.allowed.join("dirlink/key.pem")));
        refusal(text(&t.allowed.join("missing.tar.gz")));
        refusal(text(&t.allowed));
        refusal("cc.tar.gz".into());
        refusal("/etc/passwd".into());
        let present = open(&dirs, &text(&t.outside.join("key.pem"))).unwrap_err();
        let missing = open(&dirs, &text(&t.outside.join("nokey.pem"))).unwrap_err();
        assert_eq!(
            present.to_string().replace("key.pem", "X"),
            missing.to_string().replace("nokey.pem", "X")
        );
    }

    #[test]
    fn a_fifo_or_directory_inside_is_refused_without_blocking() {
        let t = tree();
        let dirs = [text(&t.allowed)];
        for (name, kind) in [("fifo", "FIFO"), ("sub", "directory")] {
            match open(&dirs, &text(&t.allowed.join(name))) {
                Err(Refused::NotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(open(&[], "/x"), Err(Refused::Off)));
    }
}
