//! `cclaunch builder install DIR`: the four programs a peer runs, as small sh
//! scripts that exec this very binary, and the core.yaml lines that name them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::client::{Address, SERVER_ENV};

/// The peer's entry points, in the order it runs them.
pub const VERBS: [&str; 4] = ["detect", "build", "release", "run"];

#[derive(Debug, Clone)]
pub struct Install {
    pub dir: PathBuf,
    /// The builder's name in core.yaml.
    pub name: String,
    /// Baked in as the default when `CCLAUNCH_SERVER` is not passed on.
    pub server: Option<String>,
    /// Baked in as the default when `CCLAUNCH_CONFIG` is not passed on.
    pub config: Option<PathBuf>,
    /// Client TLS files for an https sidecar, by variable
    /// (`CCLAUNCH_SERVER_CA`, ...): defaults too.
    pub server_files: Vec<(&'static str, PathBuf)>,
}

/// Writes DIR/bin/{detect,build,release,run} (0755) and prints the snippet.
pub fn install(args: &Install) -> Result<()> {
    let address = args.server.as_deref().map(Address::parse).transpose()?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this cclaunch binary's own path")?;
    let dir = super::absolute(&args.dir)?;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let config = args.config.as_deref().map(super::absolute).transpose()?;
    let mut defaults = Vec::new();
    if let Some(server) = &args.server {
        defaults.push((SERVER_ENV, server.clone()));
    }
    if let Some(config) = &config {
        defaults.push(("CCLAUNCH_CONFIG", path_text(config)?));
    }
    for (name, file) in &args.server_files {
        defaults.push((name, path_text(&super::absolute(file)?)?));
    }
    for verb in VERBS {
        let script = script(&path_text(&exe)?, verb, &defaults);
        super::write_atomic(&bin.join(verb), script.as_bytes(), 0o755)?;
    }
    println!(
        "Installed the cclaunch external builder in {} (bin/detect, build, release, run exec {}).",
        dir.display(),
        exe.display()
    );
    if matches!(address, Some(Address::Https(_))) && args.server_files.len() < 3 {
        println!(
            "The sidecar is https (mutual TLS): give install --server-ca, --server-cert and \
             --server-key, or have the peer pass CCLAUNCH_SERVER_CA, _CERT and _KEY on."
        );
    }
    println!("Add it to the peer's core.yaml:\n");
    print!("{}", core_yaml(&args.name, &dir)?);
    Ok(())
}

fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))
}

/// One entry point: defaults for variables the peer did not pass on, then
/// exec, so the peer's SIGTERM reaches cclaunch itself.
fn script(exe: &str, verb: &str, defaults: &[(&str, String)]) -> String {
    let mut text = format!(
        "#!/bin/sh\n# Fabric external builder `{verb}`, written by `cclaunch builder install`.\n"
    );
    for (name, value) in defaults {
        text.push_str(&format!(
            "if [ -z \"${{{name}:-}}\" ]; then {name}={}; export {name}; fi\n",
            quote(value)
        ));
    }
    text.push_str(&format!("exec {} builder {verb} \"$@\"\n", quote(exe)));
    text
}

/// Single-quoted for sh: nothing inside is expanded.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The `chaincode.externalBuilders` entry for core.yaml.
fn core_yaml(name: &str, dir: &Path) -> Result<String> {
    let snippet = serde_json::json!({
        "chaincode": {
            "externalBuilders": [{
                "name": name,
                "path": path_text(dir)?,
                "propagateEnvironment": [
                    SERVER_ENV,
                    "CCLAUNCH_SERVER_CA",
                    "CCLAUNCH_SERVER_CERT",
                    "CCLAUNCH_SERVER_KEY",
                    "CCLAUNCH_CONFIG",
                    super::ccaas::CONFIG_ENV,
                ],
            }]
        }
    });
    serde_yaml::to_string(&snippet).context("cannot render the core.yaml snippet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_exec_the_binary_with_quoted_defaults() {
        let text = script(
            "/opt/it's here/cclaunch",
            "run",
            &[(SERVER_ENV, "unix:/run/cc.sock".to_string())],
        );
        assert_eq!(
            text,
            "#!/bin/sh\n# Fabric external builder `run`, written by `cclaunch builder install`.\n\
             if [ -z \"${CCLAUNCH_SERVER:-}\" ]; then CCLAUNCH_SERVER='unix:/run/cc.sock'; export CCLAUNCH_SERVER; fi\n\
             exec '/opt/it'\\''s here/cclaunch' builder run \"$@\"\n"
        );
    }

    #[test]
    fn the_snippet_is_core_yaml() {
        let yaml = core_yaml("cclaunch", Path::new("/opt/cclaunch-builder")).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let builder = &value["chaincode"]["externalBuilders"][0];
        assert_eq!(builder["path"].as_str(), Some("/opt/cclaunch-builder"));
        assert_eq!(builder["name"].as_str(), Some("cclaunch"));
        assert_eq!(
            builder["propagateEnvironment"][0].as_str(),
            Some("CCLAUNCH_SERVER")
        );
    }
}
