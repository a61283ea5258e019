//! Package ids as Fabric makes them: `<label>:<hex sha256>` (its
//! `persistence.PackageID`, `%s:%x`), the label matching Fabric's label
//! regex. Checked wherever an id enters (CLI, API, the builder's
//! chaincode.json) before it names anything: container names replace every
//! odd character with `-`, so unchecked ids such as `a b:1` and `a-b:1`
//! would share one container.

use crate::excerpt::quote;

/// Longest label accepted. Fabric sets none; Docker limits a repository
/// name to 255 bytes, and the image name holds the label plus two 64-digit
/// hashes and the peer's names, so longer labels could never be built.
pub const LABEL_MAX: usize = 128;

/// Hex digits in a sha256.
const HASH_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "package id {} is not <label>:<sha256 in hex> as Fabric makes it: {why}",
    quote(id)
)]
pub struct Invalid {
    pub id: String,
    pub why: &'static str,
}

/// Checks `id` is a package id Fabric could have made.
pub fn check(id: &str) -> Result<(), Invalid> {
    let invalid = |why| {
        Err(Invalid {
            id: id.to_string(),
            why,
        })
    };
    let Some((label, hash)) = id.rsplit_once(':') else {
        return invalid("no ':' between label and hash");
    };
    if label.is_empty() {
        return invalid("the label is empty");
    }
    if label.len() > LABEL_MAX {
        return invalid("the label is longer than 128 characters");
    }
    if crate::package::validate_label(label).is_err() {
        return invalid("the label must match ^[[:alnum:]][[:alnum:]_.+-]*$");
    }
    let hex = hash
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hash.len() != HASH_LEN || !hex {
        return invalid("the hash must be 64 lower-case hex digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "6019a763daab88b72cd0cb3b32d53c664c57db19534de385ffe3bed2a61c075e";

    #[test]
    fn ids_fabric_makes_pass() {
        for label in [
            "mycc",
            "basic_1.0",
            "a+b",
            "a-b",
            "A1",
            &"x".repeat(LABEL_MAX),
        ] {
            let id = format!("{label}:{HASH}");
            assert_eq!(check(&id), Ok(()), "{id}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_bounded_escaped_excerpt() {
        let long = format!("{}:{HASH}", "x".repeat(LABEL_MAX + 1));
        let huge = "y".repeat(100_000);
        for id in [
            "a b:1".to_string(),
            "a\nb:1".to_string(),
            format!("a b:{HASH}"),
            format!("a\nb:{HASH}"),
            format!("_cc:{HASH}"),
            format!(":{HASH}"),
            format!("cc:{}", HASH.to_uppercase()),
            format!("cc:{}", &HASH[1..]),
            format!("cc:{HASH}0"),
            format!("a:b:{HASH}"),
            "mycc:1.0".to_string(),
            HASH.to_string(),
            String::new(),
            long,
            huge.clone(),
        ] {
            let error = check(&id).unwrap_err();
            let message = error.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(message.len() < 400, "{message}");
            assert!(message.starts_with("package id \""), "{message}");
        }
        assert!(check("a\nb:1")
            .unwrap_err()
            .to_string()
            .contains(r#""a\nb:1""#));
    }
}
