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

/// Removes the cache volumes whose names start with `prefix` (each peer's
/// chaincode has its own).
fn remove_volumes(prefix: &str) {
    let filter = format!("name={prefix}");
    let Ok(out) = std::process::Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &filter])
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(prefix))
    {
        let _ = docker_cli(&["volume", "rm", "-f", name]);
    }
}

/// A launcher for `peer` whose caches are the volumes `<prefix>-<platform>-<scope>`.
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
    let (took, reused, _) = traced_build(launcher, package).await?;
    Ok((took, reused))
}

/// Where a build's time goes, in seconds: before the build container
/// (the reuse key, the existing-image check), the build container (create,
/// upload, start, the compiler, copy-out, removal), of which the compiler's
/// own output spans `output`, and the image build.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    before: f64,
    container: f64,
    output: f64,
    image: f64,
}

/// [`timed_build`], and its phases from the build's stages and output lines
/// as they came.
async fn traced_build(launcher: &Launcher, package: &Package) -> Result<(f64, bool, Phases)> {
    let started = Instant::now();
    let seen = std::sync::Mutex::new(Vec::<(f64, String)>::new());
    let note = |line: &str| {
        if let Ok(mut seen) = seen.lock() {
            seen.push((started.elapsed().as_secs_f64(), line.to_string()));
        }
    };
    let built = launcher.build(package, &note).await?;
    let took = started.elapsed().as_secs_f64();
    let seen = seen.into_inner().unwrap_or_default();
    let at = |prefix: &str| {
        seen.iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(t, _)| *t)
    };
    let (compiling, imaging) = (
        at("compiling in").unwrap_or(0.0),
        at("building image").unwrap_or(took),
    );
    let output: Vec<f64> = seen
        .iter()
        .filter(|(t, l)| *t > compiling && *t < imaging && !l.starts_with("compiling in"))
        .map(|(t, _)| *t)
        .collect();
    let phases = Phases {
        before: compiling,
        container: imaging - compiling,
        output: match (output.first(), output.last()) {
            (Some(first), Some(last)) => last - first,
            _ => 0.0,
        },
        image: took - imaging,
    };
    Ok((took, built.reused, phases))
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
    let mut breakdown = Vec::new();
    for (n, language) in languages.iter().enumerate() {
        let volumes = format!("{prefix}-{}-", language.kind);
        let (mut first, mut second, mut warm, mut cold) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut phases = Vec::new();
        for round in 0..ROUNDS {
            remove_volumes(&volumes);
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
            let (t, reused, phased) = traced_build(&a, &p2).await?;
            assert!(!reused, "version 2 is built");
            warm.push(t);
            phases.push(phased);
            let _ = docker_cli(&["rmi", &a.names(&p2.id)?.image]);
            remove_volumes(&volumes);
            let (t, reused) = timed_build(&a, &p2).await?;
            assert!(!reused, "version 2 is built again");
            cold.push(t);
            for (launcher, package) in [(&a, &p1), (&b, &p1), (&a, &p2)] {
                let image = launcher.names(&package.id)?.image;
                let _ = docker_cli(&["rmi", &image]);
            }
        }
        remove_volumes(&volumes);
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
        let of = |f: fn(&Phases) -> f64| median(&mut phases.iter().map(f).collect::<Vec<_>>());
        breakdown.push(format!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            language.name,
            warm,
            of(|p| p.before),
            of(|p| p.container),
            of(|p| p.output),
            of(|p| p.image)
        ));
    }
    println!("\nWhere version 2's warm build goes (medians; the compiler's output spans part of the build container's time):\n");
    println!("| language | v2, warm cache | before the build container (reuse key, existing image) | build container (create, upload, start, compile, copy-out, remove) | of it, first to last compiler output line | image build (context, Dockerfile steps, labels, tag) |");
    println!("|---|---|---|---|---|---|");
    for row in breakdown {
        println!("{row}");
    }
    println!();
    Ok(())
}
