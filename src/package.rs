//! Fabric chaincode packages: validation, package id, and the code stream.
//!
//! A package is a gzip'd tar holding `metadata.json` and `code.tar.gz`. It is read
//! as a stream, once, hashing the file's bytes (the package id is
//! `label:sha256(file)`) while both tar layers are checked entry by entry. Nothing
//! is written out and memory stays flat whatever the package's size: a gzip bomb
//! is stopped when its inflated size passes the cap, having only been counted,
//! and a long-name or PAX header is refused by its size before it is read.
//!
//! Both layers are read the way their real readers will read them, Go's
//! `compress/gzip` and `archive/tar` ([`archive`], [`gzip`]): the outer one
//! as the peer does (up to the end of the tar, nothing after it), the code as
//! the engine does when the build container receives it (the whole gzip
//! stream, which must end cleanly). Errors name entries through
//! [`crate::excerpt::quote`] and never quote the package's other bytes.

mod archive;
mod gzip;
mod metadata;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::excerpt::quote;

pub use archive::SPECIAL_MAX as HEADER_MAX;

pub const METADATA_FILE: &str = "metadata.json";
pub const CODE_FILE: &str = "code.tar.gz";

/// Fabric's `persistence.LabelRegexp` (`[[:alnum:]]` is ASCII in both engines).
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[[:alnum:]][[:alnum:]_.+-]*$").expect("static regex is valid"));

/// metadata.json is a few hundred bytes; anything far larger is not one.
const METADATA_MAX: u64 = 1 << 20;
/// go.mod is read to tell toolchain drift apart from other build failures.
const GO_MOD_MAX: u64 = 64 << 10;
const READ_BUF: usize = 256 << 10;

/// `metadata.json`, as the peer CLI writes it. `type` is kept as typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
}

impl Metadata {
    /// Parses `metadata.json`; errors never quote the file (see [`metadata`]).
    pub fn from_json(text: &[u8]) -> Result<Metadata, MetadataError> {
        metadata::parse(text)
    }
}

pub use metadata::Error as MetadataError;

/// Bounds applied while reading a package.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Inflated bytes allowed in each tar layer (outer package, inner code).
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_unpacked_bytes: 1 << 30,
        }
    }
}

/// A package that passed validation.
#[derive(Debug, Clone)]
pub struct Package {
    pub file: PathBuf,
    /// `label:sha256hex` of the whole file.
    pub id: String,
    pub metadata: Metadata,
    /// Size of the file on disk.
    pub size: u64,
    /// Inflated size of the code tar.
    pub code_unpacked: u64,
    /// Number of regular files in the code tar.
    pub code_files: u64,
    /// `src/go.mod`, if the code has one (for Go toolchain checks).
    pub go_mod: Option<String>,
    /// The bounds it was validated under, kept for reading its code again.
    limits: Limits,
}

/// Which tar layer a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Package,
    Code,
}

impl Layer {
    fn allowed(self) -> &'static str {
        match self {
            Layer::Package => "only regular files are allowed",
            Layer::Code => "only regular files and directories are allowed",
        }
    }

    /// Who reads this layer after cclaunch.
    fn reader(self) -> &'static str {
        match self {
            Layer::Package => "peer",
            Layer::Code => "engine",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Package => f.write_str("package"),
            Layer::Code => f.write_str(CODE_FILE),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read chaincode package {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("chaincode package {} is invalid: {problem}", file.display())]
    Invalid { file: PathBuf, problem: Problem },
}

