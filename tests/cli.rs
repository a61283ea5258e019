//! The command line as admins and harnesses use it: the real binary.

mod common;

use std::process::{Command, Output};

use common::{repo, Env, SHENV};

fn cclaunch(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cclaunch"))
        .args(args)
        .env("CORE_VM_ENDPOINT", common::endpoint())
        .envs(env.iter().copied())
        .output()
        .expect("run cclaunch")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn names_prints_fabrics_names_and_refuses_bad_ones() {
    let out = cclaunch(
        &[],
        &[
            "names",
            "mycc:abc123",
            "--network-id",
            "dev",
            "--peer-id",
            "peer0",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "container: dev-peer0-mycc-abc123\nimage: dev-peer0-mycc-abc123-6019a763daab88b72cd0cb3b32d53c664c57db19534de385ffe3bed2a61c075e\n"
    );
    let out = cclaunch(&[], &["names", "a..b:1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("breaks Docker's repository naming rules"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn try_refuses_a_listen_address_the_chaincode_cannot_dial() {
    let package = repo().join("testdata/good/golang.tar.gz");
    let out = cclaunch(
        &[],
        &["try", package.to_str().unwrap(), "--listen", "0.0.0.0:7052"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--listen 0.0.0.0:7052: the chaincode is given this address to dial"),
        "{stderr}"
    );
    let help = text(&cclaunch(&[], &["try", "--help"]).stdout);
    assert!(help.contains("--listen <IP:PORT>"), "{help}");
}

#[test]
fn package_id_and_dockerfile_read_a_package() {
    let good = repo().join("testdata/good/golang.tar.gz");
    let out = cclaunch(&[], &["package-id", good.to_str().unwrap()]);
    assert_eq!(
        text(&out.stdout).trim(),
        "good-golang_1.0:3f72469532681881e3a62c8af622e9280c2c18700baf54a0f6c58e96d1c76ae9"
    );
    let out = cclaunch(
        &[("CORE_CHAINCODE_GOLANG_RUNTIME", "local/baseos:1")],
        &["dockerfile", good.to_str().unwrap()],
    );
    assert_eq!(
        text(&out.stdout),
        "FROM local/baseos:1\nADD binpackage.tar /usr/local/bin\nLABEL org.hyperledger.fabric.chaincode.type=\"GOLANG\" \\\n      org.hyperledger.fabric.version=\"2.5.16\"\nENV CORE_CHAINCODE_BUILDLEVEL=2.5.16\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_follow_mirrors_the_output_and_exits_with_the_chaincodes_code() {
    let env = Env::new("clifollow", &[]).await;
    let package = env.shell_package("follow", "echo hello from the chaincode\nexit 5\n");
    let peer = env.peer.clone();
    let file = package.file.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        let overrides = [
            ("CORE_PEER_ID", peer.as_str()),
            ("CORE_PEER_NETWORKID", "test"),
            ("CORE_CHAINCODE_NODE_RUNTIME", SHENV),
        ];
        cclaunch(
            &overrides,
            &["start", &file, "--peer-address", "127.0.0.1:7052", "-f"],
        )
    })
    .await
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("peer.chaincode.") && stderr.contains("hello from the chaincode"),
        "{stderr}"
    );
    assert!(stderr.contains("exited with code 5"), "{stderr}");
}

/// `start` passes a chaincode's exit code on (with -f), so its own failures
/// exit 125, as `docker run`'s do: a chaincode exiting 1 is never mistaken
/// for cclaunch failing. Other verbs exit 1.
#[test]
fn start_fails_with_125_and_says_why() {
    let package = repo().join("testdata/good/golang.tar.gz");
    let package = package.to_str().unwrap();
    let engine_down = [("CORE_VM_ENDPOINT", "unix:///nonexistent/docker.sock")];
    let out = cclaunch(
        &engine_down,
        &["start", package, "--peer-address", "127.0.0.1:7052", "-f"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains("no socket at /nonexistent/docker.sock"),
        "{stderr}"
    );
    let out = cclaunch(
        &[("CCLAUNCH_ENGINE_REQUESTTIMEOUT", "soon")],
        &["start", package, "--peer-address", "127.0.0.1:7052"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("requestTimeout"),
        "{}",
        text(&out.stderr)
    );
    let out = cclaunch(&engine_down, &["stop", package]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
