//! Builds where users wait (issue 10): a second peer's build of a package the
//! first peer built (one build per engine) against the first build, and
//! version 2 of a chaincode with version 1's build cache against version 1
//! on a cold cache, for Go (the sample, standard library only) and Node (the
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
/// `to` in `file`: another version, the same dependencies.
fn version(dir: &Path, sample: &str, file: &str, from: &str, to: &str) -> Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/chaincode")
        .join(sample);
    let code = dir.join(format!("{sample}-{}", to.replace(['"', ' '], "")));
    copy_tree(&source, &code)?;
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
/// package for peer B, then version 2 for peer A.
struct Language {
    name: &'static str,
    kind: &'static str,
    sample: &'static str,
    path: &'static str,
    file: &'static str,
    from: &'static str,
}

pub async fn builds(dir: &Path) -> Result<()> {
    println!("## Builds: one build per engine, and build caches across versions\n");
    println!(
        "{ROUNDS} rounds per language. Each round starts from a cold cache (its volume removed), builds version 1 for peer A (a full build), the same package for peer B on the same engine (named, not built), then version 2 (one changed string, the same dependencies) for peer A with version 1's cache.\n"
    );
    println!("| language | first build (v1, cold cache) | second peer, same package | v2, warm cache | second peer vs first | v2 vs v1 |");
    println!("|---|---|---|---|---|---|");
    let languages = [
        Language {
            name: "Go (sample)",
            kind: "golang",
            sample: "golang",
            path: "example.com/cclaunch/sample",
            file: "main.go",
            from: "const name = \"sample-go\"",
        },
        Language {
            name: "Node (contract sample, npm install)",
            kind: "node",
            sample: "node-contract",
            path: "",
            file: "package.json",
            from: "\"version\": \"1.0.0\"",
        },
    ];
    let prefix = format!("cclaunch-bench-cache-{}", std::process::id());
    let a = launcher(dir, "benchpeera", &prefix).await?;
    let b = launcher(dir, "benchpeerb", &prefix).await?;
    for language in &languages {
        let (mut first, mut second, mut warm) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let volume = format!("{prefix}-{}", language.kind);
            let _ = docker_cli(&["volume", "rm", "-f", &volume]);
            let tag = format!("{}r{round}p{}", language.kind, std::process::id());
            let v1 = version(
                dir,
                language.sample,
                language.file,
                language.from,
                &language
                    .from
                    .replace("sample-go", &format!("v1{tag}"))
                    .replace("1.0.0", &format!("1.0.{}", round * 2 + 1)),
            )?;
            let v2 = version(
                dir,
                language.sample,
                language.file,
                language.from,
                &language
                    .from
                    .replace("sample-go", &format!("v2{tag}"))
                    .replace("1.0.0", &format!("1.0.{}", round * 2 + 2)),
            )?;
            let p1 = package(dir, language.kind, &format!("v1{tag}"), language.path, &v1)?;
            let p2 = package(dir, language.kind, &format!("v2{tag}"), language.path, &v2)?;
            let (t, reused) = timed_build(&a, &p1).await?;
            assert!(!reused, "a fresh package is built");
            first.push(t);
            let (t, reused) = timed_build(&b, &p1).await?;
            assert!(reused, "the second peer names the first peer's build");
            second.push(t);
            let (t, _) = timed_build(&a, &p2).await?;
            warm.push(t);
            for (launcher, package) in [(&a, &p1), (&b, &p1), (&a, &p2)] {
                let image = launcher.names(&package.id)?.image;
                let _ = docker_cli(&["rmi", &image]);
            }
        }
        let _ = docker_cli(&["volume", "rm", "-f", &format!("{prefix}-{}", language.kind)]);
        let (first, second, warm) = (median(&mut first), median(&mut second), median(&mut warm));
        println!(
            "| {} | {:.2} s | {:.3} s | {:.2} s | {:.0}x faster | {:.1}x faster |",
            language.name,
            first,
            second,
            warm,
            first / second,
            first / warm
        );
    }
    println!();
    Ok(())
}
