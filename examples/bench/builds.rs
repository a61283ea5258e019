//! Builds where users wait (issue 10): a second peer's build of a package the
//! first peer built (one build per engine) against the first build, and
//! version 2 of a chaincode with version 1's build cache against version 1
//! and version 2 on a cold cache, for Go (the sample, standard library only;
//! golang-shim, grpc and protobuf vendored from Debian) and Node (the
//! contract sample: fabric-contract-api and fabric-shim from npm).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cclaunch::config::Config;
use cclaunch::launcher::Launcher;
use cclaunch::package::{self, Limits, Metadata, Package};
use cclaunch::runtime::docker::Docker;

use super::{docker_cli, median, Result};

const ROUNDS: usize = 3;
const CCENV: &str = "cclaunch-test/ccenv:latest";
const BUSYBOX: &str = "cclaunch-test/busybox:latest";
const NODEENV: &str = "cclaunch-test/nodeenv:latest";

/// A launcher for `peer` whose caches are the volumes `<prefix>-<platform>`.
async fn launcher(dir: &Path, peer: &str, prefix: &str) -> Result<Launcher> {
    let file = dir.join(format!("{peer}.yaml"));
    // npm in the build container trusts the host's CA bundle (as the tests).
    std::fs::write(
        &file,
        format!(
            "chaincode:\n  builder: {CCENV}\n  golang:\n    runtime: {BUSYBOX}\n  node:\n    runtime: {NODEENV}\npeer:\n  id: {peer}\n  networkId: benchbuilds\ncclaunch:\n  build:\n    cacheVolume: {prefix}\n    mounts: [\"/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt\"]\n    env: [\"npm_config_cafile=/etc/ssl/certs/host-ca.crt\", \"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt\"]\n"
        ),
    )?;
    let config = Config::load(Some(&file))?;
    let docker = Arc::new(Docker::connect(&config.vm.endpoint).await?);
    Ok(Launcher::new(docker, config))
}

