//! Node chaincode on the real fabric-shim for the cluster labs, whose nodes
//! cannot reach the npm registry: its dependencies installed on the host's
//! engine first, and packaged with them.

use std::path::Path;
use std::time::Instant;

use cclaunch::package::{Limits, Package};

/// testdata/chaincode/node-shim with its dependencies installed by npm in
/// the host's nodeenv (which reaches the npm registry), in `dir`/node-shim.
pub fn shim_with_dependencies(dir: &Path) -> std::path::PathBuf {
    let code = dir.join("node-shim");
    std::fs::create_dir_all(&code).expect("mkdir");
    for file in ["package.json", "chaincode.js"] {
        std::fs::copy(
            super::repo()
                .join("testdata/chaincode/node-shim")
                .join(file),
            code.join(file),
        )
        .expect("copy the sample");
    }
    let started = Instant::now();
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "-v"])
        .arg(format!("{}:/w", code.display()))
        .args([
            "-w",
            "/w",
            "-v",
            "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro",
            "-e",
            "npm_config_cafile=/etc/ssl/certs/host-ca.crt",
            super::NODEENV,
            "npm",
            "install",
            "--omit=dev",
        ])
        .output()
        .expect("docker run npm install");
    assert!(
        out.status.success(),
        "npm install on the host engine: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(code.join("node_modules/fabric-shim").is_dir());
    eprintln!(
        "node-shim: dependencies installed in {:.1?}",
        started.elapsed()
    );
    code
}

/// A package of every file under `code`, node_modules included (cclaunch's
/// own packager skips it) and a symlink to a file written as that file, as
/// Fabric's packager does (it opens each path it walks): npm reinstalls a
/// dependency whose `.bin` link is missing, which needs the network.
pub fn package_with_node_modules(dir: &Path, label: &str, code: &Path) -> Package {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                walk(root, &entry.path(), out);
            } else if kind.is_file() || entry.path().is_file() {
                out.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(code, code, &mut files);
    files.sort();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        tempfile::tempfile_in(dir).expect("temp file"),
        flate2::Compression::fast(),
    ));
    for rel in files {
        let data = std::fs::read(code.join(&rel)).expect("read");
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o100644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, Path::new("src").join(&rel), data.as_slice())
            .expect("append");
    }
    let code_tar_gz = tar.into_inner().expect("tar").finish().expect("gzip");
    let file = dir.join(format!("{label}.tar.gz"));
    cclaunch::package::wrap(
        &cclaunch::package::Metadata {
            path: String::new(),
            kind: "node".into(),
            label: label.into(),
        },
        code_tar_gz,
        &file,
        flate2::Compression::default(),
    )
    .expect("package");
    Package::open(&file, Limits::default()).expect("package is valid")
}
