#!/usr/bin/env python3
"""(Re)generate the fuzz corpus in testdata/fuzz/corpus/.

    python3 testdata/fuzz/make-corpus.py

Standard library only, deterministic for a given zlib. Small *valid*
packages in the tar dialects the package reader must follow the way Go's
archive/tar does (PAX, GNU long names, USTAR prefixes, base-256 sizes,
legacy '\\0' types, record padding, multi-member gzip), for tests/fuzz_*.rs
to mutate. The fuzzer also mutates testdata/good/ and the small files of
testdata/bad/. Types are golang, node and java: the fuzz sidecar's images
are absent, so nothing built from a mutant ever reaches a build container.
"""

import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
BLOCK = 512


def gz(data, level=9):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=buf,
                       mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def tar(entries, fmt=tarfile.GNU_FORMAT, record=False):
    """entries: (name, data or None for a directory, typeflag or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uname = info.gname = ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                if kind is not None:
                    info.type = kind
                t.addfile(info, io.BytesIO(data))
    out = buf.getvalue()
    if not record:
        # Go's writer: two zero blocks, no padding to a 10 KiB record.
        end = len(out)
        while end >= BLOCK and out[end - BLOCK:end] == b"\0" * BLOCK:
            end -= BLOCK
        out = out[:end] + b"\0" * (2 * BLOCK)
    return out


def package(kind, label, code_tar, path="", fmt=tarfile.GNU_FORMAT, record=False,
            code_gz=None, outer_gz=gz):
    meta = json.dumps({"path": path, "type": kind, "label": label},
                      separators=(",", ":")).encode()
    code = code_gz(code_tar) if code_gz else gz(code_tar)
    return outer_gz(tar([("code.tar.gz", code, None), ("metadata.json", meta, None)],
                        fmt=fmt, record=record))


GO_MOD = b"module example.com/fuzz\n\ngo 1.21\ntoolchain go1.22.3\n"
MAIN_GO = b"package main\n\nfunc main() {}\n"


def base256_size(tar_bytes, name):
    """Rewrites `name`'s size field in base-256 (the GNU binary form Go reads)."""
    out = bytearray(tar_bytes)
    off = 0
    while off + BLOCK <= len(out):
        block = out[off:off + BLOCK]
        if block == b"\0" * BLOCK:
            break
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        if block[:100].rstrip(b"\0") == name.encode():
            out[off + 124:off + 136] = b"\x80" + size.to_bytes(11, "big")
            out[off + 148:off + 156] = b" " * 8
            out[off + 148:off + 156] = b"%06o\0 " % sum(out[off:off + BLOCK])
        off += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
    return bytes(out)


def legacy_types(tar_bytes):
    """Typeflag '0' written as '\\0' (Go: regular, or a directory if the name
    ends in '/')."""
    out = bytearray(tar_bytes)
    off = 0
    while off + BLOCK <= len(out):
        block = out[off:off + BLOCK]
        if block == b"\0" * BLOCK:
            break
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        if block[156:157] in (b"0", b"5"):
            out[off + 156] = 0
            out[off + 148:off + 156] = b" " * 8
            out[off + 148:off + 156] = b"%06o\0 " % sum(out[off:off + BLOCK])
        off += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
    return bytes(out)


def two_members(data):
    half = len(data) // 2
    return gz(data[:half]) + gz(data[half:])


LONG = "src/" + "/".join(["deep-directory-name"] * 8) + "/file.go"
SEEDS = {
    "pax-golang.tar.gz": package(
        "golang", "pax_1", tar([
            ("src/", None, None), ("src/go.mod", GO_MOD, None),
            ("src/main.go", MAIN_GO, None), ("src/ünïcode.go", b"package main\n", None),
            (LONG, b"package deep\n", None)], fmt=tarfile.PAX_FORMAT),
        path="example.com/fuzz", fmt=tarfile.PAX_FORMAT),
    "gnu-longname-node.tar.gz": package(
        "node", "gnu_1", tar([
            ("src/", None, None), ("src/package.json", b'{"name":"x"}\n', None),
            (LONG.replace(".go", ".js"), b"module.exports = 1\n", None)])),
    "ustar-prefix-java.tar.gz": package(
        "java", "ustar_1", tar([
            ("src/", None, None), ("src/build.gradle", b"plugins {}\n", None),
            (LONG.replace(".go", ".java"), b"class A {}\n", None)],
            fmt=tarfile.USTAR_FORMAT), fmt=tarfile.USTAR_FORMAT),
    "base256-size.tar.gz": package(
        "golang", "b256_1", base256_size(tar([
            ("src/go.mod", GO_MOD, None), ("src/main.go", MAIN_GO, None)]),
            "src/main.go"), path="example.com/fuzz"),
    "legacy-types.tar.gz": package(
        "golang", "legacy_1", legacy_types(tar([
            ("src/", None, None), ("src/go.mod", GO_MOD, None),
            ("src/main.go", MAIN_GO, None)])), path="example.com/fuzz"),
    "record-padded.tar.gz": package(
        "node", "record_1", tar([
            ("src/", None, None), ("src/package.json", b"{}\n", None)], record=True),
        record=True),
    "multi-member.tar.gz": package(
        "node", "multi_1", tar([
            ("src/", None, None), ("src/package.json", b"{}\n", None),
            ("src/index.js", b"console.log(1)\n" * 40, None)]),
        code_gz=two_members, outer_gz=two_members),
    "metadata-extra-keys.tar.gz": gz(tar([
        ("code.tar.gz", gz(tar([("src/package.json", b"{}\n", None)])), None),
        ("metadata.json", b'{"label":"extra_1","type":"node","path":"",'
                          b'"other":{"nested":[1,2.5,true,null,"s"]}}', None)])),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%-28s %6d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
