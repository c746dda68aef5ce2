#!/usr/bin/env python3
# Writes FuzzReader's seed corpus (testdata/fuzz/FuzzReader/) from the
# archives in testdata/samples, in `go test fuzz v1` form.
import os
here = os.path.dirname(os.path.abspath(__file__))
samples = os.path.join(here, "samples")
d = os.path.join(here, "fuzz", "FuzzReader")
os.makedirs(d, exist_ok=True)
for f in os.listdir(d):
    os.remove(os.path.join(d, f))

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

for n in sorted(os.listdir(samples)):
    with open(os.path.join(samples, n), "rb") as f:
        data = f.read()
    with open(os.path.join(d, n.removesuffix(".tar")), "w") as f:
        f.write("go test fuzz v1\n[]byte(" + goquote(data) + ")\nuint8(4)\n")
