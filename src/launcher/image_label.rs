//! The one label on an image cclaunch built, `org.cclaunch.image`: the
//! package id it was built from and, when the build had one, its build key
//! (see `reuse`), space-separated (neither holds a space).
//!
//! One label, not one per field: engine 20.10's classic builder turns every
//! label passed through its build API into a build step of its own (a
//! container created and committed), 65–200 ms each (docs/BENCHMARKS.md).
//!
//! Images built by earlier releases carry three labels instead
//! (`org.cclaunch.managed=true`, `.package-id`, `.build-key`). They are still
//! read as cclaunch's: gc removes them, and another peer's build of the same
//! package is still a tag of one.

use crate::runtime::{self, Labels};

/// The labels to build an image of `package_id` with.
pub(super) fn labels(package_id: &str, key: Option<&str>) -> Labels {
    Labels::from([(runtime::LABEL_IMAGE.to_string(), value(package_id, key))])
}

/// The label's value: what a listing filters on to find the same build.
fn value(package_id: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{package_id} {key}"),
        None => package_id.to_string(),
    }
}

/// The listings that find a build of `package_id` with `key`: by this
/// release's label, then by earlier releases' build key label (the key is
/// made as it was then).
pub(super) fn same_build(package_id: &str, key: &str) -> [(&'static str, String); 2] {
    [
        (runtime::LABEL_IMAGE, value(package_id, Some(key))),
        (LEGACY_BUILD_KEY, key.to_string()),
    ]
}

/// The package id an image of cclaunch's was built from; `None` for an image
/// that is not cclaunch's.
pub(super) fn package_id(labels: &Labels) -> Option<&str> {
    if let Some(value) = labels.get(runtime::LABEL_IMAGE) {
        return value.split(' ').next().filter(|id| !id.is_empty());
    }
    let label = |key: &str| labels.get(key).map(String::as_str);
    match label(runtime::LABEL_MANAGED) {
        Some("true") => label(LEGACY_PACKAGE_ID),
        _ => None,
    }
}

/// The listings (a label, with a value or with any) that together hold every
/// image of cclaunch's, this release's and earlier ones'; [`package_id`]
/// tells which rows are.
pub(super) const LISTINGS: [(&str, Option<&str>); 2] = [
    (runtime::LABEL_IMAGE, None),
    (runtime::LABEL_MANAGED, Some("true")),
];

/// Where releases before the one label kept an image's package id and key.
const LEGACY_PACKAGE_ID: &str = runtime::LABEL_PACKAGE_ID;
const LEGACY_BUILD_KEY: &str = "org.cclaunch.build-key";

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn one_label_holds_the_package_id_and_the_key() {
        let labels = labels("cc_1:ab", Some("0f0f"));
        assert_eq!(labels.len(), 1, "one build step, not one per field");
        assert_eq!(labels[runtime::LABEL_IMAGE], "cc_1:ab 0f0f");
        assert_eq!(package_id(&labels), Some("cc_1:ab"));
        assert_eq!(package_id(&super::labels("cc_1:ab", None)), Some("cc_1:ab"));
    }

    #[test]
    fn earlier_releases_images_are_still_cclaunchs() {
        let legacy = of(&[
            (runtime::LABEL_MANAGED, "true"),
            (runtime::LABEL_PACKAGE_ID, "cc_1:ab"),
            ("org.cclaunch.build-key", "0f0f"),
        ]);
        assert_eq!(package_id(&legacy), Some("cc_1:ab"));
    }

    #[test]
    fn other_images_are_not() {
        for labels in [
            of(&[]),
            of(&[(runtime::LABEL_PACKAGE_ID, "cc_1:ab")]),
            of(&[
                (runtime::LABEL_MANAGED, "false"),
                (runtime::LABEL_PACKAGE_ID, "cc_1:ab"),
            ]),
            of(&[(runtime::LABEL_IMAGE, "")]),
            of(&[("org.hyperledger.fabric.chaincode.type", "GOLANG")]),
        ] {
            assert_eq!(package_id(&labels), None, "{labels:?}");
        }
    }
}
