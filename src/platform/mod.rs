//! Per-language build recipes: which image builds, which script, the runtime
//! Dockerfile and the container's arguments, exactly as a Fabric peer has them.

pub mod address;
pub mod golang;
mod java;
mod node;

use std::fmt;

use crate::config::Config;
use crate::excerpt::quote;
pub use address::PeerAddress;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Fabric's wording for a type no platform claims (the type quoted, bounded).
    #[error("unknown chaincodeType: {}", quote(.0))]
    Unknown(String),
    #[error(
        "golang chaincode path {} is not a Go import path (letters, digits and -._~/+@ only)",
        quote(.0)
    )]
    GoPath(String),
}

/// The languages a peer's Docker controller can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Golang,
    Node,
    Java,
}

/// What the build container runs: the "pass-through" build of Fabric's
/// `util.DockerBuild` (code in /chaincode/input, result in /chaincode/output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    pub builder_image: String,
    /// Run as `/bin/sh -c <script>`.
    pub script: String,
    pub env: Vec<String>,
    /// The runtime image's Dockerfile; its context holds `binpackage.tar`.
    pub dockerfile: String,
}

impl Platform {
    /// Matches metadata.json's `type` case-insensitively, as the peer does.
    pub fn from_type(kind: &str) -> Result<Platform, Error> {
        match kind.to_ascii_uppercase().as_str() {
            "GOLANG" => Ok(Platform::Golang),
            "NODE" => Ok(Platform::Node),
            "JAVA" => Ok(Platform::Java),
            _ => Err(Error::Unknown(kind.to_string())),
        }
    }

