#!/usr/bin/env python3
"""(Re)generate small valid chaincode packages in testdata/good/, one per type.

    python3 testdata/good/make-good.py

Standard library only. Each package is what `peer lifecycle chaincode package`
would write: a gzip'd tar of exactly `code.tar.gz` and `metadata.json` (in that,
sorted, order), `code.tar.gz` being a gzip'd tar of a few small files under
`src/` (and `META-INF/` for golang), directory entries included.

The bytes are deterministic for a given zlib (GNU-format headers, mtime 0,
uid/gid 0, empty uname/gname, mode 0644/0755, sorted entries, two zero end
blocks and no record padding, gzip level 9 with mtime 0 and no file name), so
each package id `<label>:<sha256 of the file>` is stable. The ids are printed
and written to ids.tsv (`file<TAB>type<TAB>label<TAB>path<TAB>id`).

These are for validation and package-id tests, not for building: the buildable
sample chaincodes are in testdata/chaincode/.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
BLOCK = 512
NUL = b"\0"

PACKAGES = [
    dict(file="golang.tar.gz", type="golang", label="good-golang_1.0",
         path="example.com/cclaunch/sample", files={
             "src/go.mod": b"module example.com/cclaunch/sample\n\ngo 1.20\n",
             "src/main.go": b'package main\n\nimport "fmt"\n\n'
                            b'func main() { fmt.Println("good-golang") }\n',
             "META-INF/statedb/couchdb/indexes/indexOwner.json":
                 b'{"index":{"fields":["owner"]},"ddoc":"indexOwnerDoc",'
                 b'"name":"indexOwner","type":"json"}\n',
         }),
    dict(file="node.tar.gz", type="node", label="good-node_1.0", path="", files={
        "src/package.json": b'{\n  "name": "good-node",\n  "version": "1.0.0",\n'
                            b'  "main": "index.js",\n'
                            b'  "scripts": { "start": "node index.js" }\n}\n',
        "src/index.js": b'console.log("good-node");\n',
    }),
    dict(file="java.tar.gz", type="java", label="good-java_1.0", path="", files={
        "src/settings.gradle": b"rootProject.name = 'good-java'\n",
        "src/build.gradle": b"plugins { id 'java' }\n",
        "src/src/main/java/org/example/Good.java":
            b"package org.example;\n\npublic class Good {\n"
            b'    public static void main(String[] args) {\n'
            b'        System.out.println("good-java");\n    }\n}\n',
    }),
]


def header(name, kind, size=0):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.size = size
    t.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    t.mtime = 0
    t.uid = t.gid = 0
    t.uname = t.gname = ""
    return t.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def tar(files, dirs=True):
    """files: {name: bytes}. With dirs, every parent directory gets an entry."""
    entries = {name: data for name, data in files.items()}
    if dirs:
        for name in files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                entries.setdefault("/".join(parts[:i]) + "/", None)
    out = bytearray()
    for name in sorted(entries):
        data = entries[name]
        if data is None:
            out += header(name, tarfile.DIRTYPE)
        else:
            out += header(name, tarfile.REGTYPE, len(data))
            out += data + NUL * (-len(data) % BLOCK)
    out += NUL * (2 * BLOCK)
    return bytes(out)


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf,
                       mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def metadata(p):
    return json.dumps({"path": p["path"], "type": p["type"], "label": p["label"]},
                      separators=(",", ":")).encode()


def build(p):
    code = gz(tar(p["files"]))
    return gz(tar({"code.tar.gz": code, "metadata.json": metadata(p)}, dirs=False))


def verify(path, p):
    """Re-read with tarfile: exactly the two files, then the code entries."""
    with tarfile.open(path, "r:gz") as tf:
        members = tf.getmembers()
        assert [(m.name, m.isreg()) for m in members] == [
            ("code.tar.gz", True), ("metadata.json", True)], members
        meta = json.loads(tf.extractfile("metadata.json").read())
        assert meta == {"path": p["path"], "type": p["type"], "label": p["label"]}
        code = tf.extractfile("code.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(code), mode="r:gz") as tf:
        names = []
        for m in tf.getmembers():
            assert m.isreg() or m.isdir(), m
            assert not m.name.startswith("/") and ".." not in m.name.split("/")
            names.append(m.name + ("/" if m.isdir() else ""))
            if m.isreg():
                assert tf.extractfile(m).read() == p["files"][m.name]
    assert set(p["files"]) <= set(names)
    return names


def main():
    with open(os.path.join(HERE, "ids.tsv"), "w") as ids:
        ids.write("file\ttype\tlabel\tpath\tid\n")
        for p in PACKAGES:
            data = build(p)
            path = os.path.join(HERE, p["file"])
            with open(path, "wb") as f:
                f.write(data)
            names = verify(path, p)
            pid = "%s:%s" % (p["label"], hashlib.sha256(data).hexdigest())
            ids.write("%s\t%s\t%s\t%s\t%s\n" % (p["file"], p["type"], p["label"],
                                                p["path"], pid))
            print(pid)
            print("    %s, %d bytes: %s" % (p["file"], len(data), " ".join(names)),
                  file=sys.stderr)


if __name__ == "__main__":
    main()
