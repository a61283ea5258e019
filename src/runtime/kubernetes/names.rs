//! Names, labels and annotations on Kubernetes (docs/KUBERNETES.md): a Pod
//! name must be a DNS label and a label value at most 63 characters of
//! `[A-Za-z0-9._-]`, which Fabric's container names and package ids are not.
//! So the Pod is named by a readable prefix of Fabric's name and a hash of
//! all of it; a label value that is not valid as it stands is hashed; and
//! every exact value is kept in an annotation of the same key, against which
//! every selection is checked (a hash collision never touches another
//! peer's Pod).

use sha2::{Digest, Sha256};

use crate::runtime::{Labels, LABEL_NETWORK_ID, LABEL_PEER_ID};

/// The annotation holding Fabric's container name (as on a swarm service).
pub const CONTAINER_NAME: &str = "org.cclaunch.container-name";
/// The label selecting one peer's Pods: a hash of its network and peer ids.
pub const SCOPE: &str = "org.cclaunch.scope";

/// A DNS label's limit.
const MAX_NAME: usize = 63;
/// Hex digits of sha256 that end a Pod name, or make a hashed label value:
/// 64 bits, so distinct names meet only by a collision nobody will see.
const HASH_HEX: usize = 16;

fn hash(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))[..HASH_HEX].to_string()
}

/// The Pod (and Secret) name of Fabric's container name `container`: the
/// same for the same name, a valid DNS label for any name
/// (`runtime::dns_label`, as a swarm service is named).
pub fn pod_name(container: &str) -> String {
    crate::runtime::dns_label::of(container)
}

/// Whether `value` is a valid label value as it stands.
fn valid_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= MAX_NAME
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && alnum(value.chars().next())
            && alnum(value.chars().last()))
}

/// The label value for `value`: itself when valid, else `sha256-` and 16 hex
/// digits of its hash (the exact value is in the annotation).
pub fn label_value(value: &str) -> String {
    if valid_value(value) {
        value.to_string()
    } else {
        format!("sha256-{}", hash(value.as_bytes()))
    }
}

/// Whether `key` is a valid label key (`[prefix/]name`, the name at most 63
/// characters of `[A-Za-z0-9._-]` starting and ending alphanumeric).
pub fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    prefix_ok && !name.is_empty() && valid_value(name)
}

/// The scope of a network and peer: 16 hex digits of sha256 of both with a
/// NUL between (so `a`+`bc` and `ab`+`c` differ).
pub fn scope(network_id: &str, peer_id: &str) -> String {
    hash(format!("{network_id}\0{peer_id}").as_bytes())
}

/// The labels a Pod carries for cclaunch's `labels`: each with a valid key,
/// its value as [`label_value`] makes it, plus the scope when both the
/// network and the peer are among them.
pub fn pod_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    let mut out = Labels::new();
    let (mut network, mut peer) = (None, None);
    for (key, value) in labels {
        match key {
            LABEL_NETWORK_ID => network = Some(value),
            LABEL_PEER_ID => peer = Some(value),
            _ => {}
        }
        if valid_key(key) {
            out.insert(key.to_string(), label_value(value));
        }
    }
    if let (Some(network), Some(peer)) = (network, peer) {
        out.insert(SCOPE.to_string(), scope(network, peer));
    }
    out
}

/// A label selector (`k=v,k=v`) for Pods carrying all of `labels`.
pub fn selector(labels: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = pod_labels(labels.iter().copied()).into_iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `$` doubled: Kubernetes expands `$(NAME)` in args and env values and turns
/// `$$` into `$`, so each value arrives as Fabric gave it.
pub fn escape(value: &str) -> String {
    value.replace('$', "$$")
}

/// The reverse of [`escape`].
pub fn unescape(value: &str) -> String {
    value.replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_kept_when_valid_and_hashed_when_not() {
        assert_eq!(label_value("true"), "true");
        assert_eq!(label_value("peer0.org1"), "peer0.org1");
        assert_eq!(label_value(""), "");
        let id = format!("mycc:{}", "0f".repeat(32));
        let hashed = label_value(&id);
        assert!(
            hashed.starts_with("sha256-") && hashed.len() == 23,
            "{hashed}"
        );
        assert!(valid_value(&hashed));
        assert_ne!(label_value("-x"), "-x");
        assert_ne!(label_value(&"a".repeat(64)), "a".repeat(64));
        assert!(valid_key("org.cclaunch.package-id"));
        assert!(valid_key("test.cclaunch.org/scope"));
        assert!(!valid_key("bad key"));
        assert!(!valid_key("Upper.Prefix/x"));
    }

    #[test]
    fn the_scope_keeps_network_and_peer_apart() {
        assert_ne!(scope("a", "bc"), scope("ab", "c"));
        let labels = pod_labels([
            ("org.cclaunch.managed", "true"),
            (LABEL_PEER_ID, "bc"),
            (LABEL_NETWORK_ID, "a"),
        ]);
        assert_eq!(labels[SCOPE], scope("a", "bc"));
        assert_eq!(
            selector(&[(LABEL_NETWORK_ID, "a"), ("org.cclaunch.managed", "true")]),
            "org.cclaunch.managed=true,org.cclaunch.network-id=a"
        );
    }

    #[test]
    fn dollars_are_doubled_and_undoubled() {
        assert_eq!(escape("a$(B)$$c$"), "a$$(B)$$$$c$$");
        assert_eq!(unescape(&escape("a$(B)$$c$")), "a$(B)$$c$");
    }
}
