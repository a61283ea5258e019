#!/usr/bin/env python3
"""(Re)generate the hostile chaincode packages in testdata/bad/.

    python3 testdata/bad/make-bad.py            # write every case, then verify them
    python3 testdata/bad/make-bad.py --verify   # only verify the files already there
    python3 testdata/bad/make-bad.py --no-bombs # skip the two 1.5 GiB gzip bombs
    python3 testdata/bad/make-bad.py --tables   # only rewrite cases.tsv and README.md

A full run takes ~2.5 minutes, nearly all of it compressing and then verifying
the two bombs (1.5 GiB of zeros each, streamed; memory stays small).

Standard library only. Output is deterministic for a given zlib: GNU-format tar
headers are built with TarInfo.tobuf() and written by hand (mtime 0, uid/gid 0,
empty uname/gname, entries in sorted order unless the case is about order), the
tar ends with two zero blocks and no record padding (as Go's archive/tar does),
and gzip streams carry mtime 0 and no file name, level 9.

Writing headers by hand rather than through TarFile.addfile() is what lets a
header claim more bytes than follow it (addfile refuses: "unexpected end of
data") and keeps the bombs streaming (1 MiB of zeros at a time).

Also writes cases.tsv (file, level, expect) and README.md from the CASES table
below; edit this script, not those files.
"""

import gzip
import io
import json
import os
import sys
import tarfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FMT = tarfile.GNU_FORMAT  # no PAX headers: raw non-UTF-8 names stay raw
ENC, ERRORS = "utf-8", "surrogateescape"
BLOCK = 512
BOMB = 3 << 29  # 1.5 GiB of zeros
LIMIT = 1 << 30  # cclaunch's default per-layer inflated cap
CHUNK = 1 << 20
NUL = b"\0"


# --------------------------------------------------------------------------
# tar and gzip, by hand


def entry(name, kind=tarfile.REGTYPE, data=b"", *, size=None, linkname="",
          major=0, minor=0):
    """A (header bytes, data bytes) pair. `name` may be bytes (kept raw)."""
    if isinstance(name, bytes):
        name = name.decode(ENC, ERRORS)
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = len(data) if size is None else size
    t.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    t.mtime = 0
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    t.linkname = linkname
    t.devmajor, t.devminor = major, minor
    return t.tobuf(FMT, ENC, ERRORS), data


def reg(name, data):
    return entry(name, tarfile.REGTYPE, data)


def dirent(name):
    return entry(name, tarfile.DIRTYPE)


def pad(n):
    return NUL * (-n % BLOCK)


def tar(entries, *, sort=True, end=True, pad_last=True):
    """Tar bytes. sort: by raw name bytes (stable, so duplicates keep order)."""
    if sort:
        entries = sorted(entries, key=lambda e: raw_name(e[0]))
    out = bytearray()
    for i, (header, data) in enumerate(entries):
        out += header + data
        if pad_last or i + 1 < len(entries):
            out += pad(len(data))
    if end:
        out += NUL * (2 * BLOCK)
    return bytes(out)


def raw_name(header):
    # The sort key: the name field of the (last) header block.
    return header[-BLOCK:][:100].rstrip(NUL)


def gz_writer(fileobj):
    return gzip.GzipFile(filename="", mode="wb", compresslevel=9,
                         fileobj=fileobj, mtime=0)


def gz(data):
    buf = io.BytesIO()
    with gz_writer(buf) as g:
        g.write(data)
    return buf.getvalue()


# --------------------------------------------------------------------------
# valid pieces


def metadata(label, kind="golang", path="example.com/cclaunch/bad"):
    # Key order and compact separators as Fabric's json.Marshal writes them.
    return json.dumps({"path": path, "type": kind, "label": label},
                      separators=(",", ":")).encode()


GO_MOD = b"module example.com/cclaunch/bad\n\ngo 1.20\n"
MAIN_GO = b"package main\n\nfunc main() {}\n"


def code_entries():
    return [dirent("src/"), reg("src/go.mod", GO_MOD), reg("src/main.go", MAIN_GO)]


def code(*extra, sort=True):
    return gz(tar(code_entries() + list(extra), sort=sort))


def package(label, *extra, code_bytes=None, meta=None, sort=True):
    """A valid package, plus `extra` top-level entries."""
    entries = [reg("code.tar.gz", code() if code_bytes is None else code_bytes),
               reg("metadata.json", metadata(label) if meta is None else meta)]
    return gz(tar(entries + list(extra), sort=sort))


def outer(*entries, sort=True):
    return gz(tar(list(entries), sort=sort))


def with_code(label, *extra, sort=True):
    """A valid outer package around a code.tar.gz with `extra` entries."""
    return package(label, code_bytes=code(*extra, sort=sort))


# --------------------------------------------------------------------------
# bombs: streamed, 1 MiB of zeros at a time


def stream_tar(g, entries_before, big_name, big_size, entries_after=()):
    for header, data in entries_before:
        g.write(header + data + pad(len(data)))
    header, _ = entry(big_name, size=big_size)
    g.write(header)
    zeros = bytes(CHUNK)
    left = big_size
    while left:
        n = min(left, CHUNK)
        g.write(zeros[:n])
        left -= n
    g.write(pad(big_size))
    for header, data in entries_after:
        g.write(header + data + pad(len(data)))
    g.write(NUL * (2 * BLOCK))


