//! The peer's extracted chaincode source (SRC) read back safely: turned into
//! a `code.tar.gz` again, or a subtree (META-INF) copied into BLD.
//!
//! The peer extracts code.tar.gz with Fabric's own untar, which makes nothing
//! but directories and fresh regular files. Anything else in SRC (a symlink, a
//! hard link, a device, a fifo, a socket) was not put there by the peer, so it
//! is refused, never followed. Entries are visited in name order and written
//! with fixed modes, times and owners: the same tree gives the same bytes, so
//! the same rebuilt package id and a reused image.

use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is a {kind}; the chaincode source may hold only regular files and directories", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{} is hard-linked ({links} links); the chaincode source may hold only files of its own", path.display())]
    HardLink { path: PathBuf, links: u64 },
    #[error("{} has a name that is not UTF-8", path.display())]
    NonUtf8 { path: PathBuf },
    #[error("{} changed while it was read (replaced by another file)", path.display())]
    Changed { path: PathBuf },
    #[error("{} holds more than {limit} bytes (cclaunch.package.maxUnpackedBytes)", root.display())]
    TooLarge { root: PathBuf, limit: u64 },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One checked entry of a tree, named relative to its root with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: String,
    pub path: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, executable: bool },
}

/// Every entry under `root` (not `root` itself), parents before children,
/// siblings in byte order of their names; refuses what the peer never makes.
pub fn walk(root: &Path) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    walk_dir(root, "", &mut entries)?;
    Ok(entries)
}

fn walk_dir(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<(), Error> {
    let read = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut children = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    children.sort();
    for name in children {
        let path = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| Error::NonUtf8 { path: path.clone() })?;
        let rel = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let kind = check(&path, &meta)?;
        out.push(Entry {
            rel: rel.clone(),
            path: path.clone(),
            kind,
        });
        if kind == Kind::Dir {
            walk_dir(&path, &format!("{rel}/"), out)?;
        }
    }
    Ok(())
}