/// What makes a package invalid. Each message names the entry (bounded and
/// escaped) and the rule, never other bytes of the package.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{layer} is not gzip data")]
    NotGzip { layer: Layer },
    #[error("{layer} has {bytes} bytes of trailing data after its gzip stream (Go's gzip reader, which the {} uses, refuses them)", .layer.reader())]
    TrailingData { layer: Layer, bytes: u64 },
    #[error("{layer} is corrupt or truncated: {source}")]
    Corrupt {
        layer: Layer,
        #[source]
        source: io::Error,
    },
    #[error("{layer} is not a valid tar archive: {source}")]
    Tar {
        layer: Layer,
        #[source]
        source: archive::Error,
    },
    #[error("{layer} inflates to more than {limit} bytes (limit cclaunch.package.maxUnpackedBytes); refusing it as a possible archive bomb")]
    TooLarge { layer: Layer, limit: u64 },
    #[error("{layer} has an entry whose name is not valid UTF-8: {}", quote(.name))]
    NonUtf8Name { layer: Layer, name: String },
    #[error("{layer} entry {} has an absolute path", quote(.name))]
    AbsolutePath { layer: Layer, name: String },
    #[error("{layer} entry {} has a '..' path component", quote(.name))]
    DotDot { layer: Layer, name: String },
    #[error("{layer} entry {} is a {kind}; {}", quote(.name), .layer.allowed())]
    NotAFile {
        layer: Layer,
        name: String,
        kind: &'static str,
    },
    #[error("{layer} has a duplicate entry {}", quote(.name))]
    Duplicate { layer: Layer, name: String },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("metadata.json is not valid: {0}")]
    Metadata(#[source] metadata::Error),
    #[error("metadata.json is larger than {METADATA_MAX} bytes")]
    MetadataTooLarge,
    #[error("invalid label {}: a label must match ^[[:alnum:]][[:alnum:]_.+-]*$", quote(.0))]
    Label(String),
}

