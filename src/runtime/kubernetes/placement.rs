//! Where a chaincode Pod may run and what its node needs to pull: node
//! selector entries (`key=value`), tolerations in `kubectl taint`'s own
//! syntax (`key[=value][:Effect]`), and image pull Secrets by name. Read from
//! configuration as text (one list, or one comma-separated string, so that
//! an environment variable can set it) and checked there, so a Pod never
//! reaches the API server with a selector it would refuse.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};

const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `key=value` as a node selector entry, or why Kubernetes would refuse it.
pub fn selector(entry: &str) -> Result<(String, String), String> {
    let (key, value) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not key=value"))?;
    check_key(key)?;
    check_value(value)?;
    Ok((key.to_string(), value.to_string()))
}

/// The node selector of `entries` (each checked; a key given twice is
/// refused rather than one value silently winning).
pub fn node_selector(entries: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut chosen = BTreeMap::new();
    for entry in entries {
        let (key, value) = selector(entry)?;
        if chosen.insert(key.clone(), value).is_some() {
            return Err(format!("the key {key:?} is given twice"));
        }
    }
    Ok(chosen)
}

/// `key[=value][:Effect]`, as `kubectl taint` writes a taint: tolerated
/// with `Equal` when a value is given, `Exists` otherwise, for one effect or
/// (none given) all of them.
pub fn toleration(entry: &str) -> Result<Toleration, String> {
    let (rest, effect) = match entry.rsplit_once(':') {
        Some((rest, effect)) => {
            if !EFFECTS.contains(&effect) {
                return Err(format!(
                    "{entry:?}: the effect {effect:?} is none of {}",
                    EFFECTS.join(", ")
                ));
            }
            (rest, Some(effect.to_string()))
        }
        None => (entry, None),
    };
    let (key, value) = match rest.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (rest, None),
    };
    check_key(key).map_err(|e| format!("{entry:?}: {e}"))?;
    if let Some(value) = value {
        check_value(value).map_err(|e| format!("{entry:?}: {e}"))?;
    }
    Ok(Toleration {
        key: Some(key.to_string()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.to_string()),
        value: value.map(str::to_string),
        effect,
        toleration_seconds: None,
    })
}

pub fn tolerations(entries: &[String]) -> Result<Vec<Toleration>, String> {
    entries.iter().map(|e| toleration(e)).collect()
}

/// Secrets of the namespace holding registry credentials for the node.
pub fn pull_secrets(names: &[String]) -> Result<Vec<LocalObjectReference>, String> {
    names
        .iter()
        .map(|name| {
            if is_subdomain(name) {
                Ok(LocalObjectReference {
                    name: name.clone(),
                })
            } else {
                Err(format!(
                    "{name:?} is not a Secret's name (lower-case letters, digits, '-' and '.', 253 at most)"
                ))
            }
        })
        .collect()
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name up to
/// 63 characters of letters, digits, '-', '_' and '.', alphanumeric at both
/// ends.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !is_subdomain(prefix) {
            return Err(format!(
                "the key {key:?} has a prefix that is not a DNS subdomain"
            ));
        }
    }
    if name.is_empty() || !is_label_text(name) {
        return Err(format!(
            "the key {key:?} is not a label key (up to 63 letters, digits, '-', '_' or '.', alphanumeric at both ends, after an optional DNS prefix and '/')"
        ));
    }
    Ok(())
}

/// A label value: empty, or as a key's name part.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_text(value) {
        Ok(())
    } else {
        Err(format!(
            "the value {value:?} is not a label value (up to 63 letters, digits, '-', '_' or '.', alphanumeric at both ends)"
        ))
    }
}

fn is_label_text(text: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && ends(text.chars().next())
        && ends(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A DNS subdomain: up to 253 characters, dot-separated DNS labels.
fn is_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(super::pods::is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_entries_are_label_pairs() {
        assert_eq!(
            selector("kubernetes.io/hostname=node-1").unwrap(),
            ("kubernetes.io/hostname".to_string(), "node-1".to_string())
        );
        assert_eq!(selector("disk=").unwrap(), ("disk".into(), "".into()));
        for bad in [
            "disk",
            "=ssd",
            "disk=-ssd",
            "Bad_Prefix/x=y",
            "a/=b",
            "example..com/gpu=x",
            "a.-b/k=v",
            &format!("k={}", "v".repeat(64)),
        ] {
            assert!(selector(bad).is_err(), "{bad}");
        }
        let twice = node_selector(&["disk=ssd".into(), "disk=hdd".into()]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
    }

    #[test]
    fn tolerations_read_as_kubectl_taint_writes_taints() {
        let t = toleration("dedicated=chaincode:NoSchedule").unwrap();
        assert_eq!(
            (
                t.key.as_deref(),
                t.operator.as_deref(),
                t.value.as_deref(),
                t.effect.as_deref()
            ),
            (
                Some("dedicated"),
                Some("Equal"),
                Some("chaincode"),
                Some("NoSchedule")
            )
        );
        let t = toleration("example.com/gpu").unwrap();
        assert_eq!(
            (t.operator.as_deref(), t.value, t.effect),
            (Some("Exists"), None, None)
        );
        let t = toleration("spot:NoExecute").unwrap();
        assert_eq!(
            (t.operator.as_deref(), t.effect.as_deref()),
            (Some("Exists"), Some("NoExecute"))
        );
        let e = toleration("spot:NoRun").unwrap_err();
        assert!(e.contains("NoSchedule, PreferNoSchedule, NoExecute"), "{e}");
        assert!(toleration(":NoSchedule").is_err());
    }

    #[test]
    fn pull_secrets_are_secret_names() {
        assert_eq!(pull_secrets(&["regcred".into()]).unwrap().len(), 1);
        assert!(pull_secrets(&["RegCred".into()]).is_err());
        assert!(pull_secrets(&["reg..cred".into()]).is_err());
    }
}
