//! Stock gRPC clients on the Unix socket. gRPC C-core (Python's grpcio, C++,
//! Ruby, C# Grpc.Core) sends the socket path percent-encoded as `:authority`
//! (`tmp%2Fcclaunch.sock`), grpc-java sends it raw (`/tmp/cclaunch.sock`);
//! neither is a valid authority, and h2 resets every such stream with
//! PROTOCOL_ERROR (hyperium/h2#487, declined upstream). A socket has no host
//! name to check, so a socket connection is read through [`Connection`]: it
//! watches the first request's header block and, when its `:authority` is one
//! h2 accepts, passes the connection through untouched from then on. Otherwise
//! every header block of that connection is decoded (HPACK, with a copy of the
//! client's dynamic table) and written again for h2 with `:authority:
//! localhost` (what grpc-go and grpc-js send on a socket); all other frames
//! pass as they are.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The client connection preface (`PRI * HTTP/2.0...`), passed on as it is.
const PREFACE_LEN: usize = 24;
const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// A header block held while it is decoded, counted as sent (frame heads
/// included): legitimate ones are far smaller, as h2 takes header lists of
/// up to 16 KiB.
pub const MAX_BLOCK: usize = 64 * 1024;
/// A decoded header list, counted as HPACK does (name + value + 32 a field).
pub const MAX_LIST: usize = 64 * 1024;
/// The dynamic table the client may use: h2's SETTINGS_HEADER_TABLE_SIZE,
/// left at its default (tonic does not change it).
const TABLE_SIZE: usize = 4096;
/// Frames written to h2 are no larger than the smallest SETTINGS_MAX_FRAME_SIZE.
const MAX_FRAME: usize = 16 * 1024;
/// What a socket's requests are addressed to, once rewritten.
const LOCALHOST: &[u8] = b"localhost";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the HTTP/2 header block of stream {stream} is over {MAX_BLOCK} bytes")]
    BlockTooLarge { stream: u32 },
    #[error("the HTTP/2 header list of stream {stream} is over {MAX_LIST} bytes")]
    ListTooLarge { stream: u32 },
    #[error("an HTTP/2 frame of type {kind} came inside the header block of stream {stream}")]
    Interleaved { stream: u32, kind: u8 },
    #[error(
        "the HTTP/2 HEADERS frame of stream {stream} is shorter than its padding and priority"
    )]
    Malformed { stream: u32 },
    #[error("the header block of stream {stream} is not valid HPACK")]
    Hpack {
        stream: u32,
        #[source]
        source: DecoderError,
    },
}

/// The nine bytes before every frame's payload.
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    raw: [u8; FRAME_HEAD],
}

impl FrameHead {
    fn len(&self) -> usize {
        usize::from(self.raw[0]) << 16 | usize::from(self.raw[1]) << 8 | usize::from(self.raw[2])
    }
    fn kind(&self) -> u8 {
        self.raw[3]
    }
    fn flags(&self) -> u8 {
        self.raw[4]
    }
    fn stream(&self) -> u32 {
        u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]]) & 0x7fff_ffff
    }
}

/// A header block being gathered (HEADERS, then CONTINUATION frames).
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, to pass on unchanged while watching.
    raw: Vec<u8>,
    /// Bytes of frames so far, heads included: bounds empty CONTINUATIONs too.
    wire: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until the first header block: is its `:authority` one h2 accepts?
    Watch,
    /// It was not: every header block is written again.
    Rewrite,
    /// It was: nothing more to do on this connection.
    Pass,
}

/// The client-to-server half of one HTTP/2 connection, frame by frame.
pub struct Rewriter {
    mode: Mode,
    decoder: loona_hpack::Decoder<'static>,
    preface: usize,
    head: Vec<u8>,
    /// Payload bytes of the current frame still to pass on (not a header block).
    passing: usize,
    /// The HEADERS or CONTINUATION frame whose payload is being read.
    reading: Option<FrameHead>,
    payload: Vec<u8>,
    block: Option<Block>,
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Rewriter {
            mode: Mode::Watch,
            decoder,
            preface: PREFACE_LEN,
            head: Vec::with_capacity(FRAME_HEAD),
            passing: 0,
            reading: None,
            payload: Vec::new(),
            block: None,
        }
    }
}