impl Package {
    /// Reads and validates the package at `file`.
    pub fn open(file: impl AsRef<Path>, limits: Limits) -> Result<Package, Error> {
        let file = file.as_ref();
        let invalid = |problem| Error::Invalid {
            file: file.to_path_buf(),
            problem,
        };
        let handle = File::open(file).map_err(|source| Error::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
        let mut hashing = Hashing::new(BufReader::with_capacity(READ_BUF, handle));
        let scan = scan_package(&mut hashing, limits).map_err(invalid)?;
        // The id covers every byte of the file, trailing ones included.
        io::copy(&mut hashing, &mut io::sink()).map_err(|source| Error::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let digest = hashing.finish();
        Ok(Package {
            file: file.to_path_buf(),
            id: format!("{}:{}", scan.metadata.label, digest),
            metadata: scan.metadata,
            size,
            code_unpacked: scan.code.unpacked,
            code_files: scan.code.files,
            go_mod: scan.code.go_mod,
            limits,
        })
    }

    /// Calls `sink` with the raw `code.tar.gz` bytes, in order, in chunks, and
    /// checks at the end that the file still hashes to this package's id, so a
    /// file swapped after validation fails instead of being built.
    pub fn read_code(&self, mut sink: impl FnMut(&[u8]) -> io::Result<()>) -> Result<(), Error> {
        let read_err = |source| Error::Read {
            file: self.file.clone(),
            source,
        };
        let changed = || {
            read_err(io::Error::other(
                "the file changed after it was validated (its sha256 no longer matches the package id)",
            ))
        };
        let handle = File::open(&self.file).map_err(read_err)?;
        let mut hashing = Hashing::new(BufReader::with_capacity(READ_BUF, handle));
        {
            // Read as it was validated, so a swapped file is bounded the same way.
            let Some(gz) = gzip::Gunzip::new(&mut hashing).map_err(read_err)? else {
                return Err(changed());
            };
            let mut archive = archive::Reader::new(Capped::new(gz, self.limits.max_unpacked_bytes));
            let mut buf = vec![0u8; READ_BUF];
            loop {
                let header = match archive.next() {
                    Ok(Some(header)) => header,
                    Ok(None) => return Err(changed()),
                    Err(e) => return Err(read_err(io::Error::other(e))),
                };
                if header.name != CODE_FILE.as_bytes() {
                    continue;
                }
                loop {
                    let n = archive.read(&mut buf).map_err(|e| {
                        read_err(match archive.take_failure() {
                            Some(failure) => io::Error::other(failure),
                            None => e,
                        })
                    })?;
                    if n == 0 {
                        break;
                    }
                    sink(&buf[..n]).map_err(read_err)?;
                }
                break;
            }
        }
        io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
        let digest = hashing.finish();
        if !self.id.ends_with(&digest) {
            return Err(changed());
        }
        Ok(())
    }
}

/// The package id of any file, without validating it: `label:sha256(file)`.
pub fn package_id(label: &str, bytes: &[u8]) -> String {
    format!("{label}:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn validate_label(label: &str) -> Result<(), Problem> {
    if LABEL.is_match(label) {
        Ok(())
    } else {
        Err(Problem::Label(label.to_string()))
    }
}

struct Scan {
    metadata: Metadata,
    code: CodeScan,
}

#[derive(Default)]
struct CodeScan {
    unpacked: u64,
    files: u64,
    go_mod: Option<String>,
}

/// A layer (the package, or the code inside it): a gzip'd tar, read with
/// its inflated size capped.
fn open_layer<R: Read>(
    source: R,
    layer: Layer,
    limits: Limits,
) -> Result<archive::Reader<Capped<gzip::Gunzip<R>>>, Problem> {
    let gz = gzip::Gunzip::new(source)
        .map_err(|source| Problem::Corrupt { layer, source })?
        .ok_or(Problem::NotGzip { layer })?;
    Ok(archive::Reader::new(Capped::new(
        gz,
        limits.max_unpacked_bytes,
    )))
}

fn scan_package(source: &mut impl Read, limits: Limits) -> Result<Scan, Problem> {
    let layer = Layer::Package;
    let mut archive = open_layer(source, layer, limits)?;
    let mut metadata: Option<Metadata> = None;
    let mut code: Option<CodeScan> = None;

    while let Some(header) = archive.next().map_err(|e| tar_problem(layer, e, limits))? {
        let name = entry_name(layer, &header)?;
        if !header.kind.is_file() || header.sparse {
            return Err(Problem::NotAFile {
                layer,
                name,
                kind: kind_name(&header),
            });
        }
        // A failed read of the entry is the archive's failure when it has one.
        let failed =
            |archive: &mut archive::Reader<_>, problem: Problem| match archive.take_failure() {
                Some(failure) => tar_problem(layer, failure, limits),
                None => problem,
            };
        match name.as_str() {
            METADATA_FILE => {
                if metadata.is_some() {
                    return Err(Problem::Duplicate { layer, name });
                }
                if header.size > METADATA_MAX {
                    return Err(Problem::MetadataTooLarge);
                }
                let mut text = Vec::new();
                if let Err(source) = (&mut archive).take(METADATA_MAX).read_to_end(&mut text) {
                    return Err(failed(&mut archive, Problem::Corrupt { layer, source }));
                }
                let parsed = Metadata::from_json(&text).map_err(Problem::Metadata)?;
                validate_label(&parsed.label)?;
                metadata = Some(parsed);
            }
            CODE_FILE => {
                if code.is_some() {
                    return Err(Problem::Duplicate { layer, name });
                }
                // The code entry may be cut short by the outer layer (a
                // truncated file, an outer bomb): then that is to blame.
                code = Some(scan_code(&mut archive, limits).map_err(|p| failed(&mut archive, p))?);
            }
            other => {
                // Fabric only warns here; so do we, and skip the entry.
                tracing::warn!(
                    entry = %quote(other),
                    "unexpected file in top level of chaincode package"
                );
            }
        }
    }
    // Nothing after the end of the archive is read: the peer reads no
    // further (bytes there are only hashed into the id).

    let metadata = metadata.ok_or(Problem::Missing(METADATA_FILE))?;
    let code = code.ok_or(Problem::Missing(CODE_FILE))?;
    Ok(Scan { metadata, code })
}

fn scan_code(source: &mut impl Read, limits: Limits) -> Result<CodeScan, Problem> {
    let layer = Layer::Code;
    let mut archive = open_layer(source, layer, limits)?;
    // Names are remembered by digest: memory per entry stays the same however
    // long its name.
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut scan = CodeScan::default();

    while let Some(header) = archive.next().map_err(|e| tar_problem(layer, e, limits))? {
        if header.kind == tar::EntryType::XGlobalHeader {
            // The engine ignores global PAX headers whatever their name.
            continue;
        }
        let name = entry_name(layer, &header)?;
        let regular = header.kind.is_file() && !header.sparse;
        if !regular && header.kind != tar::EntryType::Directory {
            return Err(Problem::NotAFile {
                layer,
                name,
                kind: kind_name(&header),
            });
        }
        let normal = normalize(&name);
        if !normal.is_empty() && !seen.insert(name_digest(&normal)) {
            return Err(Problem::Duplicate { layer, name });
        }
        if regular {
            scan.files += 1;
            if normal == "src/go.mod" && header.size <= GO_MOD_MAX {
                let mut text = String::new();
                // A go.mod that is not UTF-8 simply is not looked at.
                match (&mut archive).take(GO_MOD_MAX).read_to_string(&mut text) {
                    Ok(_) => scan.go_mod = Some(text),
                    Err(_) => {
                        if let Some(failure) = archive.take_failure() {
                            return Err(tar_problem(layer, failure, limits));
                        }
                    }
                }
            }
        }
    }
    // The engine reads the rest of the gzip stream and refuses it unless it
    // ends cleanly (no corrupt member, no trailing bytes): so do we.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| io_problem(layer, e, limits))?;
    scan.unpacked = rest.count;
    Ok(scan)
}

fn tar_problem(layer: Layer, error: archive::Error, limits: Limits) -> Problem {
    match error {
        archive::Error::Io(e) => io_problem(layer, e, limits),
        source => Problem::Tar { layer, source },
    }
}

/// A read error is the cap speaking, trailing data, or corruption.
fn io_problem(layer: Layer, error: io::Error, limits: Limits) -> Problem {
    let inner = error.get_ref();
    if inner.is_some_and(|e| e.is::<OverCap>()) {
        Problem::TooLarge {
            layer,
            limit: limits.max_unpacked_bytes,
        }
    } else if let Some(trailing) = inner.and_then(|e| e.downcast_ref::<gzip::Trailing>()) {
        Problem::TrailingData {
            layer,
            bytes: trailing.bytes,
        }
    } else {
        Problem::Corrupt {
            layer,
            source: error,
        }
    }
}

/// The entry's name, refused unless it is UTF-8, relative and free of `..`.
fn entry_name(layer: Layer, header: &archive::Header) -> Result<String, Problem> {
    let name = match std::str::from_utf8(&header.name) {
        Ok(name) => name.to_string(),
        Err(_) => {
            return Err(Problem::NonUtf8Name {
                layer,
                name: String::from_utf8_lossy(&header.name).into_owned(),
            })
        }
    };
    if name.starts_with('/') {
        return Err(Problem::AbsolutePath { layer, name });
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(Problem::DotDot { layer, name });
    }
    Ok(name)
}

/// `./src//a/` and `src/a` are the same entry.
fn normalize(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn name_digest(normal: &str) -> [u8; 16] {
    let digest = Sha256::digest(normal.as_bytes());
    let mut short = [0u8; 16];
    short.copy_from_slice(&digest[..16]);
    short
}

fn kind_name(header: &archive::Header) -> &'static str {
    if header.sparse {
        return "sparse file";
    }
    match header.kind {
        tar::EntryType::Regular => "regular file",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::Continuous => "contiguous file",
        tar::EntryType::GNUSparse => "sparse file",
        tar::EntryType::XGlobalHeader => "PAX global header",
        _ => "special entry",
    }
}

/// The cap's error, told apart from others by its type.
#[derive(Debug, thiserror::Error)]
#[error("inflated size limit exceeded")]
struct OverCap;

/// Counts inflated bytes and fails the read once they pass the limit.
struct Capped<R> {
    inner: R,
    limit: u64,
    count: u64,
}

impl<R> Capped<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            limit,
            count: 0,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count > self.limit {
            return Err(io::Error::other(OverCap));
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(OverCap));
        }
        Ok(n)
    }
}

