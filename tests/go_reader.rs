//! cclaunch judges packages the way the programs after it read them: the
//! peer (Go's `compress/gzip` and `archive/tar`, in Fabric's install-time
//! parse) and the engine (the same readers, when a build container receives
//! the code). Checked against Go itself (testdata/fuzz/goread, run in the
//! toolchain test image with no network) on every fixture, the corpus and
//! 1000 mutants, and against the real engine's upload.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cclaunch::package::{Limits, Package};
use common::mutate::{self, Rng};

/// Go's verdict per file name: `Ok`, or the layer and Go's error.
fn go_verdicts(dir: &Path) -> BTreeMap<String, Result<(), String>> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "none"])
        .arg("-v")
        .arg(format!("{}:/packages:ro", dir.display()))
        .arg("-v")
        .arg(format!(
            "{}:/goread:ro",
            common::repo().join("testdata/fuzz/goread").display()
        ))
        .arg("-v")
        .arg(format!("{}:/cache", cache.display()))
        .args([
            "-e",
            "HOME=/tmp",
            "-e",
            "GOCACHE=/cache",
            "-e",
            "GO111MODULE=off",
        ])
        .args(["-w", "/tmp", "cclaunch-test/toolchain:latest"])
        .args(["go", "run", "/goread/main.go", "/packages"])
        .output()
        .expect("docker run");
    assert!(
        out.status.success(),
        "goread: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("goread prints UTF-8")
        .lines()
        .map(|line| {
            let (file, verdict) = line.split_once('\t').expect("file<TAB>verdict");
            let verdict = if verdict == "ok" {
                Ok(())
            } else {
                Err(verdict.replace('\t', ": "))
            };
            (file.to_string(), verdict)
        })
        .collect()
}

fn cclaunch_verdict(file: &Path) -> Result<(), String> {
    Package::open(
        file,
        Limits {
            max_unpacked_bytes: 64 << 20,
        },
    )
    .map(|_| ())
    .map_err(|e| cclaunch::error_chain(&e).replace(&file.display().to_string(), "<file>"))
}

fn seed_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["testdata/bad", "testdata/good", "testdata/fuzz/corpus"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(common::repo().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        // The two 1.5 GiB bombs: Go would read them whole (the peer does).
        .filter(|p| !p.to_string_lossy().contains("gzip-bomb"))
        .collect();
    files.sort();
    files
}

#[test]
fn go_reads_every_package_cclaunch_accepts_and_refuses_what_it_refuses_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<Vec<u8>> = seed_files()
        .iter()
        .map(|path| {
            std::fs::copy(path, dir.path().join(path.file_name().unwrap())).unwrap();
            std::fs::read(path).unwrap()
        })
        .filter(|bytes| bytes.len() <= 64 << 10)
        .collect();
    let mut rng = Rng::new(0x60_7ead);
    for n in 0..1000 {
        let seed = rng.pick(&seeds).clone();
        let mutant = mutate::mutate(&mut rng, &seed, &seeds);
        std::fs::write(dir.path().join(format!("mutant-{n:04}.tar.gz")), mutant).unwrap();
    }

    let go = go_verdicts(dir.path());
    let mut ours = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        ours.insert(name, cclaunch_verdict(&path));
    }
    assert_eq!(go.len(), ours.len(), "Go judged every file");

    // The fixtures of this issue, each with Go's words and ours.
    for (file, go_says, we_say) in [
        (
            "entry-after-zero-block.tar.gz",
            "invalid tar header",
            "single zero block",
        ),
        (
            "code-entry-after-zero-block.tar.gz",
            "invalid tar header",
            "single zero block",
        ),
        (
            "trailing-data.tar.gz",
            "gzip: invalid header",
            "35 bytes of trailing data",
        ),
        (
            "code-trailing-data.tar.gz",
            "gzip: invalid header",
            "35 bytes of trailing data",
        ),
        (
            "code-long-name-huge.tar.gz",
            "header field too long",
            "larger than 1048576 bytes",
        ),
        (
            "pax-path-huge.tar.gz",
            "header field too long",
            "larger than 1048576 bytes",
        ),
        (
            "private-key.tar.gz",
            "invalid tar header",
            "not a tar header",
        ),
    ] {
        let go = go[file].as_ref().expect_err(file);
        let ours = ours[file].as_ref().expect_err(file);
        assert!(go.contains(go_says), "{file}: Go says {go}");
        assert!(ours.contains(we_say), "{file}: cclaunch says {ours}");
    }
    assert_eq!(go["accept-trailing-after-tar-end.tar.gz"], Ok(()));
    assert_eq!(ours["accept-trailing-after-tar-end.tar.gz"], Ok(()));

    let (mut accepted, mut both_refuse, mut stricter) = (0, 0, BTreeMap::<String, u32>::new());
    let mut disagree = Vec::new();
    for (file, ours) in &ours {
        match (ours, &go[file]) {
            (Ok(()), Ok(())) => accepted += 1,
            (Ok(()), Err(go)) => {
                disagree.push(format!("{file}: cclaunch accepts it, Go says {go}"));
            }
            (Err(_), Err(_)) => both_refuse += 1,
            (Err(ours), Ok(())) => {
                // cclaunch's own rules (names, types, duplicates, labels,
                // metadata, caps) are stricter than Go's readers; a format
                // error (gzip, tar) must be one Go sees too.
                if ["not gzip", "trailing data", "not a valid tar archive"]
                    .iter()
                    .any(|malformed| ours.contains(malformed))
                {
                    disagree.push(format!("{file}: cclaunch says {ours}, Go reads it"));
                }
                let rule: String = ours
                    .split(": ")
                    .nth(1)
                    .unwrap_or(ours)
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .take(40)
                    .collect();
                *stricter.entry(rule).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{} files: {accepted} accepted by both, {both_refuse} refused by both, refused by cclaunch's own rules only: {stricter:?}",
        ours.len()
    );
    if !disagree.is_empty() {
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-reader-disagree");
        std::fs::create_dir_all(&kept).unwrap();
        for line in &disagree {
            let file = line.split(':').next().unwrap();
            std::fs::copy(dir.path().join(file), kept.join(file)).unwrap();
        }
        panic!(
            "{} disagreements (files in {}):\n{}",
            disagree.len(),
            kept.display(),
            disagree.join("\n")
        );
    }
    assert!(accepted >= 20, "only {accepted} accepted by both");
}

/// The `code.tar.gz` bytes of a package.
fn code_of(package: &Path) -> Vec<u8> {
    let file = std::fs::File::open(package).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("code.tar.gz") {
            let mut code = Vec::new();
            entry.read_to_end(&mut code).unwrap();
            return code;
        }
    }
    panic!("no code.tar.gz in {}", package.display());
}

