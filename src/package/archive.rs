//! Tar streams read the way the peer and the engine read them (Go's
//! `archive/tar`), with every header bounded.
//!
//! The tar crate reads a GNU long name or a PAX header whole, whatever its
//! size, stops at the first zero block, and skips the size a directory or
//! link header claims: each a way for a package to pass here and mean
//! something else (or nothing) to the engine. This reader follows Go's
//! `Reader.Next` instead: long names and PAX records of at most
//! [`SPECIAL_MAX`] bytes (Go's own limit), the GNU long name over the PAX
//! `path` over `prefix/name`, the PAX `size` over the header's, no data for
//! header-only types, and the end of an archive is two zero blocks (one,
//! then the end of the stream, also ends it; one, then anything else, is the
//! "invalid tar header" Go reports). Errors never quote the stream's bytes.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

pub const BLOCK: usize = 512;

/// The largest GNU long name, long link or PAX header read: Go's
/// `maxSpecialFileSize`, so the engine and the peer refuse what we refuse.
pub const SPECIAL_MAX: u64 = 1 << 20;

/// A header that describes the next entry rather than being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    LongName,
    LongLink,
    Pax,
    GlobalPax,
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Special::LongName => "GNU long name",
            Special::LongLink => "GNU long link name",
            Special::Pax => "PAX extended",
            Special::GlobalPax => "PAX global",
        })
    }
}

