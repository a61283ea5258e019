//! Gzip streams read the way Go's `compress/gzip` reads them (the peer's and
//! the engine's reader): one member after another, each checked against its
//! CRC and size, and bytes after a member that do not start another one an
//! error of their own, [`Trailing`], which says how many there are.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

const MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUF: usize = 64 << 10;

/// Bytes after the end of a gzip stream that are not another gzip member.
#[derive(Debug, thiserror::Error)]
#[error("{bytes} bytes of trailing data after the gzip stream")]
pub struct Trailing {
    pub bytes: u64,
}

/// The decompressed bytes of a gzip stream of one or more members.
pub struct Gunzip<R> {
    state: State<R>,
}

enum State<R> {
    Member(Box<GzDecoder<Source<R>>>),
    Done,
    Failed,
}

impl<R: Read> Gunzip<R> {
    /// `None` when the stream does not start like gzip data.
    pub fn new(inner: R) -> io::Result<Option<Self>> {
        let mut source = Source::new(inner);
        if source.peek2()? != MAGIC {
            return Ok(None);
        }
        Ok(Some(Self {
            state: State::Member(Box::new(GzDecoder::new(source))),
        }))
    }
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let State::Member(member) = &mut self.state else {
                return match self.state {
                    State::Failed => Err(io::Error::other("the gzip stream failed earlier")),
                    _ => Ok(0),
                };
            };
            match member.read(buf) {
                Ok(0) => {}
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.state = State::Failed;
                    return Err(e);
                }
            }
            // The member ended, its CRC and size checked: another may follow.
            let State::Member(member) = std::mem::replace(&mut self.state, State::Failed) else {
                unreachable!("matched above");
            };
            let mut source = member.into_inner();
            match source.peek2()? {
                [] => {
                    self.state = State::Done;
                    return Ok(0);
                }
                head if head == MAGIC => {
                    self.state = State::Member(Box::new(GzDecoder::new(source)));
                }
                _ => {
                    let bytes = io::copy(&mut source, &mut io::sink())?;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Trailing { bytes },
                    ));
                }
            }
        }
    }
}

/// A buffered reader that can look two bytes ahead (a gzip magic) even
/// across the end of its buffer.
struct Source<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    /// Up to the next two bytes, without consuming them (fewer at the end).
    fn peek2(&mut self) -> io::Result<&[u8]> {
        if self.len - self.pos < 2 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
            while self.len < 2 {
                match self.inner.read(&mut self.buf[self.len..]) {
                    Ok(0) => break,
                    Ok(n) => self.len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.len.min(self.pos + 2)])
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = self.inner.read(&mut self.buf)?;
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(bytes)?
            .expect("gzip magic")
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_follow_one_another() {
        let two = [gz(b"hello "), gz(b"world")].concat();
        assert_eq!(inflate(&two).unwrap(), b"hello world");
    }

    #[test]
    fn trailing_bytes_are_counted_not_called_not_gzip() {
        for tail in [&b"garbage!"[..], &[0u8; 1000], b"x"] {
            let bytes = [gz(b"data"), tail.to_vec()].concat();
            let err = inflate(&bytes).unwrap_err();
            let trailing = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<Trailing>())
                .unwrap_or_else(|| panic!("{err}"));
            assert_eq!(trailing.bytes, tail.len() as u64);
        }
        // A second member's magic with nothing valid after it is corruption.
        let cut = [gz(b"data"), MAGIC.to_vec()].concat();
        let err = inflate(&cut).unwrap_err();
        assert!(err
            .get_ref()
            .and_then(|e| e.downcast_ref::<Trailing>())
            .is_none());
    }

    #[test]
    fn a_stream_that_is_not_gzip_is_said_so_at_once() {
        assert!(Gunzip::new(&b"plain text"[..]).unwrap().is_none());
        assert!(Gunzip::new(&b""[..]).unwrap().is_none());
        assert!(Gunzip::new(&b"\x1f"[..]).unwrap().is_none());
    }

    #[test]
    fn a_bad_crc_is_an_error() {
        let mut bytes = gz(b"data");
        let at = bytes.len() - 8;
        bytes[at] ^= 0xff;
        assert!(inflate(&bytes).is_err());
    }
}