fn check(path: &Path, meta: &Metadata) -> Result<Kind, Error> {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return Ok(Kind::Dir);
    }
    if file_type.is_file() {
        if meta.nlink() > 1 {
            return Err(Error::HardLink {
                path: path.to_path_buf(),
                links: meta.nlink(),
            });
        }
        return Ok(Kind::File {
            size: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        });
    }
    use std::os::unix::fs::FileTypeExt;
    let kind = if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    };
    Err(Error::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

/// Opens a file the walk checked, and makes sure it is still that file (a
/// path swapped for a symlink in between would open something else).
fn open_checked(entry: &Entry) -> Result<File, Error> {
    let read = |source| Error::Read {
        path: entry.path.clone(),
        source,
    };
    let before = std::fs::symlink_metadata(&entry.path).map_err(read)?;
    let file = File::open(&entry.path).map_err(read)?;
    let opened = file.metadata().map_err(read)?;
    if !before.file_type().is_file() || (before.dev(), before.ino()) != (opened.dev(), opened.ino())
    {
        return Err(Error::Changed {
            path: entry.path.clone(),
        });
    }
    Ok(file)
}

/// Writes the tree under `root` as a gzip'd tar into `out`, entries named
/// as in SRC (`src/...`, `META-INF/...`), which is how code.tar.gz held them.
/// Refuses a tree whose files add up to more than `limit` bytes.
pub fn code_tar_gz(root: &Path, limit: u64, out: &File) -> Result<(), Error> {
    let entries = walk(root)?;
    let total: u64 = entries
        .iter()
        .map(|e| match e.kind {
            Kind::File { size, .. } => size,
            Kind::Dir => 0,
        })
        .sum();
    if total > limit {
        return Err(Error::TooLarge {
            root: root.to_path_buf(),
            limit,
        });
    }
    let write = |source| Error::Write {
        path: root.to_path_buf(),
        source,
    };
    // The fastest level: the package goes once to the sidecar and into
    // the build container; gzip -1 of a 100 MB Go tree took a third of
    // the default level's time for an output 18% larger.
    let gz = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(256 << 10, out),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for entry in &entries {
        match entry.kind {
            Kind::Dir => {
                let mut header = header(tar::EntryType::Directory, 0, 0o755);
                tar.append_data(&mut header, format!("{}/", entry.rel), io::empty())
                    .map_err(write)?;
            }
            Kind::File { size, executable } => {
                let file = open_checked(entry)?;
                let mode = if executable { 0o755 } else { 0o644 };
                let mut header = header(tar::EntryType::Regular, size, mode);
                // The size was taken at walk time: a file that grew or shrank
                // since fails the append instead of writing a corrupt tar.
                tar.append_data(&mut header, &entry.rel, file)
                    .map_err(write)?;
            }
        }
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|mut buf| buf.flush())
        .map_err(write)
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = crate::package::file_header(size);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header
}

/// Copies the tree under `from` to `to` (created), with the same checks; the
/// number of files copied.
pub fn copy_tree(from: &Path, to: &Path) -> Result<u64, Error> {
    let entries = walk(from)?;
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(to).map_err(write(to))?;
    let mut files = 0;
    for entry in &entries {
        let target = to.join(&entry.rel);
        match entry.kind {
            Kind::Dir => std::fs::create_dir_all(&target).map_err(write(&target))?,
            Kind::File { executable, .. } => {
                let mut source = open_checked(entry)?;
                let mut copy = File::create(&target).map_err(write(&target))?;
                io::copy(&mut source, &mut copy).map_err(write(&target))?;
                let mode = if executable { 0o755 } else { 0o644 };
                copy.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(write(&target))?;
                files += 1;
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("src/lib")).unwrap();
        std::fs::create_dir_all(dir.join("META-INF/statedb")).unwrap();
        std::fs::write(dir.join("src/package.json"), "{}").unwrap();
        std::fs::write(dir.join("src/lib/a.js"), "a").unwrap();
        std::fs::write(dir.join("src/run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            dir.join("src/run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
    }

    fn entries_of(file: &File) -> Vec<(String, u32)> {
        use std::io::{Seek, SeekFrom};
        let mut file = file.try_clone().unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_tree_becomes_a_deterministic_code_tar_with_its_own_names() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path());
        tree(b.path());
        let (fa, fb) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        code_tar_gz(a.path(), 1 << 20, &fa).unwrap();
        code_tar_gz(b.path(), 1 << 20, &fb).unwrap();
        let read = |f: &File| {
            use std::io::{Read, Seek};
            let mut f = f.try_clone().unwrap();
            f.rewind().unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(read(&fa), read(&fb), "same tree, same bytes");
        assert_eq!(
            entries_of(&fa),
            [
                ("META-INF/".to_string(), 0o755),
                ("META-INF/statedb/".to_string(), 0o755),
                ("src/".to_string(), 0o755),
                ("src/lib/".to_string(), 0o755),
                ("src/lib/a.js".to_string(), 0o644),
                ("src/package.json".to_string(), 0o644),
                ("src/run.sh".to_string(), 0o755),
            ]
        );
    }

    #[test]
    fn links_and_special_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("src/lib/evil")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "src/lib/evil is a symlink; the chaincode source may hold only regular files and directories"
            ),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        std::fs::hard_link(dir.path().join("src/lib/a.js"), dir.path().join("src/b.js")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("is hard-linked (2 links)"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(err.to_string().contains("sock is a socket"), "{err}");
    }

    #[test]
    fn a_tree_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let err = code_tar_gz(dir.path(), 4, &tempfile::tempfile().unwrap()).unwrap_err();
        assert!(err.to_string().contains("more than 4 bytes"), "{err}");
    }

    #[test]
    fn copy_tree_copies_files_and_keeps_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let to = dir.path().join("out");
        assert_eq!(copy_tree(&dir.path().join("src"), &to).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(to.join("lib/a.js")).unwrap(), "a");
        let mode = std::fs::metadata(to.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
