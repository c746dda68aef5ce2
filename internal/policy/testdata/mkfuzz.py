#!/usr/bin/env python3
# Writes the seed corpora of the per-format fuzz targets (testdata/fuzz/FuzzX/)
# from the stored samples, in `go test fuzz v1` form. Rerun after mksamples.sh.
import os, struct
here = os.path.dirname(os.path.abspath(__file__))
samples = os.path.join(here, "samples")

def goquote(b):
    out = []
    for c in b:
        ch = chr(c)
        if ch == '"' or ch == '\\':
            out.append('\\' + ch)
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append('\\x%02x' % c)
    return '"' + ''.join(out) + '"'

def write(target, name, *values):
    d = os.path.join(here, "fuzz", target)
    os.makedirs(d, exist_ok=True)
    lines = ["go test fuzz v1"]
    for v in values:
        if isinstance(v, bytes):
            lines.append("[]byte(" + goquote(v) + ")")
        else:
            lines.append("uint16(%d)" % v)
    with open(os.path.join(d, name), "w") as f:
        f.write("\n".join(lines) + "\n")

def sample(n):
    with open(os.path.join(samples, n), "rb") as f:
        return f.read()

for target, files in {
    "FuzzGzip": ["hello-1.0-1-any.pkg.tar.gz", "repo.db.tar.gz"],
    "FuzzBzip2": ["hello-1.0-1-any.pkg.tar.bz2"],
    "FuzzZstd": ["hello-1.0-1-any.pkg.tar.zst", "hello-1.0-1-any.pkg.tar.zst22"],
    "FuzzLZ4": ["hello-1.0-1-any.pkg.tar.lz4", "hello-1.0-1-any.pkg.tar.lz4d"],
    "FuzzLzip": ["hello-1.0-1-any.pkg.tar.lz"],
    "FuzzLzop": ["hello-1.0-1-any.pkg.tar.lzo"],
    "FuzzCompress": ["hello-1.0-1-any.pkg.tar.Z"],
}.items():
    for n in files:
        write(target, n.replace("hello-1.0-1-any.", ""), sample(n))

# The raw blocks inside the lzop and lz4 samples.
lzo = sample("hello-1.0-1-any.pkg.tar.lzo")
# lzop header: magic 9, version 2, lib 2, need 2, method 1, level 1, flags 4,
# mode 4, mtime 8, name length 1 + name, checksum 4.
off = 9 + 2 + 2 + 2 + 1 + 1
flags = struct.unpack(">I", lzo[off:off+4])[0]
off += 4 + 4 + 8
off += 1 + lzo[off] + 4
dst, src = struct.unpack(">II", lzo[off:off+8])
off += 8 + 4 * (bin(flags & 0x0303).count("1"))
write("FuzzLZO1X", "block", lzo[off:off+src], min(dst, 65535))
lz4 = sample("hello-1.0-1-any.pkg.tar.lz4")
flg = lz4[4]
off = 4 + 2 + (8 if flg & 0x08 else 0) + 1
size = struct.unpack("<I", lz4[off:off+4])[0] & 0x7FFFFFFF
write("FuzzLZ4Block", "block", lz4[off+4:off+4+size], 65535)