impl Rewriter {
    /// True once the connection was found to need nothing: the rest of it
    /// may bypass [`Rewriter::feed`].
    pub fn passes_through(&self) -> bool {
        self.mode == Mode::Pass
    }

    /// Takes the next bytes the client sent and appends what h2 should read.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        while !input.is_empty() {
            if self.mode == Mode::Pass {
                out.extend_from_slice(input);
                return Ok(());
            }
            if self.preface > 0 || self.passing > 0 {
                let left = if self.preface > 0 {
                    &mut self.preface
                } else {
                    &mut self.passing
                };
                let n = (*left).min(input.len());
                out.extend_from_slice(&input[..n]);
                *left -= n;
                input = &input[n..];
                continue;
            }
            if let Some(frame) = self.reading {
                let n = (frame.len() - self.payload.len()).min(input.len());
                self.payload.extend_from_slice(&input[..n]);
                input = &input[n..];
                if self.payload.len() == frame.len() {
                    self.end_frame(frame, out)?;
                }
                continue;
            }
            let n = (FRAME_HEAD - self.head.len()).min(input.len());
            self.head.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.head.len() == FRAME_HEAD {
                let mut raw = [0; FRAME_HEAD];
                raw.copy_from_slice(&self.head);
                self.head.clear();
                self.begin_frame(FrameHead { raw }, out)?;
            }
        }
        Ok(())
    }

    fn begin_frame(&mut self, frame: FrameHead, out: &mut Vec<u8>) -> Result<(), Error> {
        match (frame.kind(), &self.block) {
            (HEADERS, None) | (CONTINUATION, Some(_)) => {
                let wire = self.block.as_ref().map_or(0, |b| b.wire);
                if wire + FRAME_HEAD + frame.len() > MAX_BLOCK {
                    return Err(Error::BlockTooLarge {
                        stream: frame.stream(),
                    });
                }
                self.reading = Some(frame);
                self.payload.clear();
                if frame.len() == 0 {
                    self.end_frame(frame, out)?;
                }
            }
            (kind, Some(block)) => {
                return Err(Error::Interleaved {
                    stream: block.stream,
                    kind,
                })
            }
            // Anything else is h2's to judge, CONTINUATION without a block too.
            (_, None) => {
                out.extend_from_slice(&frame.raw);
                self.passing = frame.len();
            }
        }
        Ok(())
    }

    /// A HEADERS or CONTINUATION frame has been read whole.
    fn end_frame(&mut self, frame: FrameHead, out: &mut Vec<u8>) -> Result<(), Error> {
        self.reading = None;
        let payload = std::mem::take(&mut self.payload);
        let keep_raw = self.mode == Mode::Watch;
        let block = match self.block.as_mut() {
            Some(block) => {
                block.fragment.extend_from_slice(&payload);
                block
            }
            None => {
                let stream = frame.stream();
                let malformed = || Error::Malformed { stream };
                let mut body = &payload[..];
                let mut pad = 0;
                if frame.flags() & PADDED != 0 {
                    let (&n, rest) = body.split_first().ok_or_else(malformed)?;
                    (pad, body) = (usize::from(n), rest);
                }
                let mut priority = None;
                if frame.flags() & PRIORITY != 0 {
                    let (p, rest) = body.split_first_chunk::<5>().ok_or_else(malformed)?;
                    (priority, body) = (Some(*p), rest);
                }
                let end = body.len().checked_sub(pad).ok_or_else(malformed)?;
                self.block.insert(Block {
                    stream,
                    end_stream: frame.flags() & END_STREAM != 0,
                    priority,
                    fragment: body[..end].to_vec(),
                    raw: Vec::new(),
                    wire: 0,
                })
            }
        };
        block.wire += FRAME_HEAD + payload.len();
        if keep_raw {
            block.raw.extend_from_slice(&frame.raw);
            block.raw.extend_from_slice(&payload);
        }
        if frame.flags() & END_HEADERS != 0 {
            if let Some(block) = self.block.take() {
                self.end_block(block, out)?;
            }
        }
        Ok(())
    }

    fn end_block(&mut self, block: Block, out: &mut Vec<u8>) -> Result<(), Error> {
        let stream = block.stream;
        let mut fields = Vec::new();
        let mut size = 0;
        // Decoded even when passed on unchanged: the copy of the client's
        // dynamic table must follow every block.
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                size += name.len() + value.len() + 32;
                if size <= MAX_LIST {
                    fields.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|source| Error::Hpack { stream, source })?;
        if size > MAX_LIST {
            return Err(Error::ListTooLarge { stream });
        }
        let mut rewritten = false;
        for (name, value) in &mut fields {
            if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err() {
                if self.mode == Mode::Watch {
                    tracing::debug!(
                        authority = %crate::excerpt::quote(&String::from_utf8_lossy(value)),
                        "a client on the socket sends an :authority h2 refuses; it reads localhost on this connection"
                    );
                }
                *value = LOCALHOST.to_vec();
                rewritten = true;
            }
        }
        if self.mode == Mode::Watch && !rewritten {
            out.extend_from_slice(&block.raw);
            self.mode = Mode::Pass;
            return Ok(());
        }
        // From the first rewrite on, h2's table no longer follows the
        // client's: every later block is written again too.
        self.mode = Mode::Rewrite;
        write_block(&block, &fields, out);
        Ok(())
    }
}