    /// The upper-case name Fabric writes in image labels.
    pub fn fabric_type(self) -> &'static str {
        match self {
            Platform::Golang => "GOLANG",
            Platform::Node => "NODE",
            Platform::Java => "JAVA",
        }
    }

    pub fn runtime_image(self, config: &Config) -> String {
        let configured = match self {
            Platform::Golang => &config.chaincode.golang.runtime,
            Platform::Node => &config.chaincode.node.runtime,
            Platform::Java => &config.chaincode.java.runtime,
        };
        config.image(configured)
    }

    /// Go builds in `chaincode.builder`; Node and Java build in their runtime.
    pub fn builder_image(self, config: &Config) -> String {
        match self {
            Platform::Golang => config.image(&config.chaincode.builder),
            _ => self.runtime_image(config),
        }
    }

    /// The full build recipe for a package whose metadata `path` is given.
    pub fn plan(
        self,
        config: &Config,
        path: &str,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BuildPlan, Error> {
        let (script, env) = match self {
            Platform::Golang => {
                validate_go_path(path)?;
                (
                    golang::build_script(path, config.chaincode.golang.dynamic_link),
                    golang::build_env(lookup_env),
                )
            }
            Platform::Node => (node::BUILD_SCRIPT.to_string(), Vec::new()),
            Platform::Java => (java::BUILD_SCRIPT.to_string(), Vec::new()),
        };
        Ok(BuildPlan {
            builder_image: self.builder_image(config),
            script,
            env,
            dockerfile: self.dockerfile(config),
        })
    }

    /// Fabric's `GenerateDockerfile`: the platform's two lines, the labels and
    /// the build level, joined by newlines with no trailing newline.
    pub fn dockerfile(self, config: &Config) -> String {
        let dest = match self {
            Platform::Golang => "/usr/local/bin",
            Platform::Node => "/usr/local/src",
            Platform::Java => "/root/chaincode-java/chaincode",
        };
        let version = &config.cclaunch.fabric_version;
        [
            format!("FROM {}", self.runtime_image(config)),
            format!("ADD binpackage.tar {dest}"),
            format!(
                r#"LABEL org.hyperledger.fabric.chaincode.type="{}" \"#,
                self.fabric_type()
            ),
            format!(r#"      org.hyperledger.fabric.version="{version}""#),
            format!("ENV CORE_CHAINCODE_BUILDLEVEL={version}"),
        ]
        .join("\n")
    }

    /// The chaincode container's command line: Fabric's, with the address
    /// as given (checked, so it is safe in Node's shell script).
    pub fn args(self, peer_address: &PeerAddress) -> Vec<String> {
        let peer_address = peer_address.as_str();
        match self {
            Platform::Golang => golang::args(peer_address),
            Platform::Node => node::args(peer_address),
            Platform::Java => java::args(peer_address),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fabric_type().to_ascii_lowercase())
    }
}

/// The path lands in a shell script; Go import paths never need more than this.
fn validate_go_path(path: &str) -> Result<(), Error> {
    let ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/+@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::GoPath(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::load_with_env(None, |_| None).unwrap()
    }

    #[test]
    fn types_match_case_insensitively_and_unknown_is_fabrics_error() {
        assert_eq!(Platform::from_type("golang"), Ok(Platform::Golang));
        assert_eq!(Platform::from_type("GoLang"), Ok(Platform::Golang));
        assert_eq!(Platform::from_type("NODE"), Ok(Platform::Node));
        assert_eq!(Platform::from_type("java"), Ok(Platform::Java));
        assert_eq!(
            Platform::from_type("car").unwrap_err().to_string(),
            "unknown chaincodeType: \"car\""
        );
        assert!(Platform::from_type("ccaas").is_err());
    }

    #[test]
    fn dockerfiles_are_fabrics_byte_for_byte() {
        let c = config();
        assert_eq!(
            Platform::Golang.dockerfile(&c),
            "FROM hyperledger/fabric-baseos:2.5\nADD binpackage.tar /usr/local/bin\nLABEL org.hyperledger.fabric.chaincode.type=\"GOLANG\" \\\n      org.hyperledger.fabric.version=\"2.5.16\"\nENV CORE_CHAINCODE_BUILDLEVEL=2.5.16"
        );
        assert!(Platform::Node.dockerfile(&c).starts_with(
            "FROM hyperledger/fabric-nodeenv:2.5\nADD binpackage.tar /usr/local/src\n"
        ));
        assert!(Platform::Java
            .dockerfile(&c)
            .starts_with("FROM hyperledger/fabric-javaenv:2.5\nADD binpackage.tar /root/chaincode-java/chaincode\nLABEL org.hyperledger.fabric.chaincode.type=\"JAVA\" \\\n"));
    }

    fn address(text: &str) -> PeerAddress {
        PeerAddress::parse(text).unwrap()
    }

    #[test]
    fn args_are_fabrics() {
        let peer = address("peer:7052");
        assert_eq!(
            Platform::Golang.args(&peer),
            ["chaincode", "-peer.address=peer:7052"]
        );
        assert_eq!(
            Platform::Java.args(&peer),
            ["/root/chaincode-java/start", "--peerAddress", "peer:7052"]
        );
        let node = Platform::Node.args(&peer);
        assert_eq!(&node[..2], ["/bin/sh", "-c"]);
        assert_eq!(
            node[2],
            "\nset -e\nif [ -x /chaincode/start.sh ]; then\n\t/chaincode/start.sh --peer.address peer:7052\nelse\n\tcd /usr/local/src\n\tnpm start -- --peer.address peer:7052\nfi\n"
        );
    }

    /// Fabric's `nodeStartScript` (core/chaincode/platforms/node), `%[1]s`
    /// being the address: every address that passes the check yields it
    /// byte for byte.
    #[test]
    fn every_valid_address_yields_fabrics_node_script() {
        const FABRIC: &str = "\nset -e\nif [ -x /chaincode/start.sh ]; then\n\t/chaincode/start.sh --peer.address %[1]s\nelse\n\tcd /usr/local/src\n\tnpm start -- --peer.address %[1]s\nfi\n";
        for text in [
            "peer0.org1.example.com:7052",
            "peer0_org1:7052",
            "10.0.0.2:7052",
            "[::1]:7052",
            "[2001:db8::7]:65535",
        ] {
            let args = Platform::Node.args(&address(text));
            assert_eq!(args[2], FABRIC.replace("%[1]s", text), "{text}");
        }
    }

    #[test]
    fn go_plan_uses_the_builder_and_static_linking() {
        let c = config();
        let plan = Platform::Golang
            .plan(&c, "example.com/cc", &|_| None)
            .unwrap();
        assert_eq!(plan.builder_image, "hyperledger/fabric-ccenv:2.5");
        assert_eq!(plan.env, ["GOPROXY=https://proxy.golang.org"]);
        assert!(plan
            .script
            .starts_with("\nset -e\n\nif [ -f \"/chaincode/input/src/go.mod\" ]"));
        assert!(plan.script.contains(
            "GO111MODULE=on go build -v -mod=readonly -ldflags \"-linkmode external -extldflags '-static'\" -o /chaincode/output/chaincode example.com/cc\n"
        ));
        assert!(plan.script.ends_with("fi\necho Done!\n"));
        let env = |k: &str| (k == "GOSUMDB").then(|| "off".to_string());
        assert_eq!(
            Platform::Golang.plan(&c, "x", &env).unwrap().env,
            ["GOPROXY=https://proxy.golang.org", "GOSUMDB=off"]
        );
        assert_eq!(
            Platform::Golang
                .plan(&c, "x; rm -rf /", &|_| None)
                .unwrap_err(),
            Error::GoPath("x; rm -rf /".into())
        );
    }

    #[test]
    fn node_and_java_build_in_their_runtime() {
        let c = config();
        let node = Platform::Node.plan(&c, "", &|_| None).unwrap();
        assert_eq!(node.builder_image, "hyperledger/fabric-nodeenv:2.5");
        assert!(node.script.contains("\tcp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output && npm install --production\n"));
        let java = Platform::Java.plan(&c, "", &|_| None).unwrap();
        assert_eq!(
            (java.builder_image.as_str(), java.script.as_str()),
            ("hyperledger/fabric-javaenv:2.5", "./build.sh")
        );
    }

    #[test]
    fn go_mod_version_is_read() {
        assert_eq!(
            golang::required_go("module x\n\ngo 1.22\n"),
            Some("1.22".into())
        );
        assert_eq!(
            golang::required_go("module x\ngo 1.21\ntoolchain go1.22.3\n"),
            Some("1.22.3".into())
        );
        assert_eq!(golang::required_go("module x\n"), None);
        // Package content reaches a hint: only a version-like word is taken.
        assert_eq!(golang::required_go("go $(reboot)\n"), None);
        assert_eq!(
            golang::required_go(&format!("go 1{}\n", "0".repeat(100))),
            None
        );
    }
}
