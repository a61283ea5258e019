//! Chaincode output as people see it. Chaincode is untrusted, and its lines
//! reach the sidecar's log, the peer's log (`builder run`) and terminals
//! (`logs`, `start -f`): a carriage return would let a line overwrite its own
//! logger prefix, cursor and OSC sequences could rewrite or retitle a
//! terminal. So every control character is shown escaped (`\r`, `\x1b`,
//! `\u{9b}`), with two exceptions that cannot move anything: tab, and SGR
//! colour sequences (`ESC [ 32 m`), which the Fabric shims write on every
//! log line. Where a log is written, colours are stripped (the log format has
//! its own); on a terminal they are kept and reset at the end of the line, so
//! none bleeds into the next. The Logs API hands out the raw lines.

use std::borrow::Cow;
use std::fmt::Write;

/// What to do with SGR (colour) sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sgr {
    /// Drop them: for logs.
    Strip,
    /// Pass them on, with a reset at the end of the line: for terminals.
    Keep,
}

const ESC: char = '\u{1b}';
const RESET: &str = "\u{1b}[0m";

/// `text` with its control characters made visible (see the module's comment).
pub fn render(text: &str, sgr: Sgr) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\t' && is_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut kept_sgr = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == ESC {
            if let Some(len) = sgr_len(rest) {
                if sgr == Sgr::Keep {
                    out.push_str(&rest[..len]);
                    kept_sgr = true;
                }
                rest = &rest[len..];
                continue;
            }
        }
        match c {
            '\r' => out.push_str("\\r"),
            c if c == '\t' || !is_control(c) => out.push(c),
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    if kept_sgr {
        out.push_str(RESET);
    }
    Cow::Owned(out)
}

/// C0 controls, DEL, C1 controls, and the Unicode characters that break a
/// line or reorder what follows (line/paragraph separators, bidi overrides).
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The length of the SGR sequence `text` starts with (`ESC [`, parameters
/// of digits, `;` and `:`, then `m`), if it starts with one.
fn sgr_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix("\u{1b}[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        let line = "2026-12-01 INFO [c-api] tab\tand é, \\x1b as text";
        assert!(matches!(render(line, Sgr::Strip), Cow::Borrowed(l) if l == line));
    }

    #[test]
    fn colours_are_stripped_for_logs_and_kept_with_a_reset_for_terminals() {
        // As fabric-shim (winston) writes its level.
        let line = "\u{1b}[32minfo\u{1b}[39m: [c-api] ready \u{1b}[1;38;2;0;128:0mx\u{1b}[m";
        assert_eq!(render(line, Sgr::Strip), "info: [c-api] ready x");
        assert_eq!(render(line, Sgr::Keep), format!("{line}{RESET}"));
    }

    #[test]
    fn other_controls_are_escaped_visibly() {
        let line = "prefix\rforged\u{1b}]0;title\u{7}\u{1b}[2K\u{0}\u{7f}\u{9b}31m\u{202e}x";
        let shown = r"prefix\rforged\x1b]0;title\x07\x1b[2K\x00\x7f\u{9b}31m\u{202e}x";
        assert_eq!(render(line, Sgr::Strip), shown);
        // Nothing to reset when no colour was kept.
        assert_eq!(render(line, Sgr::Keep), shown);
        // An unfinished SGR is not one.
        assert_eq!(render("\u{1b}[32", Sgr::Keep), r"\x1b[32");
    }
}