/// Writes a header block as HEADERS (+ CONTINUATION) frames, every field a
/// literal without indexing, so h2's dynamic table stays empty.
fn write_block(block: &Block, fields: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    let mut hpack = Vec::new();
    for (name, value) in fields {
        hpack.push(0x00);
        for s in [name, value] {
            integer(&mut hpack, s.len(), 7);
            hpack.extend_from_slice(s);
        }
    }
    let mut first = true;
    let mut rest = &hpack[..];
    loop {
        let (kind, mut flags, prefix) = if first {
            let end_stream = if block.end_stream { END_STREAM } else { 0 };
            match &block.priority {
                Some(p) => (HEADERS, end_stream | PRIORITY, &p[..]),
                None => (HEADERS, end_stream, &[][..]),
            }
        } else {
            (CONTINUATION, 0, &[][..])
        };
        let n = rest.len().min(MAX_FRAME - prefix.len());
        if n == rest.len() {
            flags |= END_HEADERS;
        }
        let len = prefix.len() + n;
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        out.extend_from_slice(&block.stream.to_be_bytes());
        out.extend_from_slice(prefix);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        first = false;
        if flags & END_HEADERS != 0 {
            return;
        }
    }
}

/// An HPACK integer with a `prefix`-bit prefix (RFC 7541 §5.1), flags zero.
fn integer(out: &mut Vec<u8>, value: usize, prefix: u8) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Bytes read per call while the connection is being rewritten.
const READ_CHUNK: usize = 16 * 1024;

/// A socket connection whose `:authority` is made one h2 accepts (see the
/// module's comment). Writes go straight through.
pub struct Connection<T> {
    inner: T,
    rewriter: Option<Box<Rewriter>>,
    /// What h2 is still to read, from `at`.
    out: Vec<u8>,
    at: usize,
    buf: Vec<u8>,
}