/// Hashes every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes a package the way `peer lifecycle chaincode package` lays it out:
/// `metadata.json` + `code.tar.gz`, the code under `src/`. Deterministic: the
/// same directory gives the same bytes, so the same package id. Streams file
/// by file (memory stays flat), and replaces `out` only once it is complete.
pub fn write(metadata: &Metadata, code_dir: &Path, out: &Path) -> io::Result<String> {
    validate_label(&metadata.label)
        .map_err(|p| io::Error::new(io::ErrorKind::InvalidInput, p.to_string()))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));

    let mut code = tempfile::tempfile_in(dir)?;
    write_code_tar_gz(code_dir, &mut code)?;
    wrap(metadata, code, out, flate2::Compression::default())
}

/// Writes a package around a finished `code.tar.gz` (`code`, read from its
/// start): `metadata.json` first, as the peer CLI does, gzip'd at `level`
/// (`none` still makes a gzip stream: the code inside is compressed
/// already). Replaces `out` only once it is complete. The package id.
pub fn wrap(
    metadata: &Metadata,
    mut code: File,
    out: &Path,
    level: flate2::Compression,
) -> io::Result<String> {
    validate_label(&metadata.label)
        .map_err(|p| io::Error::new(io::ErrorKind::InvalidInput, p.to_string()))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let code_len = code.seek(io::SeekFrom::End(0))?;
    code.rewind()?;

    let file = tempfile::NamedTempFile::new_in(dir)?;
    let hashing = HashingWriter {
        inner: io::BufWriter::with_capacity(READ_BUF, file.as_file().try_clone()?),
        hasher: Sha256::new(),
    };
    let gz = flate2::write::GzEncoder::new(hashing, level);
    let mut tar = tar::Builder::new(gz);
    let meta = serde_json::to_vec(metadata)?;
    tar.append_data(
        &mut file_header(meta.len() as u64),
        METADATA_FILE,
        meta.as_slice(),
    )?;
    tar.append_data(&mut file_header(code_len), CODE_FILE, code)?;
    let hashing = tar.into_inner()?.finish()?;
    let HashingWriter { mut inner, hasher } = hashing;
    inner.flush()?;
    let digest = hex::encode(hasher.finalize());
    file.persist(out).map_err(|e| e.error)?;
    Ok(format!("{}:{digest}", metadata.label))
}

