//! A seeded, structure-aware mutator for chaincode packages (tests/fuzz_*.rs).
//!
//! Random bytes mostly fail gzip's CRC and test nothing behind it, so most
//! mutations happen inside a layer: the outer tar, or the code tar inside
//! `code.tar.gz`, inflated, mutated the way hostile tars differ (type flags,
//! size fields in octal and base-256, names, checksums, single zero blocks,
//! GNU long-name and PAX headers of every size up to past the cap, metadata
//! JSON), then deflated again, sometimes in two members or with bytes after
//! the stream. Deterministic for a seed: a failure is replayed by its seed.

use std::io::{Read, Write};

/// How long a fuzz test runs and from which seed: `CCLAUNCH_FUZZ_SECONDS` or
/// `CCLAUNCH_FUZZ_INPUTS` (else `short` inputs, the CI round), and
/// `CCLAUNCH_FUZZ_SEED` (else a fixed seed for the CI round, the clock's for
/// a long one). The seed is printed so a run can be replayed.
pub struct Settings {
    pub seed: u64,
    pub inputs: Option<u64>,
    pub seconds: Option<std::time::Duration>,
}

impl Settings {
    pub fn from_env(short: u64) -> Settings {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let seconds = var("CCLAUNCH_FUZZ_SECONDS").map(std::time::Duration::from_secs);
        let inputs = var("CCLAUNCH_FUZZ_INPUTS").or(seconds.is_none().then_some(short));
        let seed = var("CCLAUNCH_FUZZ_SEED").unwrap_or(if seconds.is_some() {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        } else {
            0x00c0_ffee
        });
        Settings {
            seed,
            inputs,
            seconds,
        }
    }

    /// Whether a run that has done `n` inputs since `began` is over.
    pub fn done(&self, n: u64, began: std::time::Instant) -> bool {
        self.inputs.is_some_and(|max| n >= max)
            || self.seconds.is_some_and(|max| began.elapsed() >= max)
    }

    pub fn long(&self) -> bool {
        self.seconds.is_some()
    }
}

/// splitmix64: small, seedable, good enough to drive mutations.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Fewer than `max` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

const BLOCK: usize = 512;
/// The package reader's cap on long-name and PAX headers.
const HEADER_MAX: usize = 1 << 20;
/// Inflated bytes a mutant may hold (keeps a run quick; the caps are tested
/// against bombs elsewhere).
const INFLATE_MAX: u64 = 64 << 20;

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

pub fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(INFLATE_MAX)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// A header block as a well-formed tar has it: (offset, name, typeflag, size).
pub fn headers(tar: &[u8]) -> Vec<(usize, Vec<u8>, u8, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + BLOCK <= tar.len() && out.len() < 10_000 {
        let block = &tar[off..off + BLOCK];
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let size = octal(&block[124..136]).unwrap_or(0);
        let name = block[..100]
            .split(|&b| b == 0)
            .next()
            .unwrap_or(&[])
            .to_vec();
        out.push((off, name, block[156], size));
        let header_only = matches!(block[156], b'1'..=b'6');
        let data = if header_only { 0 } else { size };
        off = off
            .saturating_add(BLOCK)
            .saturating_add(data.div_ceil(BLOCK) * BLOCK);
    }
    out
}

fn octal(field: &[u8]) -> Option<usize> {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    usize::from_str_radix(text.trim(), 8).ok()
}