impl<T> Connection<T> {
    pub fn new(inner: T) -> Self {
        Connection {
            inner,
            rewriter: Some(Box::default()),
            out: Vec::new(),
            at: 0,
            buf: vec![0; READ_CHUNK],
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.at < this.out.len() {
                let n = dst.remaining().min(this.out.len() - this.at);
                dst.put_slice(&this.out[this.at..this.at + n]);
                this.at += n;
                if this.at == this.out.len() {
                    this.out.clear();
                    this.at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let Some(rewriter) = this.rewriter.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, dst);
            };
            let mut read = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            rewriter
                .feed(&this.buf[..n], &mut this.out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if rewriter.passes_through() {
                this.rewriter = None;
                this.buf = Vec::new();
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for Connection<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const DATA: u8 = 0x0;
    const SETTINGS: u8 = 0x4;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        integer(&mut out, s.len(), 7);
        out.extend_from_slice(s);
        out
    }

    /// A literal with incremental indexing whose name is static entry `name`.
    fn indexed_literal(name: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x40 | name];
        out.extend(string(value));
        out
    }

    /// A gRPC request's first block as C-core writes it: `:method POST`,
    /// `:scheme http`, then `:path` and `:authority` added to the table.
    fn first_request(authority: &[u8]) -> Vec<u8> {
        let mut block = vec![0x83, 0x86];
        block.extend(indexed_literal(4, b"/cclaunch.v1.Launcher/Health"));
        block.extend(indexed_literal(1, authority));
        block
    }

    /// The next request on the connection: both from the dynamic table
    /// (62 = `:authority`, the newest entry; 63 = `:path`).
    const SECOND_REQUEST: &[u8] = &[0x83, 0x86, 0x80 | 63, 0x80 | 62];

    /// Feeds `input` in pieces of `step` bytes.
    fn rewrite(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), Error> {
        let mut rewriter = Rewriter::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            rewriter.feed(piece, &mut out)?;
        }
        Ok((out, rewriter.passes_through()))
    }

    struct Seen {
        stream: u32,
        flags: u8,
        priority: Option<[u8; 5]>,
        fields: Vec<(String, String)>,
    }

    /// Parses what h2 would read: header blocks decoded with a fresh table,
    /// other frames returned whole.
    fn read_back(mut bytes: &[u8]) -> (Vec<Seen>, Vec<Vec<u8>>) {
        assert_eq!(&bytes[..PREFACE.len()], PREFACE);
        bytes = &bytes[PREFACE.len()..];
        let mut decoder = loona_hpack::Decoder::new();
        let (mut blocks, mut others) = (Vec::new(), Vec::new());
        let mut open: Option<(Seen, Vec<u8>)> = None;
        while !bytes.is_empty() {
            let mut raw = [0; FRAME_HEAD];
            raw.copy_from_slice(&bytes[..FRAME_HEAD]);
            let head = FrameHead { raw };
            let payload = &bytes[FRAME_HEAD..FRAME_HEAD + head.len()];
            assert!(head.len() <= MAX_FRAME);
            match head.kind() {
                HEADERS => {
                    assert!(open.is_none());
                    let mut body = payload;
                    let mut priority = None;
                    if head.flags() & PRIORITY != 0 {
                        priority = Some(body[..5].try_into().unwrap());
                        body = &body[5..];
                    }
                    let seen = Seen {
                        stream: head.stream(),
                        flags: head.flags(),
                        priority,
                        fields: Vec::new(),
                    };
                    open = Some((seen, body.to_vec()));
                }
                CONTINUATION => open.as_mut().unwrap().1.extend_from_slice(payload),
                _ => others.push(bytes[..FRAME_HEAD + head.len()].to_vec()),
            }
            if matches!(head.kind(), HEADERS | CONTINUATION) && head.flags() & END_HEADERS != 0 {
                let (mut seen, block) = open.take().unwrap();
                seen.fields = decoder
                    .decode(&block)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect();
                blocks.push(seen);
            }
            bytes = &bytes[FRAME_HEAD + head.len()..];
        }
        (blocks, others)
    }

    fn fields(path: &str, authority: &str) -> Vec<(String, String)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .to_vec()
    }

