//! Go chaincode: built in `chaincode.builder` (fabric-ccenv), run from
//! `chaincode.golang.runtime` as a static binary in /usr/local/bin.

/// Fabric's build script. `{ldflags}` and `{path}` are filled in; the third
/// slot (Fabric's in-container Go upgrade via curl) is always empty here, as it
/// is in a peer whose chaincode path is not on its own disk, which leaves the
/// script's blank third line.
const BUILD_SCRIPT: &str = r#"
set -e

if [ -f "/chaincode/input/src/go.mod" ] && [ -d "/chaincode/input/src/vendor" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/go.mod" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/{path}/go.mod" ] && [ -d "/chaincode/input/src/{path}/vendor" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode .
elif [ -f "/chaincode/input/src/{path}/go.mod" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode .
else
    GO111MODULE=off GOPATH=/chaincode/input:$GOPATH go build -v {ldflags} -o /chaincode/output/chaincode {path}
fi
echo Done!
"#;

const STATIC_LDFLAGS: &str = "-ldflags \"-linkmode external -extldflags '-static'\"";

pub(super) fn build_script(path: &str, dynamic_link: bool) -> String {
    let ldflags = if dynamic_link { "" } else { STATIC_LDFLAGS };
    BUILD_SCRIPT
        .replace("{ldflags}", ldflags)
        .replace("{path}", path)
}

/// GOPROXY and GOSUMDB come from the launcher's own environment, as the peer
/// takes them from its own; GOPROXY has Fabric's default.
pub(super) fn build_env(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut env = Vec::new();
    for key in ["GOPROXY", "GOSUMDB"] {
        match lookup(key) {
            Some(value) => env.push(format!("{key}={value}")),
            None if key == "GOPROXY" => env.push("GOPROXY=https://proxy.golang.org".to_string()),
            None => {}
        }
    }
    env
}

pub(super) fn args(peer_address: &str) -> Vec<String> {
    vec![
        "chaincode".to_string(),
        format!("-peer.address={peer_address}"),
    ]
}

/// The Go version a go.mod asks for (`toolchain` wins over `go`), to explain a
/// failed build on an older builder image. Only a word that looks like a
/// version is taken: it is package content and goes into a message.
pub fn required_go(go_mod: &str) -> Option<String> {
    let version = |v: &str| {
        (!v.is_empty()
            && v.len() <= 32
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .then(|| v.to_string())
    };
    let mut wanted = None;
    for line in go_mod.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("go"), Some(v)) if wanted.is_none() => wanted = version(v),
            (Some("toolchain"), Some(v)) => wanted = version(v.trim_start_matches("go")).or(wanted),
            _ => {}
        }
    }
    wanted
}