pub fn set_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u32 = block[..BLOCK].iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A header block for `name`, of `kind`, claiming `size` bytes (GNU format).
pub fn header(name: &[u8], kind: u8, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    b[100..108].copy_from_slice(b"0000644\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    put_size(&mut b, size);
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = kind;
    b[257..265].copy_from_slice(b"ustar  \0");
    set_checksum(&mut b);
    b
}

fn put_size(block: &mut [u8], size: u64) {
    if size < 0o77777777777 {
        block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        // GNU base-256: a marker bit, then the number big-endian.
        block[124] = 0x80;
        block[125..128].fill(0);
        block[128..136].copy_from_slice(&size.to_be_bytes());
    }
}

fn padded(mut data: Vec<u8>) -> Vec<u8> {
    let len = data.len().div_ceil(BLOCK) * BLOCK;
    data.resize(len, 0);
    data
}

/// An entry: header and padded data.
pub fn entry(name: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = header(name, kind, data.len() as u64);
    out.extend(padded(data.to_vec()));
    out
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3;
    let mut n = body_len + 1;
    while n.to_string().len() + body_len != n {
        n += 1;
    }
    let mut out = format!("{n} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// Names hostile tars use.
fn name(rng: &mut Rng) -> Vec<u8> {
    let mut name = match rng.below(12) {
        0 => b"../escape".to_vec(),
        1 => b"/etc/passwd".to_vec(),
        2 => b"./src//main.go".to_vec(),
        3 => b"src/\xff\xfe.go".to_vec(),
        4 => b"src/a\0hidden".to_vec(),
        5 => b"metadata.json".to_vec(),
        6 => b"code.tar.gz".to_vec(),
        7 => b"src/go.mod".to_vec(),
        8 => vec![b'n'; rng.below(300)],
        9 => b"src\\..\\x".to_vec(),
        10 => b"src/\x1b[31mred\r".to_vec(),
        _ => b"src/".to_vec(),
    };
    if rng.chance(10) {
        name.insert(0, b'/');
    }
    name
}

fn kind(rng: &mut Rng) -> u8 {
    *rng.pick(b"005\x00123467LKxgSVMNZ")
}

fn size(rng: &mut Rng) -> u64 {
    if rng.chance(20) {
        return rng.next() % 4096;
    }
    let cap = HEADER_MAX as u64;
    *rng.pick(&[
        0,
        1,
        511,
        512,
        513,
        1024,
        cap - 1,
        cap,
        cap + 1,
        1 << 30,
        (1 << 33) + 7,
        u64::MAX >> 1,
        4095,
    ])
}

/// A long-name or PAX header of a chosen size, full of one byte or records.
fn special(rng: &mut Rng) -> Vec<u8> {
    let kind = *rng.pick(b"LKxg");
    let len = match rng.below(20) {
        0 => HEADER_MAX - 1,
        1 => HEADER_MAX,
        2 => HEADER_MAX + 1,
        // Far past the cap (and past what a reader may hold): a few KB of gzip.
        3 => 48 << 20,
        _ => rng.below(600),
    };
    let data = if matches!(kind, b'x' | b'g') && rng.chance(80) {
        let mut records = Vec::new();
        for _ in 0..=rng.below(4) {
            let key = *rng.pick(&[
                "path",
                "linkpath",
                "size",
                "uid",
                "mtime",
                "GNU.sparse.major",
                "GNU.sparse.offset",
                "SCHILY.xattr.user.x",
                "hdrcharset",
                "",
            ]);
            let value: Vec<u8> = match key {
                "size" | "uid" => rng
                    .pick(&["0", "-1", "12", "99999999999", "x", ""])
                    .as_bytes()
                    .to_vec(),
                "mtime" => rng
                    .pick(&["1.5", "-3", "1.x", "", "1e9"])
                    .as_bytes()
                    .to_vec(),
                _ => {
                    let n = len.saturating_sub(records.len());
                    let mut v = name(rng);
                    v.resize(n.max(v.len()), b'p');
                    v
                }
            };
            records.extend(pax_record(key, &value));
        }
        if rng.chance(10) {
            records.extend(rng.bytes(8));
        }
        records
    } else {
        vec![*rng.pick(&[b'a', b'/', b'.', 0]); len]
    };
    let mut out = header(b"././@LongLink", kind, data.len() as u64);
    out.extend(padded(data));
    out
}

fn metadata_json(rng: &mut Rng) -> Vec<u8> {
    let samples: [&[u8]; 12] = [
        br#"{"path":"","type":"node","label":"fuzz_1"}"#,
        br#"{"type":1,"label":"x"}"#,
        br#""a string, not an object""#,
        br#"{"type":"golang","label":"a","label":"b"}"#,
        br#"{"type":"golang","label":"../evil"}"#,
        br#"{"type":"golang","label":"x","path":{"a":[1,2,{"b":null}]}}"#,
        br#"{"type":"golang""#,
        br#"{"label":"no-type"}"#,
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{\"type\":\"go\\ud800lang\",\"label\":\"x\"}",
        b"\xef\xbb\xbf{\"type\":\"node\",\"label\":\"bom\"}",
        br#"{"type":"COBOL","label":"unknown_type"}"#,
    ];
    let mut text = rng.pick(&samples).to_vec();
    if rng.chance(20) {
        let at = rng.below(text.len() + 1);
        text.insert(at, rng.next() as u8);
    }
    text
}

/// One tar-level mutation.
fn mutate_tar(rng: &mut Rng, tar: &mut Vec<u8>) {
    let heads = headers(tar);
    let at = if heads.is_empty() || rng.chance(10) {
        rng.below(tar.len() / BLOCK + 1) * BLOCK
    } else {
        rng.pick(&heads).0
    };
    let at = at.min(tar.len());
    let has_block = at + BLOCK <= tar.len();
    match rng.below(14) {
        0 | 1 if has_block => {
            tar[at + 156] = kind(rng);
            set_checksum(&mut tar[at..at + BLOCK]);
        }
        2 | 3 if has_block => {
            let size = size(rng);
            put_size(&mut tar[at..at + BLOCK], size);
            set_checksum(&mut tar[at..at + BLOCK]);
        }
        4 if has_block => {
            let name = name(rng);
            tar[at..at + 100].fill(0);
            let n = name.len().min(100);
            tar[at..at + n].copy_from_slice(&name[..n]);
            if rng.chance(30) {
                tar[at + 257..at + 265].copy_from_slice(b"ustar\x0000");
                tar[at + 345..at + 500].fill(0);
                tar[at + 345..at + 348].copy_from_slice(b"src");
            }
            set_checksum(&mut tar[at..at + BLOCK]);
        }
        5 if has_block => {
            let magics = [*b"ustar\x0000", *b"ustar  \0", [0; 8]];
            let magic = *rng.pick(&magics);
            tar[at + 257..at + 265].copy_from_slice(&magic);
            if rng.chance(30) {
                tar[at + 508..at + 512].copy_from_slice(b"tar\0");
            }
            if rng.chance(80) {
                set_checksum(&mut tar[at..at + BLOCK]);
            }
        }
        6 => {
            // A single zero block, then whatever followed.
            tar.splice(at..at, vec![0u8; BLOCK]);
        }
        7 | 8 => {
            let special = special(rng);
            tar.splice(at..at, special);
        }
        9 => {
            let (name, kind, len) = (name(rng), kind(rng), rng.below(700));
            let entry = entry(&name, kind, &rng.bytes(len));
            tar.splice(at..at, entry);
        }
        10 => {
            let cut = rng.below(tar.len() + 1);
            tar.truncate(cut);
        }
        11 if has_block => {
            let end = (at + BLOCK * (1 + rng.below(3))).min(tar.len());
            let copy = tar[at..end].to_vec();
            let to = rng.below(tar.len() / BLOCK + 1) * BLOCK;
            tar.splice(to.min(tar.len())..to.min(tar.len()), copy);
        }
        12 => {
            for _ in 0..=rng.below(4) {
                if !tar.is_empty() {
                    let i = rng.below(tar.len());
                    tar[i] ^= 1 << rng.below(8);
                }
            }
        }
        _ => {
            // New metadata.json content, where there is one.
            if let Some(&(off, _, _, size)) =
                heads.iter().find(|(_, n, _, _)| n == b"metadata.json")
            {
                let end = (off + BLOCK + size.div_ceil(BLOCK) * BLOCK).min(tar.len());
                let json = metadata_json(rng);
                tar.splice(off..end, entry(b"metadata.json", b'0', &json));
            }
        }
    }
}

/// The code tar's place in an outer tar: (header offset, data length).
fn code_entry(outer: &[u8]) -> Option<(usize, usize)> {
    headers(outer)
        .into_iter()
        .find(|(_, name, _, _)| name == b"code.tar.gz")
        .map(|(off, _, _, size)| (off, size))
        .filter(|&(off, size)| off + BLOCK + size <= outer.len())
}

fn deflate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = if rng.chance(5) && data.len() > 2 {
        let cut = rng.below(data.len());
        [gzip(&data[..cut]), gzip(&data[cut..])].concat()
    } else {
        gzip(data)
    };
    if rng.chance(4) {
        let len = 1 + rng.below(40);
        out.extend(rng.bytes(len));
    }
    out
}

/// A mutant of `seed` (a package file's bytes).
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let rounds = 1 + rng.below(3);
    let level = rng.below(10);
    let outer = gunzip(seed);
    match (level, outer) {
        // Raw bytes: flips, cuts, splices with another seed.
        (0, _) | (_, None) => {
            let mut bytes = seed.to_vec();
            for _ in 0..rounds {
                match rng.below(4) {
                    0 if !bytes.is_empty() => {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    1 => bytes.truncate(rng.below(bytes.len() + 1)),
                    2 => {
                        let len = rng.below(64);
                        bytes.extend(rng.bytes(len))
                    }
                    _ => {
                        let other = rng.pick(others);
                        let cut = rng.below(other.len() + 1);
                        let at = rng.below(bytes.len() + 1);
                        bytes.truncate(at);
                        bytes.extend_from_slice(&other[cut..]);
                    }
                }
            }
            bytes
        }
        // The outer tar.
        (1..=4, Some(mut tar)) => {
            for _ in 0..rounds {
                mutate_tar(rng, &mut tar);
            }
            deflate(rng, &tar)
        }
        // The code tar inside code.tar.gz.
        (_, Some(mut outer)) => {
            let Some((off, size)) = code_entry(&outer) else {
                mutate_tar(rng, &mut outer);
                return deflate(rng, &outer);
            };
            let code_gz = outer[off + BLOCK..off + BLOCK + size].to_vec();
            let code = match gunzip(&code_gz) {
                Some(mut code) => {
                    for _ in 0..rounds {
                        mutate_tar(rng, &mut code);
                    }
                    deflate(rng, &code)
                }
                None => {
                    let mut raw = code_gz;
                    if !raw.is_empty() {
                        let i = rng.below(raw.len());
                        raw[i] ^= 0x20;
                    }
                    raw
                }
            };
            let end = (off + BLOCK + size.div_ceil(BLOCK) * BLOCK).min(outer.len());
            outer.splice(off..end, entry(b"code.tar.gz", b'0', &code));
            deflate(rng, &outer)
        }
    }
}
