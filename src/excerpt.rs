//! Quoting untrusted text in messages: at most a bounded excerpt, control
//! characters escaped, so a hostile name or id can neither flood an error
//! (and the gRPC status carrying it) nor rewrite a terminal or a log line.

use std::fmt;

/// How many characters of an untrusted value an error message quotes.
pub const QUOTE_MAX: usize = 128;

/// `text` quoted for a message: in double quotes, escaped like Rust's
/// `{:?}`, cut after [`QUOTE_MAX`] characters with the full length said.
pub fn quote(text: &str) -> Quoted<'_> {
    Quoted {
        text,
        max: QUOTE_MAX,
    }
}

/// Display of an untrusted value, bounded (see [`quote`]).
#[derive(Clone, Copy)]
pub struct Quoted<'a> {
    text: &'a str,
    max: usize,
}

impl Quoted<'_> {
    /// The same text with another bound.
    pub fn max(self, max: usize) -> Self {
        Quoted { max, ..self }
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.text.char_indices().nth(self.max).map(|(i, _)| i);
        let shown = &self.text[..cut.unwrap_or(self.text.len())];
        write!(f, "\"{}\"", shown.escape_debug())?;
        if cut.is_some() {
            write!(f, "… ({} bytes in all)", self.text.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A JSON error said without the document's bytes. serde's data errors quote
/// the offending value (`invalid type: string "..."`), which for a file from
/// a package may be anything, a key among them: only the kind of problem and
/// its position are kept.
pub fn json_error(error: &serde_json::Error) -> JsonError {
    use serde_json::error::Category;
    JsonError {
        what: match error.classify() {
            Category::Syntax => "invalid JSON",
            Category::Eof => "the JSON ends early",
            Category::Data => "a field is missing or has a value of the wrong type",
            Category::Io => "cannot read the JSON",
        },
        line: error.line(),
        column: error.column(),
    }
}

/// See [`json_error`].
#[derive(Debug, thiserror::Error)]
#[error("{what} (line {line}, column {column})")]
pub struct JsonError {
    what: &'static str,
    line: usize,
    column: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_keep_the_position_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Conn {
            tls_required: bool,
        }
        let err =
            serde_json::from_str::<Conn>(r#"{"tls_required": "-----BEGIN KEY"}"#).unwrap_err();
        assert!(err.to_string().contains("BEGIN"), "serde quotes it: {err}");
        let said = json_error(&err).to_string();
        assert!(!said.contains("BEGIN"), "{said}");
        assert!(said.contains("line 1, column"), "{said}");
    }

    #[test]
    fn short_text_is_quoted_whole_and_escaped() {
        assert_eq!(quote("a\nb\u{1b}[2J").to_string(), r#""a\nb\u{1b}[2J""#);
    }

    #[test]
    fn long_text_is_cut_with_its_length_said() {
        let long = "é".repeat(100_000);
        let shown = quote(&long).max(4).to_string();
        assert_eq!(shown, "\"éééé\"… (200000 bytes in all)");
        assert!(quote(&long).to_string().len() < 400);
    }
}