/// Where a stream ended too early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Data,
    EndMarker,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "a header",
            Part::Data => "an entry's data",
            Part::EndMarker => "the end-of-archive marker",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the stream")]
    Io(#[source] io::Error),
    #[error("it ends in the middle of {0} (truncated)")]
    Truncated(Part),
    #[error("a header's checksum does not match (not a tar header)")]
    Checksum,
    #[error("a header's {0} field is not a valid number")]
    Field(&'static str),
    #[error("an entry follows a single zero block: an archive ends with two zero blocks, and Go's archive/tar (the engine's and the peer's reader) refuses this as an invalid tar header")]
    AfterZeroBlock,
    #[error("a {kind} header of {size} bytes is larger than {SPECIAL_MAX} bytes, the most Go's archive/tar (the engine's and the peer's reader) accepts")]
    SpecialTooLarge { kind: Special, size: u64 },
    #[error("a PAX extended header is malformed")]
    Pax,
    #[error("a PAX extended header has an invalid {0} record")]
    PaxValue(&'static str),
}

/// One entry's header, as Go's `Reader.Next` returns it.
#[derive(Debug, Clone)]
pub struct Header {
    /// The final name, raw bytes (cut at the first NUL, as Go does).
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    /// Bytes of data that follow (0 for header-only types).
    pub size: u64,
    /// GNU sparse data (type `S`, or PAX `GNU.sparse.*` records).
    pub sparse: bool,
}

/// Reads the headers of a tar stream one by one; [`Read`] gives the data of
/// the entry last returned.
pub struct Reader<R> {
    inner: R,
    /// Data of the current entry not read yet, then its padding.
    remaining: u64,
    padding: u64,
    ended: bool,
    /// Why reading an entry's data failed, kept for the caller (see [`Reader::take_failure`]).
    failure: Option<Error>,
}

/// The error [`Reader`]'s `Read` returns when the archive under an entry
/// fails; the archive's own error is kept for [`Reader::take_failure`].
#[derive(Debug, thiserror::Error)]
#[error("the archive holding this entry cannot be read")]
pub struct CutShort;

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            ended: false,
            failure: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Why reading the current entry's data failed in this archive (rather
    /// than in whatever read that data), if it did.
    pub fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    /// The next entry's header, `None` at the end of the archive.
    pub fn next(&mut self) -> Result<Option<Header>, Error> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.remaining)?;
        self.remaining = 0;
        let pad = std::mem::take(&mut self.padding);
        if !self.skip_padding(pad)? {
            self.ended = true;
            return Ok(None);
        }
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax: Option<HashMap<Vec<u8>, Vec<u8>>> = None;
        loop {
            let Some(block) = self.block(Part::Header)? else {
                self.ended = true;
                return Ok(None);
            };
            if block.iter().all(|&b| b == 0) {
                self.ended = true;
                return match self.block(Part::EndMarker)? {
                    Some(next) if next.iter().any(|&b| b != 0) => Err(Error::AfterZeroBlock),
                    _ => Ok(None),
                };
            }
            let raw = parse_header(&block)?;
            let special = match raw.typeflag {
                b'L' => Some(Special::LongName),
                b'K' => Some(Special::LongLink),
                b'x' => Some(Special::Pax),
                b'g' => Some(Special::GlobalPax),
                _ => None,
            };
            let Some(special) = special else {
                return self.entry(raw, long_name, pax.as_ref()).map(Some);
            };
            if raw.size < 0 {
                return Err(Error::Field("size"));
            }
            let size = raw.size as u64;
            if size > SPECIAL_MAX {
                return Err(Error::SpecialTooLarge {
                    kind: special,
                    size,
                });
            }
            let data = self.special(size)?;
            if !self.skip_padding(padding(size))? {
                // Go: the end of the stream in padding ends the archive,
                // even with a header still waiting for its entry.
                self.ended = true;
                return Ok(None);
            }
            match special {
                Special::LongName => long_name = Some(cut_nul(&data).to_vec()),
                // Link targets are not followed here (links are refused).
                Special::LongLink => {}
                Special::Pax => pax = Some(parse_pax(&data)?),
                Special::GlobalPax => {
                    // Go returns a global header as an entry of its own.
                    let records = parse_pax(&data)?;
                    let (mut name, mut size, mut sparse) = (raw.name, 0, false);
                    // Go ignores a global header's bad values (and its name
                    // is not used: the engine skips it, the peer refuses it).
                    let _ = apply_pax(&records, &mut name, &mut size, &mut sparse);
                    return Ok(Some(Header {
                        name,
                        kind: tar::EntryType::XGlobalHeader,
                        size: 0,
                        sparse,
                    }));
                }
            }
        }
    }

    /// A file entry's header with the long name and PAX records applied, in
    /// Go's order: PAX first, then the GNU long name over it.
    fn entry(
        &mut self,
        raw: Raw,
        long_name: Option<Vec<u8>>,
        pax: Option<&HashMap<Vec<u8>, Vec<u8>>>,
    ) -> Result<Header, Error> {
        let mut name = raw.name;
        let mut size = raw.size;
        let mut sparse = raw.typeflag == b'S';
        if let Some(pax) = pax {
            apply_pax(pax, &mut name, &mut size, &mut sparse)?;
        }
        if let Some(long) = long_name.filter(|l| !l.is_empty()) {
            name = long;
        }
        let mut typeflag = raw.typeflag;
        if typeflag == 0 {
            // Go: legacy archives mark directories with a trailing slash.
            typeflag = if name.ends_with(b"/") { b'5' } else { b'0' };
        }
        if header_only(typeflag) {
            size = 0;
        }
        if size < 0 {
            return Err(Error::Field("size"));
        }
        let size = size as u64;
        self.remaining = size;
        self.padding = padding(size);
        Ok(Header {
            name,
            kind: tar::EntryType::new(typeflag),
            size,
            sparse,
        })
    }

    /// The next block; `None` at a clean end of the stream.
    fn block(&mut self, part: Part) -> Result<Option<[u8; BLOCK]>, Error> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return Err(Error::Truncated(part)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(Some(block))
    }

    /// A special header's data (at most [`SPECIAL_MAX`] bytes).
    fn special(&mut self, size: u64) -> Result<Vec<u8>, Error> {
        let mut data = Vec::with_capacity(size as usize);
        let read = (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(Error::Io)?;
        if (read as u64) < size {
            return Err(Error::Truncated(Part::Data));
        }
        Ok(data)
    }

    /// Skips an entry's padding; `false` when the stream ends in it, which
    /// Go's reader takes as the end of the archive (`tryReadFull`).
    fn skip_padding(&mut self, n: u64) -> Result<bool, Error> {
        let skipped =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(Error::Io)?;
        Ok(skipped == n)
    }

    fn skip(&mut self, n: u64) -> Result<(), Error> {
        let skipped =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(Error::Io)?;
        if skipped < n {
            return Err(Error::Truncated(Part::Data));
        }
        Ok(())
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                self.failure = Some(Error::Truncated(Part::Data));
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, CutShort))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failure = Some(Error::Io(e));
                Err(io::Error::other(CutShort))
            }
        }
    }
}