/// Uploads `code` into `container` at /tmp the way a build does (the
/// engine's archive API, gzip'd tar as is): the engine's verdict.
fn upload(container: &str, code: &[u8]) -> Result<(), String> {
    let mut child = Command::new("docker")
        .args(["cp", "-", &format!("{container}:/tmp")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), code).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_engine_refuses_the_code_tars_cclaunch_refuses_and_sees_what_it_sees() {
    let peer = common::unique_peer("engine-upload");
    let _cleanup = Cleanup(peer.clone());
    let label = format!("{}={peer}", cclaunch::runtime::LABEL_PEER_ID);
    let container = common::docker(&["create", "--label", &label, common::BUSYBOX, "true"]);
    let container = container.trim();
    assert!(!container.is_empty(), "docker create");
    let bad = common::repo().join("testdata/bad");

    for (file, engine_says) in [
        ("code-entry-after-zero-block.tar.gz", "invalid tar header"),
        ("code-trailing-data.tar.gz", "gzip: invalid header"),
        ("code-long-name-huge.tar.gz", "header field too long"),
    ] {
        let engine = upload(container, &code_of(&bad.join(file)));
        let engine = engine.expect_err(file);
        assert!(
            engine.contains(engine_says),
            "{file}: the engine says {engine}"
        );
        let ours = cclaunch_verdict(&bad.join(file));
        assert!(
            ours.is_err(),
            "{file}: cclaunch accepts what the engine refuses"
        );
    }

    // A directory "claiming" data: the engine reads a symlink there, and so
    // does cclaunch (which refuses it), where the tar crate saw none.
    let file = "code-dir-with-size.tar.gz";
    upload(container, &code_of(&bad.join(file))).expect(file);
    let out = Command::new("docker")
        .args(["cp", &format!("{container}:/tmp/src/link"), "-"])
        .output()
        .unwrap();
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let entry = archive
        .entries()
        .unwrap()
        .next()
        .expect("src/link")
        .unwrap();
    assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
    assert_eq!(
        entry.link_name().unwrap().unwrap().to_str(),
        Some("/etc/shadow")
    );
    let ours = cclaunch_verdict(&bad.join(file)).expect_err(file);
    assert!(ours.contains("\"src/link\" is a symlink"), "{ours}");

    // And a valid package's code goes in.
    let good = common::repo().join("testdata/good/golang.tar.gz");
    upload(container, &code_of(&good)).expect("good code");
    assert_eq!(cclaunch_verdict(&good), Ok(()));
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        common::cleanup(&self.0);
    }
}