def bomb_outer(path):
    # The zeros ride in an extra top-level entry after valid metadata.json and
    # code.tar.gz: a reader must inflate through them to reach the end, so the
    # only thing wrong it can report is the size. (1.5 GiB of zeros *as*
    # code.tar.gz would be refused as "not gzip" long before any cap.)
    label = "gzip-bomb-outer"
    with open(path, "wb") as f, gz_writer(f) as g:
        stream_tar(g, [reg("code.tar.gz", code()),
                       reg("metadata.json", metadata(label))],
                   "zeros", BOMB)


def bomb_inner(path):
    buf = io.BytesIO()  # the compressed inner stream is ~1.5 MB
    with gz_writer(buf) as g:
        stream_tar(g, code_entries(), "src/zeros", BOMB)
    with open(path, "wb") as f:
        f.write(package("gzip-bomb-inner", code_bytes=buf.getvalue()))


# --------------------------------------------------------------------------
# the cases

NON_UTF8 = b"\xff\xfe.json"
CODE_NON_UTF8 = b"src/\xff\xfe.go"


def truncated():
    whole = package("truncated")
    return whole[: len(whole) // 2]


def code_truncated():
    c = code()
    return package("code-truncated", code_bytes=c[: len(c) // 2])


def header_lies():
    # metadata.json, then code.tar.gz whose header claims 1 GiB; the real
    # ~200 bytes follow and the tar stream stops there (no padding, no end
    # blocks); the gzip stream itself is complete and valid.
    c = code()
    return gz(tar([reg("metadata.json", metadata("header-lies")),
                   entry("code.tar.gz", data=c, size=LIMIT)],
                  sort=False, end=False, pad_last=False))


def code_header_lies():
    # src/main.go claims 1 MiB; 30 bytes follow and the inner tar stops there.
    c = gz(tar([dirent("src/"), reg("src/go.mod", GO_MOD),
                entry("src/main.go", data=MAIN_GO, size=1 << 20)],
               end=False, pad_last=False))
    return package("code-header-lies", code_bytes=c)


# ---- read the way the peer and the engine (Go) read it -------------------

def after_zero_block(before, hidden):
    """A tar of `before`, ONE zero block, then `hidden` and the real end:
    tar-rs stops at the zero block, Go says "invalid tar header"."""
    return tar(before, end=False) + NUL * BLOCK + tar(hidden)


def entry_after_zero_block():
    return gz(after_zero_block(
        [reg("code.tar.gz", code()),
         reg("metadata.json", metadata("entry-after-zero-block"))],
        [reg("README.txt", b"hidden after a single zero block\n")]))


def code_entry_after_zero_block():
    return package("code-entry-after-zero-block", code_bytes=gz(after_zero_block(
        code_entries(), [entry("src/link", tarfile.SYMTYPE, linkname="/etc/shadow")])))


def code_dir_with_size():
    # "src/" claims 512 bytes of data; Go (and the engine) give a directory
    # none and read the next header there: a symlink a size-trusting reader
    # skips as the directory's data.
    link, _ = entry("src/link", tarfile.SYMTYPE, linkname="/etc/shadow")
    dir_header, _ = entry("src/", tarfile.DIRTYPE, size=BLOCK)
    c = gz(tar([(dir_header, link), reg("src/go.mod", GO_MOD),
                reg("src/main.go", MAIN_GO)], sort=False))
    return package("code-dir-with-size", code_bytes=c)


GARBAGE = b"these bytes follow the gzip stream\n"


def trailing_data():
    # No end-of-archive blocks: the peer's tar reader asks for more after the
    # gzip stream and Go's gzip reader finds GARBAGE instead of a member.
    body = tar([reg("code.tar.gz", code()),
                reg("metadata.json", metadata("trailing-data"))], end=False)
    return gz(body) + GARBAGE


def gzip_trailing(data):
    """Bytes after the first gzip member (None if it does not end)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    d.decompress(data)
    return len(d.unused_data) if d.eof else None


# ---- bounded headers ----------------------------------------------------

HEADER_MAX = 1 << 20  # Go's archive/tar limit for long names and PAX headers


def special(kind, data):
    t = tarfile.TarInfo("././@LongLink")
    t.type, t.size, t.mtime, t.mode = kind, len(data), 0, 0o644
    return t.tobuf(tarfile.USTAR_FORMAT, ENC, ERRORS), data


def pax_record(key, value):
    body = b" %s=%s\n" % (key, value)
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n += 1
    return b"%d" % n + body


def code_long_name_huge(path):
    # A GNU long-name header that claims 1.5 GiB of name: streamed, ~1.5 MB
    # of gzip that the outer gzip squeezes again to a few KB.
    t = tarfile.TarInfo("././@LongLink")
    t.type, t.size, t.mtime, t.mode = tarfile.GNUTYPE_LONGNAME, BOMB, 0, 0o644
    buf = io.BytesIO()
    with gz_writer(buf) as g:
        g.write(t.tobuf(tarfile.USTAR_FORMAT, ENC, ERRORS))
        chunk = b"a" * CHUNK
        left = BOMB
        while left:
            n = min(left, CHUNK)
            g.write(chunk[:n])
            left -= n
        h, d = reg("src/main.go", MAIN_GO)
        g.write(h + d + pad(len(d)) + NUL * (2 * BLOCK))
    with open(path, "wb") as f:
        f.write(package("code-long-name-huge", code_bytes=buf.getvalue()))


def first_inner_header(r):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return d.decompress(r.code_bytes, BLOCK)[:BLOCK]


def pax_path_huge():
    # A PAX header of 2 MiB (one `path` record), over the 1 MiB cap.
    pax = pax_record(b"path", b"p" * (2 << 20))
    return package("pax-path-huge", special(tarfile.XHDTYPE, pax),
                   reg("README.txt", b"named by the PAX header\n"), sort=False)


LONG_ABSOLUTE = b"/" + b"a" * (HEADER_MAX - 2)  # + NUL: exactly at the cap
LONG_DOTDOT = b"../" + b"d" * (HEADER_MAX - 4)


def code_long_absolute_name():
    c = code(special(tarfile.GNUTYPE_LONGNAME, LONG_ABSOLUTE + NUL),
             reg("short-name", b"x"), sort=False)
    return package("code-long-absolute-name", code_bytes=c)


def long_dotdot_name():
    return package("long-dotdot-name",
                   special(tarfile.GNUTYPE_LONGNAME, LONG_DOTDOT + NUL),
                   reg("short-name", b"x"), sort=False)


# ---- never quote content ------------------------------------------------

def fake_key():
    """A PEM-shaped private key (pseudo-random, deterministic): errors about
    it must not quote a byte of it."""
    import base64
    import hashlib
    raw, block = b"", b"cclaunch"
    while len(raw) < 1200:
        block = hashlib.sha256(block).digest()
        raw += block
    body = base64.b64encode(raw[:1200]).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + lines
            + "\n-----END PRIVATE KEY-----\n").encode()


KEY = fake_key()


# Each case: file, level (outer|code), expect (lowercase keyword, "-" = must be
# accepted), what is hostile, builder (bytes, or a function writing the file),
# and a check over the inspection of the written file (see inspect()).
CASES = [
    # ---- outer package -------------------------------------------------
    dict(file="not-gzip.tar.gz", level="outer", expect="not gzip",
         what="plain text, not gzip data",
         build=lambda: b"this is not a chaincode package, just text\n",
         check=lambda r: not r.gzip_magic),
    dict(file="truncated.tar.gz", level="outer", expect="truncated",
         what="a valid package cut in half (gzip stream ends early)",
         build=truncated,
         check=lambda r: r.gzip_magic and "EOF" in (r.outer_gz_err or "")),
    dict(file="missing-metadata.tar.gz", level="outer",
         expect="missing metadata.json",
         what="only code.tar.gz",
         build=lambda: outer(reg("code.tar.gz", code())),
         check=lambda r: r.outer_names() == [b"code.tar.gz"]),
    dict(file="missing-code.tar.gz", level="outer", expect="missing code.tar.gz",
         what="only metadata.json",
         build=lambda: outer(reg("metadata.json", metadata("missing-code"))),
         check=lambda r: r.outer_names() == [b"metadata.json"]),
    dict(file="metadata-not-json.tar.gz", level="outer",
         expect="metadata.json is not valid",
         what="metadata.json holds plain text",
         build=lambda: package("x", meta=b"this is not json\n"),
         check=lambda r: r.metadata_error() is not None),
    dict(file="metadata-missing-type.tar.gz", level="outer", expect="type",
         what='metadata.json has no "type" key',
         build=lambda: package("x", meta=json.dumps(
             {"path": "example.com/cclaunch/bad", "label": "metadata-missing-type"},
             separators=(",", ":")).encode()),
         check=lambda r: r.metadata_error() is None and "type" not in r.metadata()),
    dict(file="bad-label-dotdot.tar.gz", level="outer", expect="invalid label",
         what='label is "../evil"',
         build=lambda: package("../evil"),
         check=lambda r: r.metadata()["label"] == "../evil"),
    dict(file="bad-label-space.tar.gz", level="outer", expect="invalid label",
         what='label is "my label" (contains a space)',
         build=lambda: package("my label"),
         check=lambda r: r.metadata()["label"] == "my label"),
    dict(file="duplicate-metadata.tar.gz", level="outer", expect="duplicate",
         what="two metadata.json entries, different labels (which one wins?)",
         build=lambda: package("duplicate-metadata",
                               reg("metadata.json", metadata("second-label"))),
         check=lambda r: r.outer_names().count(b"metadata.json") == 2),
    dict(file="duplicate-code.tar.gz", level="outer", expect="duplicate",
         what="two code.tar.gz entries, different code",
         build=lambda: package("duplicate-code", reg("code.tar.gz", code(
             reg("src/other.go", b"package main\n")))),
         check=lambda r: r.outer_names().count(b"code.tar.gz") == 2),
    dict(file="warn-extra-entry.tar.gz", level="outer", expect="-",
         what="valid package plus an unexpected regular file README.txt at top "
              "level; Fabric only warns, so this one should be ACCEPTED",
         build=lambda: package("warn-extra-entry",
                               reg("README.txt", b"an extra file\n")),
         check=lambda r: r.outer_names() == [b"README.txt", b"code.tar.gz",
                                             b"metadata.json"]
         and r.inner_err is None),
    dict(file="outer-symlink.tar.gz", level="outer", expect="symlink",
         what="metadata.json is a symlink to /etc/passwd",
         build=lambda: outer(reg("code.tar.gz", code()),
                             entry("metadata.json", tarfile.SYMTYPE,
                                   linkname="/etc/passwd")),
         check=lambda r: r.outer_kind(b"metadata.json") == tarfile.SYMTYPE),
    dict(file="outer-dir-entry.tar.gz", level="outer", expect="directory",
         what='valid package plus a directory entry "src/" at top level',
         build=lambda: package("outer-dir-entry", dirent("src/")),
         check=lambda r: r.outer_kind(b"src/") == tarfile.DIRTYPE),
    dict(file="absolute-path.tar.gz", level="outer", expect="absolute path",
         what='metadata entry is named "/metadata.json"',
         build=lambda: outer(reg("code.tar.gz", code()),
                             reg("/metadata.json", metadata("absolute-path"))),
         check=lambda r: b"/metadata.json" in r.outer_names()),
    dict(file="dotdot.tar.gz", level="outer", expect="..",
         what='code entry is named "../code.tar.gz"',
         build=lambda: outer(reg("../code.tar.gz", code()),
                             reg("metadata.json", metadata("dotdot"))),
         check=lambda r: b"../code.tar.gz" in r.outer_names()),
    dict(file="non-utf8-name.tar.gz", level="outer", expect="not valid utf-8",
         what="valid package plus an entry named b'\\xff\\xfe.json' (raw bytes, "
              "no PAX header)",
         build=lambda: package("non-utf8-name", reg(NON_UTF8, b"{}\n")),
         check=lambda r: NON_UTF8 in r.outer_names() and not r.utf8(NON_UTF8)),
    dict(file="outer-device.tar.gz", level="outer", expect="device",
         what='valid package plus a character device "null" (1,3)',
         build=lambda: package("outer-device",
                               entry("null", tarfile.CHRTYPE, major=1, minor=3)),
         check=lambda r: r.outer_kind(b"null") == tarfile.CHRTYPE),
    dict(file="outer-fifo.tar.gz", level="outer", expect="fifo",
         what='valid package plus a fifo "pipe"',
         build=lambda: package("outer-fifo", entry("pipe", tarfile.FIFOTYPE)),
         check=lambda r: r.outer_kind(b"pipe") == tarfile.FIFOTYPE),
    dict(file="header-lies.tar.gz", level="outer", expect="truncated",
         what="code.tar.gz header claims 1 GiB, the archive holds ~200 bytes of "
              "it and ends (gzip stream itself complete)",
         build=header_lies,
         check=lambda r: r.outer_gzip_ok and r.outer_inflated < 4096
         and r.outer_size(b"code.tar.gz") == LIMIT),
    dict(file="gzip-bomb-outer.tar.gz", level="outer",
         expect="inflates to more than",
         what="valid metadata.json and code.tar.gz, then an extra entry "
              '"zeros" of 1.5 GiB: the outer gzip inflates to >1 GiB',
         build=bomb_outer, bomb=True,
         check=lambda r: r.outer_inflated > LIMIT
         and r.outer_size(b"zeros") == BOMB and r.inner_err is None),
    # ---- inner code.tar.gz (outer is valid) ----------------------------
    dict(file="code-absolute-path.tar.gz", level="code", expect="absolute path",
         what='code.tar.gz has a regular file "/etc/passwd"',
         build=lambda: with_code("code-absolute-path",
                                 reg("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n")),
         check=lambda r: b"/etc/passwd" in r.inner_names()),
    dict(file="code-dotdot.tar.gz", level="code", expect="..",
         what='code.tar.gz has a regular file "src/../../evil"',
         build=lambda: with_code("code-dotdot", reg("src/../../evil", b"evil\n")),
         check=lambda r: b"src/../../evil" in r.inner_names()),
    dict(file="code-symlink.tar.gz", level="code", expect="symlink",
         what='code.tar.gz has "src/link" -> /etc/shadow',
         build=lambda: with_code("code-symlink", entry(
             "src/link", tarfile.SYMTYPE, linkname="/etc/shadow")),
         check=lambda r: r.inner_kind(b"src/link") == tarfile.SYMTYPE
         and r.inner_link(b"src/link") == "/etc/shadow"),
    dict(file="code-hardlink.tar.gz", level="code", expect="hard link",
         what='code.tar.gz has "src/hard", a hard link to /etc/passwd',
         build=lambda: with_code("code-hardlink", entry(
             "src/hard", tarfile.LNKTYPE, linkname="/etc/passwd")),
         check=lambda r: r.inner_kind(b"src/hard") == tarfile.LNKTYPE
         and r.inner_link(b"src/hard") == "/etc/passwd"),
    dict(file="code-device.tar.gz", level="code", expect="device",
         what='code.tar.gz has a character device "src/null" (1,3)',
         build=lambda: with_code("code-device", entry(
             "src/null", tarfile.CHRTYPE, major=1, minor=3)),
         check=lambda r: r.inner_kind(b"src/null") == tarfile.CHRTYPE),
    dict(file="code-fifo.tar.gz", level="code", expect="fifo",
         what='code.tar.gz has a fifo "src/fifo"',
         build=lambda: with_code("code-fifo", entry("src/fifo", tarfile.FIFOTYPE)),
         check=lambda r: r.inner_kind(b"src/fifo") == tarfile.FIFOTYPE),
    dict(file="code-duplicate.tar.gz", level="code", expect="duplicate",
         what='code.tar.gz has "src/main.go" twice, different content',
         build=lambda: with_code("code-duplicate", reg(
             "src/main.go", b"package main\n\nfunc main() { panic(1) }\n")),
         check=lambda r: r.inner_names().count(b"src/main.go") == 2),
    dict(file="code-duplicate-normalized.tar.gz", level="code",
         expect="duplicate",
         what='code.tar.gz has "src/main.go" and "./src//main.go" (same path '
              "once cleaned)",
         build=lambda: with_code("code-duplicate-normalized", reg(
             "./src//main.go", b"package main\n\nfunc main() { panic(1) }\n"),
             sort=False),
         check=lambda r: b"./src//main.go" in r.inner_names()
         and b"src/main.go" in r.inner_names()),
    dict(file="code-non-utf8-name.tar.gz", level="code",
         expect="not valid utf-8",
         what="code.tar.gz has a file named b'src/\\xff\\xfe.go' (raw bytes)",
         build=lambda: with_code("code-non-utf8-name",
                                 reg(CODE_NON_UTF8, b"package main\n")),
         check=lambda r: CODE_NON_UTF8 in r.inner_names()
         and not r.utf8(CODE_NON_UTF8)),
    dict(file="code-not-gzip.tar.gz", level="code", expect="not gzip",
         what="code.tar.gz holds plain text",
         build=lambda: package("code-not-gzip",
                               code_bytes=b"this is not a gzip'd tar\n"),
         check=lambda r: r.code_bytes is not None
         and r.code_bytes[:2] != b"\x1f\x8b"),
    dict(file="code-truncated.tar.gz", level="code", expect="truncated",
         what="code.tar.gz is a valid code tarball cut in half (outer entry "
              "size is honest)",
         build=code_truncated,
         check=lambda r: r.outer_gzip_ok and r.outer_err is None
         and r.code_bytes[:2] == b"\x1f\x8b" and "EOF" in (r.inner_gz_err or "")),
    dict(file="code-header-lies.tar.gz", level="code", expect="truncated",
         what='in code.tar.gz, "src/main.go" claims 1 MiB, 30 bytes follow and '
              "the inner tar ends (inner gzip stream complete)",
         build=code_header_lies,
         check=lambda r: r.inner_gzip_ok and r.inner_size(b"src/main.go") == 1 << 20
         and r.inner_inflated < 4096),
    dict(file="gzip-bomb-inner.tar.gz", level="code",
         expect="inflates to more than",
         what='small valid outer; code.tar.gz holds "src/zeros", 1.5 GiB of '
              "zeros: the inner gzip inflates to >1 GiB",
         build=bomb_inner, bomb=True,
         check=lambda r: r.outer_inflated < LIMIT and r.inner_inflated > LIMIT
         and r.inner_size(b"src/zeros") == BOMB),
    # ---- read as the peer (outer) and the engine (code) read it --------
    dict(file="entry-after-zero-block.tar.gz", level="outer",
         expect="single zero block",
         what="valid package, then ONE zero block and an entry README.txt, then "
              "the end: Go (the peer) says invalid tar header",
         build=entry_after_zero_block,
         check=lambda r: r.outer_names() == [b"code.tar.gz", b"metadata.json"]
         and b"README.txt" in zlib.decompress(open(r.path, "rb").read(), 31)),
    dict(file="code-entry-after-zero-block.tar.gz", level="code",
         expect="single zero block",
         what="code.tar.gz: valid entries, ONE zero block, then src/link -> "
              "/etc/shadow: the engine's upload fails (invalid tar header)",
         build=code_entry_after_zero_block,
         check=lambda r: b"src/link" not in r.inner_names()
         and b"src/link" in zlib.decompress(r.code_bytes, 31)),
    dict(file="code-dir-with-size.tar.gz", level="code", expect="symlink",
         what='code.tar.gz: directory "src/" claims 512 bytes, which hold a '
              "symlink header src/link -> /etc/shadow (Go gives directories no "
              "data and reads the symlink)",
         build=code_dir_with_size,
         check=lambda r: r.inner_kind(b"src/link") == tarfile.SYMTYPE
         and r.inner_size(b"src/") == BLOCK),
    dict(file="trailing-data.tar.gz", level="outer", expect="trailing data",
         what="package tar without end blocks, then %d bytes after the gzip "
              "stream: Go's gzip reader (the peer) says invalid header" % len(GARBAGE),
         build=trailing_data,
         check=lambda r: gzip_trailing(open(r.path, "rb").read()) == len(GARBAGE)),
    dict(file="accept-trailing-after-tar-end.tar.gz", level="outer", expect="-",
         what="valid package, then %d bytes after the gzip stream: the peer stops "
              "at the end of the tar and never reads them, so this one is "
              "ACCEPTED (its id covers them)" % len(GARBAGE),
         build=lambda: package("accept-trailing-after-tar-end") + GARBAGE,
         check=lambda r: gzip_trailing(open(r.path, "rb").read()) == len(GARBAGE)
         and r.outer_names() == [b"code.tar.gz", b"metadata.json"]),
    dict(file="code-trailing-data.tar.gz", level="code", expect="trailing data",
         what="code.tar.gz is a valid code tarball followed by %d bytes after its "
              "gzip stream: the engine's upload fails (gzip: invalid header)" % len(GARBAGE),
         build=lambda: package("code-trailing-data", code_bytes=code() + GARBAGE),
         check=lambda r: gzip_trailing(r.code_bytes) == len(GARBAGE)),
    # ---- bounded headers -----------------------------------------------
    dict(file="code-long-name-huge.tar.gz", level="code",
         expect="larger than 1048576 bytes",
         what="code.tar.gz starts with a GNU long-name header claiming 1.5 GiB "
              "of name (a ~4 KB file; a reader that takes it whole holds GBs)",
         build=code_long_name_huge, bomb=True, shallow=True,
         check=lambda r: first_inner_header(r)[156:157] == b"L"
         and int(first_inner_header(r)[124:136].strip(b"\0 "), 8) == BOMB),
    dict(file="pax-path-huge.tar.gz", level="outer",
         expect="larger than 1048576 bytes",
         what="valid package plus an entry named by a 2 MiB PAX path record "
              "(over Go's 1 MiB limit for PAX headers)",
         build=pax_path_huge,
         check=lambda r: b"p" * (2 << 20) in r.outer_names()),
    dict(file="code-long-absolute-name.tar.gz", level="code",
         expect="absolute path",
         what="code.tar.gz has an absolute name of 1 MiB (a GNU long name at the "
              "cap): the error must quote a bounded excerpt of it",
         build=code_long_absolute_name,
         check=lambda r: LONG_ABSOLUTE in r.inner_names()),
    dict(file="long-dotdot-name.tar.gz", level="outer", expect="..",
         what="valid package plus an entry \"../ddd...\" of 1 MiB (GNU long name): "
              "the error must quote a bounded excerpt of it",
         build=long_dotdot_name,
         check=lambda r: LONG_DOTDOT in r.outer_names()),
    # ---- never quote content -------------------------------------------
    dict(file="private-key.tar.gz", level="outer",
         expect="not a valid tar archive",
         what="a gzip'd PEM private key given as a package (no error may quote it)",
         build=lambda: gz(KEY),
         check=lambda r: zlib.decompress(open(r.path, "rb").read(), 31) == KEY),
    dict(file="code-private-key.tar.gz", level="code",
         expect="not a valid tar archive",
         what="code.tar.gz is a gzip'd PEM private key (no error may quote it)",
         build=lambda: package("code-private-key", code_bytes=gz(KEY)),
         check=lambda r: zlib.decompress(r.code_bytes, 31) == KEY),
    dict(file="metadata-key-string.tar.gz", level="outer",
         expect="not a json object",
         what="metadata.json is a JSON string holding a PEM private key (serde's "
              "error would quote it)",
         build=lambda: package("x", meta=json.dumps(KEY.decode()).encode()),
         check=lambda r: r.metadata() == KEY.decode()),
]


# --------------------------------------------------------------------------
# inspection with Python's own gzip/tarfile/zlib, independent of the writer


def inflate_count(chunks):
    """(inflated byte count, error or None), streaming, for a gzip byte source."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    try:
        for chunk in chunks:
            while chunk:
                total += len(d.decompress(chunk, CHUNK))
                chunk = d.unconsumed_tail
        total += len(d.flush())
        if not d.eof:
            return total, "EOF: gzip stream ends before its end marker"
    except zlib.error as e:
        return total, "zlib: %s" % e
    return total, None


def file_chunks(path):
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return
            yield b


def list_tar(fileobj, want=lambda name: False):
    """[(raw name, type, size, linkname)], error; data of entries `want` says."""
    found, data, err = [], {}, None
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*", encoding=ENC,
                          errors=ERRORS) as tf:
            for m in tf:
                name = m.name.encode(ENC, ERRORS)
                if m.isdir() and not name.endswith(b"/"):
                    name += b"/"  # tarfile strips the trailing slash
                found.append((name, m.type, m.size, m.linkname))
                if m.isreg() and want(name) and m.size < 64 << 20:
                    data.setdefault(name, tf.extractfile(m).read())
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        err = "%s: %s" % (type(e).__name__, e)
        if isinstance(e, EOFError) or "unexpected end" in str(e):
            err = "EOF " + err
    return found, data, err


class Report:
    def __init__(self, path, shallow=False):
        self.path = path
        self.size = os.path.getsize(path)
        with open(path, "rb") as f:
            self.gzip_magic = f.read(2) == b"\x1f\x8b"
        self.outer = self.inner = []
        self.outer_err = self.inner_err = None
        self.code_bytes = self.meta_bytes = None
        self.outer_inflated = self.inner_inflated = 0
        self.outer_gzip_ok = self.inner_gzip_ok = False
        self.outer_gz_err = self.inner_gz_err = None
        if not self.gzip_magic:
            return
        self.outer_inflated, self.outer_gz_err = inflate_count(file_chunks(path))
        self.outer_gzip_ok = self.outer_gz_err is None
        with open(path, "rb") as f:
            self.outer, data, self.outer_err = list_tar(
                f, want=lambda n: n in (b"code.tar.gz", b"metadata.json"))
        self.code_bytes = data.get(b"code.tar.gz")
        self.meta_bytes = data.get(b"metadata.json")
        if shallow:
            return
        if self.code_bytes is not None and self.code_bytes[:2] == b"\x1f\x8b":
            self.inner_inflated, self.inner_gz_err = inflate_count([self.code_bytes])
            self.inner_gzip_ok = self.inner_gz_err is None
            self.inner, _, self.inner_err = list_tar(io.BytesIO(self.code_bytes))

    def outer_names(self):
        return [e[0] for e in self.outer]

    def inner_names(self):
        return [e[0] for e in self.inner]

    def _find(self, entries, name):
        return next(e for e in entries if e[0] == name)

    def outer_kind(self, name):
        return self._find(self.outer, name)[1]

    def outer_size(self, name):
        return self._find(self.outer, name)[2]

    def inner_kind(self, name):
        return self._find(self.inner, name)[1]

    def inner_size(self, name):
        return self._find(self.inner, name)[2]

    def inner_link(self, name):
        return self._find(self.inner, name)[3]

    def metadata(self):
        return json.loads(self.meta_bytes)

    def metadata_error(self):
        try:
            self.metadata()
            return None
        except ValueError as e:
            return str(e)

    @staticmethod
    def utf8(raw):
        try:
            raw.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    def describe(self, entries):
        kinds = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d",
                 tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h", tarfile.CHRTYPE: "c",
                 tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}
        out = []
        for name, kind, size, link in entries:
            shown = name if len(name) <= 80 else name[:40] + b"...(%d bytes)" % len(name)
            s = "%s:%s" % (kinds.get(kind, kind), shown.decode("ascii", "backslashreplace"))
            if link:
                s += "->" + link
            if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) and size > 4096:
                s += "(%d)" % size
            out.append(s)
        return " ".join(out)