    fn connection(blocks: &[(u32, Vec<u8>)]) -> (Vec<u8>, Vec<u8>) {
        let mut input = PREFACE.to_vec();
        input.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let data = frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]);
        for (stream, block) in blocks {
            input.extend(frame(HEADERS, END_HEADERS, *stream, block));
            input.extend(frame(DATA, END_STREAM, *stream, &[0, 0, 0, 0, 0]));
        }
        (input, data)
    }

    #[test]
    fn a_valid_authority_passes_byte_for_byte() {
        let (input, _) = connection(&[
            (1, first_request(b"localhost:7052")),
            (3, SECOND_REQUEST.to_vec()),
        ]);
        for step in [1, 7, input.len()] {
            let (out, passing) = rewrite(&input, step).unwrap();
            assert_eq!(out, input, "step {step}");
            assert!(passing);
        }
    }

    #[test]
    fn a_socket_path_authority_reads_localhost_on_every_request() {
        for authority in [&b"tmp%2Fcclaunch.sock"[..], b"/run/cclaunch/cclaunch.sock"] {
            let (input, data) =
                connection(&[(1, first_request(authority)), (3, SECOND_REQUEST.to_vec())]);
            for step in [1, 10, input.len()] {
                let (out, passing) = rewrite(&input, step).unwrap();
                assert!(!passing);
                let (blocks, others) = read_back(&out);
                assert_eq!(blocks.len(), 2);
                for (seen, stream) in blocks.iter().zip([1, 3]) {
                    assert_eq!(seen.stream, stream);
                    assert_eq!(seen.flags, END_HEADERS);
                    assert_eq!(
                        seen.fields,
                        fields("/cclaunch.v1.Launcher/Health", "localhost")
                    );
                }
                // SETTINGS and both DATA frames, unchanged.
                assert_eq!(others.len(), 3);
                assert_eq!(others[1], data);
            }
        }
    }

    #[test]
    fn padding_priority_and_continuation_are_read_and_the_priority_kept() {
        let block = first_request(b"tmp%2Fx.sock");
        let (a, b) = block.split_at(9);
        let mut headers = vec![3]; // pad length
        headers.extend_from_slice(&[0x80, 0, 0, 0, 15]); // exclusive on 0, weight 16
        headers.extend_from_slice(a);
        headers.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | PRIORITY | END_STREAM, 5, &headers));
        input.extend(frame(CONTINUATION, 0, 5, &[]));
        input.extend(frame(CONTINUATION, END_HEADERS, 5, b));
        for step in [1, input.len()] {
            let (out, _) = rewrite(&input, step).unwrap();
            let (blocks, others) = read_back(&out);
            assert!(others.is_empty());
            let seen = &blocks[0];
            assert_eq!(seen.stream, 5);
            assert_eq!(seen.flags, PRIORITY | END_STREAM | END_HEADERS);
            assert_eq!(seen.priority, Some([0x80, 0, 0, 0, 15]));
            assert_eq!(
                seen.fields,
                fields("/cclaunch.v1.Launcher/Health", "localhost")
            );
        }
    }

    #[test]
    fn a_long_rewritten_block_is_split_into_frames_h2_takes() {
        let mut block = first_request(b"tmp%2Fx.sock");
        let long = "v".repeat(40_000);
        block.push(0x00);
        block.extend(string(b"x-long"));
        block.extend(string(long.as_bytes()));
        let (input, _) = connection(&[(1, block)]);
        let (out, _) = rewrite(&input, 4096).unwrap();
        let (blocks, _) = read_back(&out);
        let mut expected = fields("/cclaunch.v1.Launcher/Health", "localhost");
        expected.push(("x-long".into(), long));
        assert_eq!(blocks[0].fields, expected);
    }

    #[test]
    fn hostile_header_blocks_close_the_connection() {
        let bad = first_request(b"tmp%2Fx.sock");
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &bad));
        input.extend(frame(DATA, 0, 1, b"x"));
        assert!(matches!(
            rewrite(&input, 3),
            Err(Error::Interleaved { stream: 1, kind: 0 })
        ));

        // Over the block cap, counting empty CONTINUATION frames too.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &bad));
        for _ in 0..MAX_BLOCK / FRAME_HEAD {
            input.extend(frame(CONTINUATION, 0, 1, &[]));
        }
        assert!(matches!(
            rewrite(&input, 1000),
            Err(Error::BlockTooLarge { stream: 1 })
        ));

        // A small block that decodes to a huge list: one 4000-byte entry in
        // the table, then referred to again and again.
        let mut block = indexed_literal(1, "a".repeat(4000).as_bytes());
        block.extend(std::iter::repeat_n(0x80 | 62, 100));
        let (input, _) = connection(&[(1, block)]);
        assert!(matches!(
            rewrite(&input, 1000),
            Err(Error::ListTooLarge { stream: 1 })
        ));

        let (input, _) = connection(&[(1, vec![0x80 | 100])]);
        assert!(matches!(
            rewrite(&input, 1000),
            Err(Error::Hpack { stream: 1, .. })
        ));

        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, PADDED | END_HEADERS, 1, &[200, 0x83]));
        assert!(matches!(
            rewrite(&input, 1000),
            Err(Error::Malformed { stream: 1 })
        ));
    }
}