/// The sample at `sample` (under testdata/chaincode) with `from` replaced by
/// `to` in `file`: another version, the same dependencies. A sample with a
/// vendor.sh gets its vendor/ made in the copy.
fn version(dir: &Path, sample: &str, file: &str, from: &str, to: &str) -> Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/chaincode")
        .join(sample);
    let code = dir.join(format!("{sample}-{}", to.replace(['"', ' '], "")));
    copy_tree(&source, &code)?;
    if source.join("vendor.sh").exists() {
        let out = std::process::Command::new("bash")
            .arg(source.join("vendor.sh"))
            .arg(&code)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "{sample}/vendor.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    let text = std::fs::read_to_string(code.join(file))?;
    if !text.contains(from) {
        return Err(format!("{sample}/{file} has no {from:?}").into());
    }
    std::fs::write(code.join(file), text.replacen(from, to, 1))?;
    Ok(code)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn package(dir: &Path, kind: &str, label: &str, path: &str, code: &Path) -> Result<Package> {
    let file = dir.join(format!("{label}.tar.gz"));
    let meta = Metadata {
        path: path.into(),
        kind: kind.into(),
        label: label.into(),
    };
    package::write(&meta, code, &file)?;
    Ok(Package::open(&file, Limits::default())?)
}

async fn timed_build(launcher: &Launcher, package: &Package) -> Result<(f64, bool)> {
    let started = Instant::now();
    let built = launcher.build(package, &|_: &str| {}).await?;
    Ok((started.elapsed().as_secs_f64(), built.reused))
}

/// One language: per round, a cold cache, version 1 for peer A, the same
/// package for peer B, version 2 for peer A (warm cache), then version 2
/// again on a cold cache. `token`, in `from`, is what a version changes.
struct Language {
    name: &'static str,
    kind: &'static str,
    sample: &'static str,
    path: &'static str,
    file: &'static str,
    from: &'static str,
    token: &'static str,
}

impl Language {
    /// The changed line of version `v` (1 or 2) in round `round`; `tag` is
    /// the round's unique label.
    fn line(&self, v: usize, round: usize, tag: &str) -> String {
        let to = if self.kind == "node" {
            format!("1.0.{}", round * 2 + v)
        } else {
            format!("v{v}{tag}")
        };
        self.from.replace(self.token, &to)
    }
}

pub async fn builds(dir: &Path) -> Result<()> {
    println!("## Builds: one build per engine, and build caches across versions\n");
    println!(
        "{ROUNDS} rounds per language. Each round starts from a cold cache (its volume removed), builds version 1 for peer A (a full build), the same package for peer B on the same engine (named, not built), then version 2 (one changed string, the same dependencies) for peer A with version 1's cache, then version 2 again from a cold cache (image and volume removed).\n"
    );
    println!("| language | v1, cold cache | second peer, same package | v2, cold cache | v2, warm cache | second peer vs v1 | v2 warm vs v1 | v2 warm vs v2 cold |");
    println!("|---|---|---|---|---|---|---|---|");
    let languages = [
        Language {
            name: "Go (sample, standard library only)",
            kind: "golang",
            sample: "golang",
            path: "example.com/cclaunch/sample",
            file: "main.go",
            from: "const name = \"sample-go\"",
            token: "sample-go",
        },
        Language {
            name: "Go (golang-shim: grpc, protobuf vendored)",
            kind: "golang",
            sample: "golang-shim",
            path: "example.com/cclaunch/shimcc",
            file: "main.go",
            from: "const name = \"shimcc\"",
            token: "shimcc",
        },
        Language {
            name: "Node (contract sample, npm install)",
            kind: "node",
            sample: "node-contract",
            path: "",
            file: "package.json",
            from: "\"version\": \"1.0.0\"",
            token: "1.0.0",
        },
    ];
    let prefix = format!("cclaunch-bench-cache-{}", std::process::id());
    let a = launcher(dir, "benchpeera", &prefix).await?;
    let b = launcher(dir, "benchpeerb", &prefix).await?;
    for (n, language) in languages.iter().enumerate() {
        let volume = format!("{prefix}-{}", language.kind);
        let (mut first, mut second, mut warm, mut cold) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let _ = docker_cli(&["volume", "rm", "-f", &volume]);
            let tag = format!("{}{n}r{round}p{}", language.kind, std::process::id());
            let v1 = version(
                dir,
                language.sample,
                language.file,
                language.from,
                &language.line(1, round, &tag),
            )?;
            let v2 = version(
                dir,
                language.sample,
                language.file,
                language.from,
                &language.line(2, round, &tag),
            )?;
            let p1 = package(dir, language.kind, &format!("v1{tag}"), language.path, &v1)?;
            let p2 = package(dir, language.kind, &format!("v2{tag}"), language.path, &v2)?;
            let (t, reused) = timed_build(&a, &p1).await?;
            assert!(!reused, "a fresh package is built");
            first.push(t);
            let (t, reused) = timed_build(&b, &p1).await?;
            assert!(reused, "the second peer names the first peer's build");
            second.push(t);
            let (t, reused) = timed_build(&a, &p2).await?;
            assert!(!reused, "version 2 is built");
            warm.push(t);
            let _ = docker_cli(&["rmi", &a.names(&p2.id)?.image]);
            let _ = docker_cli(&["volume", "rm", "-f", &volume]);
            let (t, reused) = timed_build(&a, &p2).await?;
            assert!(!reused, "version 2 is built again");
            cold.push(t);
            for (launcher, package) in [(&a, &p1), (&b, &p1), (&a, &p2)] {
                let image = launcher.names(&package.id)?.image;
                let _ = docker_cli(&["rmi", &image]);
            }
        }
        let _ = docker_cli(&["volume", "rm", "-f", &volume]);
        let (first, second, warm, cold) = (
            median(&mut first),
            median(&mut second),
            median(&mut warm),
            median(&mut cold),
        );
        println!(
            "| {} | {:.2} s | {:.3} s | {:.2} s | {:.2} s | {:.0}x faster | {:.1}x faster | {:.1}x faster |",
            language.name,
            first,
            second,
            cold,
            warm,
            first / second,
            first / warm,
            cold / warm
        );
    }
    println!();
    Ok(())
}
