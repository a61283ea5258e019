//! Output split into lines: the one splitter (mirrors, the Logs API, build
//! output), bounded per line.

/// One line of output. `partial` marks a piece of a line longer than the
/// limit: the next piece follows in the next line, nothing is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub partial: bool,
}

/// Splits a byte stream into lines, holding at most `max` bytes at a time.
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(4),
        }
    }

    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Line)) {
        while let Some(&first) = bytes.first() {
            if self.buf.len() >= self.max {
                if first == b'\n' {
                    emit(self.take(self.buf.len(), false));
                    bytes = &bytes[1..];
                } else {
                    // Full and the line goes on: hand out a piece, cut on a
                    // character boundary so no piece is garbled.
                    let cut = match std::str::from_utf8(&self.buf) {
                        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
                        _ => self.buf.len(),
                    };
                    emit(self.take(cut, true));
                }
                continue;
            }
            let room = self.max - self.buf.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&window[..i]);
                    emit(self.take(self.buf.len(), false));
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                }
            }
        }
    }

    /// Emits what is left when the stream ends without a final newline.
    pub fn finish(&mut self, mut emit: impl FnMut(Line)) {
        if !self.buf.is_empty() {
            emit(self.take(self.buf.len(), false));
        }
    }

    fn take(&mut self, n: usize, partial: bool) -> Line {
        let rest = self.buf.split_off(n);
        let piece = std::mem::replace(&mut self.buf, rest);
        let mut text = String::from_utf8_lossy(&piece).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        Line { text, partial }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, |l| out.push(l));
        }
        lines.finish(|l| out.push(l));
        out
    }

    fn line(text: &str, partial: bool) -> Line {
        Line {
            text: text.into(),
            partial,
        }
    }

    #[test]
    fn lines_are_joined_across_chunks() {
        assert_eq!(
            split(64, &[b"he", b"llo\nwor", b"ld\n", b"tail"]),
            [
                line("hello", false),
                line("world", false),
                line("tail", false)
            ]
        );
    }

    #[test]
    fn long_lines_come_out_in_bounded_pieces_with_nothing_lost() {
        let out = split(4, &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            out,
            [
                line("abcd", true),
                line("efgh", true),
                line("ij", false),
                line("xy", false)
            ]
        );
    }

    #[test]
    fn pieces_do_not_split_characters() {
        // "aé" is 3 bytes; a 4-byte limit must not cut the next "é" in half.
        let out = split(4, &["aééé\n".as_bytes()]);
        assert_eq!(out, [line("aé", true), line("éé", false)]);
    }

    #[test]
    fn empty_lines_and_crlf_are_kept_as_lines() {
        assert_eq!(
            split(16, &[b"a\r\n\nb\n"]),
            [line("a", false), line("", false), line("b", false)]
        );
    }
}