/// Go's `mergePAX`: a record with a value replaces the header's field, and
/// a numeric one that does not parse makes the header invalid.
fn apply_pax(
    pax: &HashMap<Vec<u8>, Vec<u8>>,
    name: &mut Vec<u8>,
    size: &mut i64,
    sparse: &mut bool,
) -> Result<(), Error> {
    for (key, value) in pax {
        if key.starts_with(b"GNU.sparse.") {
            *sparse = true;
        }
        if value.is_empty() {
            continue;
        }
        match key.as_slice() {
            b"path" => *name = value.clone(),
            b"size" => *size = decimal(value).ok_or(Error::PaxValue("size"))?,
            b"uid" | b"gid" => {
                decimal(value).ok_or(Error::PaxValue("uid or gid"))?;
            }
            b"mtime" | b"atime" | b"ctime" if !pax_time(value) => {
                return Err(Error::PaxValue("time"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A header block's fields, before long names and PAX records apply.
struct Raw {
    name: Vec<u8>,
    typeflag: u8,
    size: i64,
}

/// Go's `readHeader`: checksum (unsigned or signed sum), format by magic,
/// every numeric field parsed (one that is not a number is an invalid
/// header), and the USTAR prefix joined to the name.
fn parse_header(block: &[u8; BLOCK]) -> Result<Raw, Error> {
    let stored = octal(&block[148..156]).ok_or(Error::Checksum)?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err(Error::Checksum);
    }

    let magic = &block[257..263];
    let version = &block[263..265];
    let format = if magic == b"ustar\0" && &block[508..512] == b"tar\0" {
        Format::Star
    } else if magic == b"ustar\0" {
        Format::Ustar
    } else if magic == b"ustar " && version == b" \0" {
        Format::Gnu
    } else {
        Format::V7
    };

    let size = numeric(&block[124..136]).ok_or(Error::Field("size"))?;
    for (field, range) in [
        ("mode", 100..108),
        ("uid", 108..116),
        ("gid", 116..124),
        ("mtime", 136..148),
    ] {
        numeric(&block[range]).ok_or(Error::Field(field))?;
    }
    let mut name = cut_nul(&block[..100]).to_vec();
    let mut prefix: &[u8] = &[];
    if format != Format::V7 {
        numeric(&block[329..337]).ok_or(Error::Field("devmajor"))?;
        numeric(&block[337..345]).ok_or(Error::Field("devminor"))?;
        match format {
            Format::Ustar => prefix = cut_nul(&block[345..500]),
            Format::Star => {
                prefix = cut_nul(&block[345..476]);
                numeric(&block[476..488]).ok_or(Error::Field("atime"))?;
                numeric(&block[488..500]).ok_or(Error::Field("ctime"))?;
            }
            Format::Gnu => {
                // Go reads archives of its pre-1.8 writer, which put a USTAR
                // prefix where GNU keeps atime and ctime: when those are not
                // numbers and the field is ASCII, it is taken as a prefix.
                let times_ok = [&block[345..357], &block[357..369]]
                    .iter()
                    .all(|t| t[0] == 0 || numeric(t).is_some());
                let old_prefix = cut_nul(&block[345..500]);
                if !times_ok && old_prefix.is_ascii() {
                    prefix = old_prefix;
                }
            }
            Format::V7 => {}
        }
    }
    if !prefix.is_empty() {
        let mut joined = prefix.to_vec();
        joined.push(b'/');
        joined.extend_from_slice(&name);
        name = joined;
    }
    Ok(Raw {
        name,
        typeflag: block[156],
        size,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

fn header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6')
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn cut_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Go's `parseNumeric`: base-256 when the high bit is set, else octal.
fn numeric(b: &[u8]) -> Option<i64> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        let inv = if b[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        let x = x as i64;
        return Some(if inv == 0xff { !x } else { x });
    }
    octal(b)
}

/// Go's `parseOctal`: spaces and NULs around are ignored, empty is 0.
fn octal(b: &[u8]) -> Option<i64> {
    let start = b.iter().position(|&c| c != b' ' && c != 0);
    let Some(start) = start else {
        return Some(0);
    };
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .unwrap_or(start);
    let digits = cut_nul(&b[start..=end]);
    if digits.is_empty() || !digits.iter().all(|c| (b'0'..=b'7').contains(c)) {
        return None;
    }
    let mut x: u64 = 0;
    for &c in digits {
        x = x.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
    }
    i64::try_from(x).ok()
}

/// A decimal integer as Go's `strconv.ParseInt` reads one (sign allowed).
fn decimal(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Go's `parsePAXTime`: seconds, optionally `.` and digits.
fn pax_time(b: &[u8]) -> bool {
    let (secs, fraction) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    decimal(secs).is_some() && fraction.is_none_or(|f| f.iter().all(u8::is_ascii_digit))
}

/// Go's `parsePAX`: `"%d %s=%s\n"` records, the length counting itself;
/// later records win.
fn parse_pax(mut data: &[u8]) -> Result<HashMap<Vec<u8>, Vec<u8>>, Error> {
    let mut records = HashMap::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or(Error::Pax)?;
        let digits = &data[..space];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 9 {
            return Err(Error::Pax);
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(Error::Pax)?;
        if len < 5 || len > data.len() || len <= space + 1 {
            return Err(Error::Pax);
        }
        let record = &data[space + 1..len];
        let Some((&b'\n', record)) = record.split_last() else {
            return Err(Error::Pax);
        };
        let eq = record.iter().position(|&b| b == b'=').ok_or(Error::Pax)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let nul_in = match key {
            b"path" | b"linkpath" | b"uname" | b"gname" => value,
            _ => key,
        };
        if key.is_empty() || nul_in.contains(&0) {
            return Err(Error::Pax);
        }
        records.insert(key.to_vec(), value.to_vec());
        data = &data[len..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = header(name, b'0', data.len() as u64);
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        out
    }

    fn special(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut out = header("././@LongLink", kind, data.len() as u64);
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        out
    }

    fn names(bytes: &[u8]) -> Result<Vec<String>, Error> {
        let mut reader = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = reader.next()? {
            out.push(String::from_utf8_lossy(&h.name).into_owned());
        }
        Ok(out)
    }

    const ZERO: [u8; BLOCK] = [0; BLOCK];

    #[test]
    fn the_end_is_two_zero_blocks_or_one_then_nothing() {
        let a = entry("a", b"hello");
        let b = entry("b", b"world");
        for tail in [&[][..], &ZERO, &[ZERO, ZERO].concat()] {
            let archive = [a.clone(), tail.to_vec()].concat();
            assert_eq!(names(&archive).unwrap(), ["a"]);
        }
        // After the end nothing is read: the engine reads no further either.
        let after_end = [a.clone(), ZERO.to_vec(), ZERO.to_vec(), b.clone()].concat();
        assert_eq!(names(&after_end).unwrap(), ["a"]);

        let after_one = [a.clone(), ZERO.to_vec(), b].concat();
        assert!(matches!(names(&after_one), Err(Error::AfterZeroBlock)));
        // The stream may end in the last entry's padding (Go: the end).
        let short_padding = &a[..BLOCK + 5 + 100];
        assert_eq!(names(short_padding).unwrap(), ["a"]);
        assert!(matches!(
            names(&a[..BLOCK + 3]),
            Err(Error::Truncated(Part::Data))
        ));
        let partial = [a, ZERO.to_vec(), vec![0; 100]].concat();
        assert!(matches!(
            names(&partial),
            Err(Error::Truncated(Part::EndMarker))
        ));
    }

    #[test]
    fn long_names_and_pax_paths_apply_in_gos_order() {
        let long = "d/".repeat(200) + "f";
        let archive = [special(b'L', long.as_bytes()), entry("short", b"x")].concat();
        assert_eq!(names(&archive).unwrap(), std::slice::from_ref(&long));

        let record = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            format!("{n}{body}")
        };
        let pax = special(b'x', record("path", "from-pax").as_bytes());
        assert_eq!(
            names(&[pax.clone(), entry("short", b"x")].concat()).unwrap(),
            ["from-pax"]
        );
        // The GNU long name wins over the PAX path, as in Go.
        let both = [pax, special(b'L', b"from-gnu\0"), entry("short", b"x")].concat();
        assert_eq!(names(&both).unwrap(), ["from-gnu"]);

        // A PAX size replaces the header's: what follows is read as Go reads it.
        let sized = [
            special(b'x', record("size", "0").as_bytes()),
            entry("hides", &entry("next", b"")),
        ]
        .concat();
        assert_eq!(names(&sized).unwrap(), ["hides", "next"]);
    }

    #[test]
    fn header_only_types_have_no_data_whatever_their_size_says() {
        // A directory claiming 1024 bytes: Go reads the next header there.
        let mut dir = header("src/", b'5', 1024);
        dir.extend(entry("src/hidden", b"x"));
        dir.extend([0u8; 1024 - BLOCK * 2]);
        assert_eq!(names(&dir).unwrap(), ["src/", "src/hidden"]);
    }

    #[test]
    fn special_headers_are_capped_before_they_are_read() {
        let mut big = header("././@LongLink", b'L', 4 << 30);
        big.extend([b'a'; BLOCK]);
        match names(&big) {
            Err(Error::SpecialTooLarge {
                kind: Special::LongName,
                size,
            }) => assert_eq!(size, 4 << 30),
            other => panic!("{other:?}"),
        }
        let at_cap = [
            special(b'L', &vec![b'a'; SPECIAL_MAX as usize]),
            entry("x", b""),
        ]
        .concat();
        assert_eq!(names(&at_cap).unwrap()[0].len(), SPECIAL_MAX as usize);
    }

    #[test]
    fn malformed_headers_are_refused_without_quoting_them() {
        let mut text = [b'A'; BLOCK];
        text[..11].copy_from_slice(b"-----BEGIN ");
        let err = names(&text).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        assert!(!err.contains("BEGIN") && !err.contains("AAA"), "{err}");

        let mut bad_size = header("a", b'0', 0);
        bad_size[124..136].copy_from_slice(b"SECRET-BYTES");
        let sum: u32 = bad_size
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(b)
                }
            })
            .sum();
        bad_size[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let err = names(&bad_size).unwrap_err().to_string();
        assert!(err.contains("size field"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");

        for bad in [
            "4 ab\n",
            "99 path=x\n",
            "6 path\n",
            "x path=y\n",
            "7 =abc\n",
        ] {
            assert!(parse_pax(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_pax(b"9 path=a\n").unwrap().get(&b"path"[..]).unwrap(),
            b"a"
        );
    }

    #[test]
    fn numbers_are_read_as_go_reads_them() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"  17 \0\0"), Some(0o17));
        assert_eq!(octal(b"\0\0\0\0"), Some(0));
        assert_eq!(octal(b"12\x0034"), Some(0o12));
        assert_eq!(octal(b"9"), None);
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(&[0xff; 12]), Some(-1));
    }
}
