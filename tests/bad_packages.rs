//! Every hostile package under testdata/bad/ (listed in cases.tsv with the
//! word its error must contain) is refused: by the library, and by the CLI's
//! `build` with nothing built, started or written anywhere.

mod common;

use std::path::Path;
use std::process::Command;

use cclaunch::package::{Limits, Package};
use common::repo;

struct Case {
    file: String,
    /// `outer` or `code`: the tar layer the problem is in.
    level: String,
    expect: String,
}

fn cases() -> Vec<Case> {
    let table = std::fs::read_to_string(repo().join("testdata/bad/cases.tsv"))
        .expect("testdata/bad/cases.tsv");
    let cases: Vec<Case> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad row in cases.tsv: {l:?}");
            Case {
                file: cols[0].to_string(),
                level: cols[1].to_string(),
                expect: cols[2].to_lowercase(),
            }
        })
        .collect();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    cases
}

fn is_warning_only(case: &Case) -> bool {
    case.file.starts_with("warn-")
}

#[test]
fn every_hostile_package_is_refused_with_an_error_naming_the_problem() {
    for case in cases() {
        let path = repo().join("testdata/bad").join(&case.file);
        // A small cap keeps the bombs quick; the cap's semantics are the same.
        let result = Package::open(
            &path,
            Limits {
                max_unpacked_bytes: 64 << 20,
            },
        );
        if is_warning_only(&case) {
            // Fabric only warns about an extra top-level file; so do we.
            assert!(result.is_ok(), "{}: {:?}", case.file, result.err());
            continue;
        }
        let err = match result {
            Ok(p) => panic!("{} was accepted as {}", case.file, p.id),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&case.file),
            "{}: the error names the file: {err}",
            case.file
        );
        // Match the keyword against the message without the path: several
        // file names contain their own keyword.
        let problem = err
            .replace(&path.display().to_string(), "<file>")
            .to_lowercase();
        assert!(
            problem.contains(&case.expect),
            "{}: expected {:?} in: {problem}",
            case.file,
            case.expect
        );
        if case.level == "code" {
            assert!(
                problem.contains("code.tar.gz"),
                "{}: blames the code layer: {problem}",
                case.file
            );
        } else if problem.contains("corrupt") {
            assert!(
                problem.contains("package is corrupt"),
                "{}: blames the outer layer: {problem}",
                case.file
            );
        }
    }
}

#[test]
fn bombs_are_stopped_without_inflating_them() {
    for file in ["gzip-bomb-outer.tar.gz", "gzip-bomb-inner.tar.gz"] {
        let path = repo().join("testdata/bad").join(file);
        let started = std::time::Instant::now();
        let err = Package::open(
            &path,
            Limits {
                max_unpacked_bytes: 8 << 20,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("inflates to more than 8388608 bytes"),
            "{file}: {err}"
        );
        assert!(
            started.elapsed().as_secs() < 2,
            "{file}: stopped at the cap, not after inflating all of it"
        );
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir);
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path().display().to_string());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn the_cli_refuses_them_and_builds_starts_and_writes_nothing() {
    let peer = common::unique_peer("bad");
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bad_dir = repo().join("testdata/bad");
    let before = listing(&bad_dir);
    for case in cases().iter().filter(|c| !is_warning_only(c)) {
        let out = Command::new(env!("CARGO_BIN_EXE_cclaunch"))
            .args(["build", bad_dir.join(&case.file).to_str().unwrap()])
            .current_dir(cwd.path())
            .env("TMPDIR", tmp.path())
            .env("CORE_PEER_ID", &peer)
            .env("CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES", "8388608")
            .env("CORE_VM_ENDPOINT", common::endpoint())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", case.file);
        assert!(
            stderr.contains("is invalid") || stderr.contains("cannot read"),
            "{}: {stderr}",
            case.file
        );
    }
    assert!(
        listing(cwd.path()).is_empty(),
        "nothing written in the working directory"
    );
    assert!(listing(tmp.path()).is_empty(), "nothing written in TMPDIR");
    assert_eq!(
        listing(&bad_dir),
        before,
        "the packages' directory is unchanged"
    );
    let made = common::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=org.cclaunch.peer-id={peer}"),
    ]);
    assert!(made.trim().is_empty(), "no container was made: {made}");
    let images = common::docker(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains(&peer.to_lowercase()), "no image was built");
}

#[test]
fn the_good_packages_validate_with_their_recorded_ids() {
    let table = std::fs::read_to_string(repo().join("testdata/good/ids.tsv")).expect("ids.tsv");
    let mut seen = 0;
    for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let package = Package::open(
            repo().join("testdata/good").join(cols[0]),
            Limits::default(),
        )
        .expect(cols[0]);
        assert!(
            cols.contains(&package.id.as_str()),
            "{}: {} not in {line:?}",
            cols[0],
            package.id
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}
