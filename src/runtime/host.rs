//! How a chaincode's container meets its host: core.yaml's
//! `vm.docker.hostConfig`. Fabric hands that map to its engine as it is, so
//! cclaunch keeps it as a map with Docker's key spelling (`NetworkMode`,
//! `Memory`, `LogConfig`, ...): the Docker engine takes all of it, and an
//! engine that runs chaincode elsewhere reads the few settings it can honour
//! through the accessors here.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Labels;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct HostConfig {
    settings: Map<String, Value>,
}

impl HostConfig {
    /// `NetworkMode`: `host`, `bridge`, a network's name; `None` when unset.
    pub fn network_mode(&self) -> Option<&str> {
        self.settings.get("NetworkMode").and_then(Value::as_str)
    }

    /// `Memory`: the memory limit in bytes.
    pub fn memory(&self) -> Option<i64> {
        self.settings.get("Memory").and_then(Value::as_i64)
    }

    /// `NanoCpus`: the CPU limit in billionths of a CPU.
    pub fn nano_cpus(&self) -> Option<i64> {
        self.settings.get("NanoCpus").and_then(Value::as_i64)
    }

    /// The same with `key` (as Docker's API spells it) set to `value`.
    pub fn with(mut self, key: &str, value: Value) -> HostConfig {
        self.settings.insert(key.to_string(), value);
        self
    }

    /// The same, on `mode` (a build container's network).
    pub fn with_network_mode(self, mode: &str) -> HostConfig {
        self.with("NetworkMode", Value::from(mode))
    }

    /// The same, with `binds` (`source:target[:ro]`) mounted.
    pub fn with_binds(self, binds: &[String]) -> HostConfig {
        self.with("Binds", Value::from(binds.to_vec()))
    }

    /// The same, with the volume `name` mounted read-write at `target`; made
    /// with `labels` by the engine if it does not exist.
    pub fn with_volume(mut self, name: &str, target: &str, labels: &Labels) -> HostConfig {
        let mount = serde_json::json!({
            "Type": "volume",
            "Source": name,
            "Target": target,
            "VolumeOptions": { "Labels": labels },
        });
        match self
            .settings
            .get_mut("Mounts")
            .and_then(Value::as_array_mut)
        {
            Some(mounts) => mounts.push(mount),
            None => {
                self.settings
                    .insert("Mounts".to_string(), Value::from(vec![mount]));
            }
        }
        self
    }

    /// Every setting, keys as Docker's API spells them.
    pub fn settings(&self) -> &Map<String, Value> {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_settings_other_engines_honour() {
        let host: HostConfig = serde_yaml::from_str(
            "NetworkMode: host\nMemory: 2147483648\nNanoCpus: 500000000\nDns:\n",
        )
        .unwrap();
        assert_eq!(host.network_mode(), Some("host"));
        assert_eq!(host.memory(), Some(2147483648));
        assert_eq!(host.nano_cpus(), Some(500000000));
        let built = host
            .with_network_mode("none")
            .with_binds(&["/a:/b:ro".into()]);
        assert_eq!(built.network_mode(), Some("none"));
        assert_eq!(built.settings()["Binds"][0], "/a:/b:ro");
        assert_eq!(HostConfig::default().network_mode(), None);
    }
}
