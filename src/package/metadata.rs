//! `metadata.json` read without ever quoting it: serde's own messages say
//! "invalid type: string \"...\"", which would put the file's bytes (a key
//! given as a package, say) into an error. Here every value is taken as
//! "a string or something else", unknown keys are skipped unread, and the
//! only messages are JSON syntax errors (which name a position, not bytes)
//! and this module's own.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Metadata;

/// What is wrong with a metadata.json that is valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    Missing,
    NotAString,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldProblem::Missing => "is missing",
            FieldProblem::NotAString => "is not a string",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    #[error("field \"{field}\" {problem}")]
    Field {
        field: &'static str,
        problem: FieldProblem,
    },
}

/// Parses `metadata.json` as the peer CLI writes it.
pub fn parse(text: &[u8]) -> Result<Metadata, Error> {
    let fields: Fields = serde_json::from_slice(text).map_err(Error::Json)?;
    let text = |field: &'static str, value: Option<Text>, required: bool| match value {
        Some(Text::Str(s)) => Ok(s),
        None if !required => Ok(String::new()),
        None => Err(Error::Field {
            field,
            problem: FieldProblem::Missing,
        }),
        Some(Text::Other) => Err(Error::Field {
            field,
            problem: FieldProblem::NotAString,
        }),
    };
    Ok(Metadata {
        path: text("path", fields.path, false)?,
        kind: text("type", fields.kind, true)?,
        label: text("label", fields.label, true)?,
    })
}

#[derive(Default)]
struct Fields {
    path: Option<Text>,
    kind: Option<Text>,
    label: Option<Text>,
}

enum Text {
    Str(String),
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Path,
    Type,
    Label,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldsVisitor)
    }
}

struct FieldsVisitor;

/// Anything but an object is refused with this module's words, not serde's
/// (which would quote the value).
macro_rules! not_an_object {
    ($($method:ident($ty:ty)),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Fields, E> {
            Err(E::custom("it is not a JSON object"))
        })*
    };
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    not_an_object!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_bytes(&[u8])
    );

    fn visit_unit<E: de::Error>(self) -> Result<Fields, E> {
        Err(E::custom("it is not a JSON object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Fields, A::Error> {
        Err(de::Error::custom("it is not a JSON object"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let (slot, name) = match key {
                Key::Path => (&mut fields.path, "path"),
                Key::Type => (&mut fields.kind, "type"),
                Key::Label => (&mut fields.label, "label"),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                // Which one would the peer take? Refuse rather than guess.
                return Err(de::Error::custom(format!("duplicate key \"{name}\"")));
            }
            *slot = Some(map.next_value::<Text>()?);
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

macro_rules! other {
    ($($method:ident($ty:ty)),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Text, E> {
            Ok(Text::Other)
        })*
    };
}

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
        Ok(Text::Str(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Text, E> {
        Ok(Text::Str(s))
    }

    other!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_bytes(&[u8])
    );

    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";

    #[test]
    fn the_peer_clis_metadata_is_read() {
        let m =
            parse(br#"{"path":"x/y","type":"golang","label":"cc_1","extra":[1,{"a":2}]}"#).unwrap();
        assert_eq!(
            (m.path.as_str(), m.kind.as_str(), m.label.as_str()),
            ("x/y", "golang", "cc_1")
        );
        let m = parse(br#"{"type":"node","label":"n"}"#).unwrap();
        assert_eq!(m.path, "");
    }

    #[test]
    fn no_error_quotes_the_file() {
        let cases = [
            format!("\"{SECRET}\""),
            format!("[\"{SECRET}\"]"),
            SECRET.to_string(),
            format!("{{\"type\": 1, \"label\": \"{SECRET}\"}}"),
            format!("{{\"type\": \"golang\", \"label\": [\"{SECRET}\"]}}"),
            format!("{{\"type\": \"golang\", \"label\": \"a\", \"label\": \"{SECRET}\"}}"),
            format!("{{\"type\": \"golang\", \"{SECRET}\": 1}}"),
            format!("{{\"type\": \"golang\", \"label\": \"{SECRET}"),
            format!("{{\"type\": \"golang\", \"label\": 1{SECRET}}}"),
            "{\"type\": \"golang\"}".to_string(),
        ];
        for case in cases {
            let err = parse(case.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{case}"));
            let said = crate::error_chain(&err);
            assert!(
                !said.contains("MIIE") && !said.contains("BgkqhkiG"),
                "{case}: {said}"
            );
            assert!(said.len() < 100, "{said}");
        }
        let missing = parse(br#"{"label":"x"}"#).unwrap_err().to_string();
        assert_eq!(missing, "field \"type\" is missing");
        let twice = parse(br#"{"type":"a","label":"x","label":"y"}"#).unwrap_err();
        assert!(
            twice.to_string().contains("duplicate key \"label\""),
            "{twice}"
        );
    }
}