# --------------------------------------------------------------------------


def write_tables():
    with open(os.path.join(HERE, "cases.tsv"), "w") as f:
        f.write("file\tlevel\texpect\n")
        for c in CASES:
            f.write("%s\t%s\t%s\n" % (c["file"], c["level"], c["expect"]))
    rows = "\n".join(
        "| `%s` | %s | %s | %s |" % (
            c["file"], c["level"], c["what"].replace("|", "\\|"),
            "*accepted*" if c["expect"] == "-" else "`%s`" % c["expect"])
        for c in CASES)
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write(README % {"rows": rows, "n": len(CASES)})


README = """\
# Hostile chaincode packages

Generated by `make-bad.py` (Python 3 standard library only; edit the script, not
this file or `cases.tsv`, then run `python3 testdata/bad/make-bad.py`). The
script verifies each file with Python's own `gzip`/`tarfile`/`zlib` after writing
it; `--verify` only verifies.

Every file except the bombs is at most a few KB. The two bombs inflate to
1.5 GiB (more than cclaunch's default 1 GiB per-layer cap): `gzip-bomb-outer` is
~1.5 MB on disk (deflate's ceiling is ~1032:1), `gzip-bomb-inner` ~3 KB (its
~1.5 MB `code.tar.gz` is itself very repetitive, so the outer gzip squeezes it
again); `code-long-name-huge` is built the same way (a 1.5 GiB GNU long name in
a ~4 KB file). A full run takes ~3 minutes, nearly all of it the bombs;
`--no-bombs` skips regenerating them, `--tables` only rewrites this file and
`cases.tsv`. Output is byte-identical across runs with the same zlib (checked
with zlib 1.2.13); a different zlib build may compress differently, which
changes no hostile property.

Apart from the one hostile property, each file is a valid package: `metadata.json`
(`{"path":"example.com/cclaunch/bad","type":"golang","label":"<case name>"}`) and
a `code.tar.gz` with `src/`, `src/go.mod`, `src/main.go`. Entries are in sorted
order except where the case needs otherwise.

## Machine-readable: `cases.tsv`

`file<TAB>level<TAB>expect`, one header line, then one line per file:

- `level`: `outer` (the package's own tar/gzip, `metadata.json`) or `code`
  (the `code.tar.gz` inside an otherwise valid package).
- `expect`: a lowercase keyword the launcher's error must contain, matched
  case-insensitively (`not valid utf-8` vs `UTF-8`). `-` means the package must
  be **accepted** (Fabric only warns about an unexpected top-level file).

Match the keyword against the error **with the package's path removed** (or copy
the file to a neutral name first): the file names contain words such as
`symlink`, `duplicate`, `fifo`, `device`, `truncated` and `type`, so a message
that merely names the file would pass.

## The %(n)s cases

| file | level | what is hostile | error contains |
|---|---|---|---|
%(rows)s

Notes:

- The outer layer accepts regular files only (a directory entry is refused);
  `code.tar.gz` accepts regular files and directories.
- `gzip-bomb-outer`: the zeros are an extra top-level entry after valid
  `metadata.json` and `code.tar.gz`, so the only fault a reader can find is the
  inflated size (1.5 GiB of zeros *as* `code.tar.gz` would just be "not gzip").
- `header-lies` / `code-header-lies`: the gzip stream is complete and valid; it
  is the tar inside that stops short of the size its last header claims, so a
  reader that trusts the header (or preallocates from it) is caught.
- `truncated` cuts the whole file in half; `code-truncated` cuts only
  `code.tar.gz`, whose outer entry size is honest.
- Non-UTF-8 names are raw bytes in a GNU-format header (no PAX `path` record,
  which would have to be UTF-8 or flagged `hdrcharset=BINARY`).
- Both layers are judged as their real readers judge them, Go's
  `compress/gzip` and `archive/tar`: the outer one as the peer reads it (up to
  the end of the tar, nothing after), `code.tar.gz` as the engine reads it
  when the build container receives it (the whole gzip stream). Checked with
  Go 1.19 and the Docker 20.10 engine: a single zero block followed by an
  entry is "invalid tar header" for both; bytes after the gzip stream make
  the engine's upload fail ("gzip: invalid header") but the peer only fails
  when its tar reader needs more (no end-of-archive blocks), hence
  `trailing-data` (refused) and `accept-trailing-after-tar-end` (accepted).
  `tests/go_reader.rs` checks these verdicts against Go and the engine.
- `code-dir-with-size`: Go gives directories, links, devices and fifos no
  data whatever their size field says, so the symlink "inside" the directory's
  data is an entry to the engine.
- Long names and PAX headers are capped at 1 MiB, Go's own limit
  (`maxSpecialFileSize`), by the size in their header, before they are read;
  names under the cap are quoted as bounded excerpts.
- `private-key`, `code-private-key`, `metadata-key-string`: the errors must
  not quote a byte of the (fake) key.
"""