fn write_code_tar_gz(dir: &Path, out: &mut File) -> io::Result<()> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let gz = flate2::write::GzEncoder::new(
        io::BufWriter::with_capacity(READ_BUF, out),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for rel in files {
        let file = File::open(dir.join(&rel))?;
        let len = file.metadata()?.len();
        tar.append_data(&mut file_header(len), format!("src/{rel}"), file)?;
    }
    tar.into_inner()?.finish()?.flush()
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if entry.file_name() == "node_modules" || entry.file_name() == ".git" {
                // Fabric's packager skips neither, but node_modules is rebuilt by
                // `npm install` in the build container; shipping it only bloats.
                continue;
            }
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_str()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("file name is not UTF-8: {}", path.display()),
                    )
                })?
                .to_string();
            out.push(rel);
        }
        // Symlinks and special files are not packaged, as in Fabric.
    }
    Ok(())
}

/// Fabric writes package entries as mode 0100644 with zero times and owners.
pub(crate) fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o100644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> PathBuf {
        let code = dir.join("code");
        std::fs::create_dir_all(code.join("lib")).unwrap();
        std::fs::write(code.join("package.json"), "{}").unwrap();
        std::fs::write(code.join("lib/index.js"), "1").unwrap();
        let out = dir.join("cc.tar.gz");
        let meta = Metadata {
            path: String::new(),
            kind: "node".into(),
            label: "cc_1.0".into(),
        };
        write(&meta, &code, &out).unwrap();
        out
    }

    #[test]
    fn a_written_package_validates_and_its_id_is_the_file_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = sample(dir.path());
        let pkg = Package::open(&file, Limits::default()).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(pkg.id, package_id("cc_1.0", &bytes));
        assert_eq!(pkg.metadata.kind, "node");
        assert_eq!(pkg.code_files, 2);
    }

    #[test]
    fn writing_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(
            std::fs::read(sample(a.path())).unwrap(),
            std::fs::read(sample(b.path())).unwrap()
        );
    }

    #[test]
    fn read_code_yields_the_code_entry_and_checks_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = sample(dir.path());
        let pkg = Package::open(&file, Limits::default()).unwrap();
        let mut code = Vec::new();
        pkg.read_code(|chunk| {
            code.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&code[..]));
        for e in archive.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names, ["src/lib/index.js", "src/package.json"]);

        // Swap the file for another valid package: the stream must fail.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("package.json"), "{\"x\":1}").unwrap();
        write(&pkg.metadata, &other, &file).unwrap();
        let err = pkg.read_code(|_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        assert!(format!("{:?}", err).contains("changed after it was validated"));
    }

    #[test]
    fn labels_follow_fabric() {
        for ok in ["a", "A1", "cc_1.0+b-2", "9"] {
            assert!(validate_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "_a", "-a", "a b", "../evil", "a/b", "é"] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cap_stops_inflation_early() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("code");
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("zeros"), vec![0u8; 4 << 20]).unwrap();
        let out = dir.path().join("p.tar.gz");
        let meta = Metadata {
            path: String::new(),
            kind: "node".into(),
            label: "z".into(),
        };
        write(&meta, &code, &out).unwrap();
        let err = Package::open(
            &out,
            Limits {
                max_unpacked_bytes: 1 << 20,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("inflates to more than 1048576 bytes"),
            "{err}"
        );
    }
}
