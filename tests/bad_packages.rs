//! Every hostile package under testdata/bad/ (listed in cases.tsv with the
//! word its error must contain) is refused: by the library, and by the CLI's
//! `build` with nothing built, started or written anywhere. Errors are
//! bounded and quote no package content; a header bomb costs no memory, in
//! the real binary or through the sidecar's Build.

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

/// Fabric accepts these (an extra top-level file, bytes after the end of the
/// tar); so do we.
fn is_warning_only(case: &Case) -> bool {
    case.expect == "-"
}

/// Bytes of the fake private key in testdata/bad (make-bad.py's `fake_key`).
const KEY_MARKERS: [&str; 2] = ["PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"];

/// An error about a package is a sentence, not a copy of it: bounded whatever
/// the entry names, and without the package's bytes.
fn assert_bounded_and_quotes_no_content(file: &str, err: &str, path_len: usize) {
    assert!(
        err.len() <= path_len + 1024,
        "{file}: a {}-byte error: {}…",
        err.len(),
        err.chars().take(300).collect::<String>()
    );
    for marker in KEY_MARKERS {
        assert!(!err.contains(marker), "{file}: quotes the key: {err}");
    }
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
            Err(e) => cclaunch::error_chain(&e),
        };
        assert_bounded_and_quotes_no_content(&case.file, &err, path.display().to_string().len());
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
        // The path, the error, and a log line or two.
        let paths = 2 * (bad_dir.display().to_string().len() + case.file.len());
        assert_bounded_and_quotes_no_content(&case.file, &stderr, paths + 1024);
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

/// Runs the real binary and returns its exit status, stderr and peak
/// resident size in KiB (from the kernel's accounting of that child).
// The child is reaped by wait4, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (i32, String, u64) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    let text = std::fs::read_to_string(stderr.path()).unwrap();
    (code, text, usage.ru_maxrss as u64)
}

#[test]
fn a_header_bomb_costs_the_real_binary_no_memory() {
    // A 3 KB package whose code.tar.gz opens with a GNU long name of 1.5 GiB
    // (it took package-id to 1 GB of memory), and an outer 2 MiB PAX header.
    for file in ["code-long-name-huge.tar.gz", "pax-path-huge.tar.gz"] {
        let path = repo().join("testdata/bad").join(file);
        let started = std::time::Instant::now();
        let (code, stderr, peak_kib) = run_measured(&["package-id", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{file}: {stderr}");
        assert!(
            stderr.contains("larger than 1048576 bytes"),
            "{file}: {stderr}"
        );
        assert!(
            peak_kib < 64 * 1024,
            "{file}: package-id peaked at {peak_kib} KiB"
        );
        assert!(
            started.elapsed().as_secs() < 5,
            "{file}: refused by the header's size, not after reading it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_refuses_them_with_the_reason_in_a_bounded_status() {
    use cclaunch::proto::v1::{
        build_request::Source, launcher_client::LauncherClient, BuildRequest,
    };
    let env = common::Env::new("badgrpc", &[]).await;
    let socket = env.dir.path().join("cclaunch.sock");
    let mut sidecar = common::serve_command(&env, &["--socket", socket.to_str().unwrap()])
        // The default cap, as a sidecar runs (the test default is 1 MiB).
        .env("CCLAUNCH_PACKAGE_MAXUNPACKEDBYTES", "1073741824")
        .spawn()
        .unwrap();
    let mut client = LauncherClient::new(common::grpc::connect(&socket).await);
    for (file, reason) in [
        ("code-long-name-huge.tar.gz", "larger than 1048576 bytes"),
        ("code-long-absolute-name.tar.gz", "has an absolute path"),
        ("long-dotdot-name.tar.gz", "has a '..' path component"),
        ("private-key.tar.gz", "is not a valid tar archive"),
        ("metadata-key-string.tar.gz", "it is not a JSON object"),
    ] {
        let bytes = std::fs::read(repo().join("testdata/bad").join(file)).unwrap();
        let requests: Vec<BuildRequest> = bytes
            .chunks(1024)
            .map(|c| BuildRequest {
                source: Some(Source::Chunk(c.to_vec())),
            })
            .collect();
        let status = match client.build(futures_util::stream::iter(requests)).await {
            Ok(_) => panic!("{file} was accepted"),
            Err(status) => status,
        };
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{file}: {}",
            status.message().chars().take(300).collect::<String>()
        );
        assert!(
            status.message().contains(reason),
            "{file}: {}",
            status.message()
        );
        assert_bounded_and_quotes_no_content(file, status.message(), 200);
    }
    let pid = sidecar.id().unwrap();
    let peak_kib = common::grpc::peak_rss_kib(pid);
    assert!(
        peak_kib < 128 * 1024,
        "the sidecar peaked at {peak_kib} KiB"
    );
    let status = common::terminate(&mut sidecar, std::time::Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
}