def verify(only=None):
    ok = True
    print("%-34s %5s %10s %14s %14s  %s" % ("file", "level", "bytes", "outer inflated",
                                            "code inflated", "entries / errors"))
    for c in CASES:
        if only and c["file"] not in only:
            continue
        path = os.path.join(HERE, c["file"])
        if not os.path.exists(path):
            print("%-34s MISSING" % c["file"])
            ok = False
            continue
        r = Report(path, shallow=c.get("shallow", False))
        try:
            good = bool(c["check"](r))
        except Exception as e:  # a check that cannot even look is a failure
            good = False
            r.outer_err = (r.outer_err or "") + " check raised %r" % e
        ok &= good
        detail = "outer[%s]" % r.describe(r.outer)
        if r.outer_gz_err:
            detail += " gzip-error[%s]" % r.outer_gz_err
        if r.outer_err:
            detail += " outer-error[%s]" % r.outer_err
        if r.inner:
            detail += " code[%s]" % r.describe(r.inner)
        if r.inner_gz_err:
            detail += " code-gzip-error[%s]" % r.inner_gz_err
        if r.inner_err:
            detail += " code-error[%s]" % r.inner_err
        if not r.gzip_magic:
            detail = "not gzip: %r" % open(path, "rb").read(40)
        elif r.code_bytes is not None and r.code_bytes[:2] != b"\x1f\x8b":
            detail += " code.tar.gz-not-gzip[%r]" % r.code_bytes[:24]
        print("%-34s %5s %10d %14d %14d  %s %s" % (
            c["file"], c["level"], r.size, r.outer_inflated, r.inner_inflated,
            "OK  " if good else "FAIL", detail))
    return ok


def main(argv):
    bombs = "--no-bombs" not in argv
    if "--tables" in argv:
        write_tables()
        return 0
    if "--verify" not in argv:
        for c in CASES:
            if c.get("bomb") and not bombs:
                continue
            path = os.path.join(HERE, c["file"])
            tmp = path + ".tmp"
            if callable(c["build"]) and c.get("bomb"):
                c["build"](tmp)
            else:
                with open(tmp, "wb") as f:
                    f.write(c["build"]())
            os.replace(tmp, path)
        write_tables()
    if not verify():
        print("verification FAILED", file=sys.stderr)
        return 1
    print("all %d cases have their hostile property" % len(CASES))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
