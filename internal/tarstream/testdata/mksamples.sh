#!/bin/sh
# Writes the archives of testdata/samples with the real GNU tar and bsdtar
# (Debian's tar and libarchive-tools), then the seed corpus of FuzzReader
# from them (mkfuzz.py). The good ones are what a client sends; the bad ones
# are what the reader must refuse, each named for its fault. Run as root
# (mknod for the device). Outputs are committed; rerun only to change them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/samples"
rm -rf "$out"
mkdir -p "$out"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"
printf 'hello\n' >a.txt
printf '' >empty
head -c 1300 /dev/zero | tr '\0' x >b.bin
mkdir -p sub/dir
printf 'deep\n' >sub/dir/c.txt
long=$(printf 'n%.0s' $(seq 1 150))
printf 'long\n' >"$long.pkg.tar.zst"
export TZ=UTC
gnu="tar --owner=0 --group=0 --mtime=2026-01-01 --hard-dereference"
# What clients send: every format each tool writes.
$gnu -cf "$out/gnu-default.tar" a.txt empty b.bin sub/dir/c.txt
$gnu -b 1 --format=gnu -cf "$out/gnu-longname.tar" a.txt "$long.pkg.tar.zst"
$gnu -b 1 --format=posix -cf "$out/gnu-posix.tar" a.txt "$long.pkg.tar.zst" sub/dir/c.txt
$gnu -b 1 --format=ustar -cf "$out/gnu-ustar.tar" a.txt b.bin sub/dir/c.txt
bsdtar --uid 0 --gid 0 -cf "$out/bsdtar-default.tar" a.txt empty b.bin "$long.pkg.tar.zst"
bsdtar --uid 0 --gid 0 -b 1 --format=pax -cf "$out/bsdtar-pax.tar" a.txt sub/dir/c.txt
bsdtar --uid 0 --gid 0 -b 1 --format=ustar -cf "$out/bsdtar-ustar.tar" a.txt b.bin
# Refused: one fault each.
$gnu -b 1 -cf "$out/bad-duplicate.tar" a.txt b.bin a.txt
ln -s a.txt link
ln a.txt hard
mknod dev c 1 3
mkfifo fifo
$gnu -b 1 -cf "$out/bad-symlink.tar" a.txt link
bsdtar -b 1 -cf "$out/bad-hardlink.tar" a.txt hard
$gnu -b 1 -cf "$out/bad-device.tar" dev
$gnu -b 1 -cf "$out/bad-fifo.tar" fifo
$gnu -b 1 --no-recursion -cf "$out/bad-directory.tar" sub a.txt
$gnu -b 1 -P -cf "$out/bad-absolute.tar" "$w/a.txt"
$gnu -b 1 -cf "$out/bad-dotdot.tar" --transform 's,^,../,' a.txt
$gnu -b 1 -cf "$out/bad-dot.tar" ./a.txt
truncate -s 1M sparse
printf 'data' | dd of=sparse bs=1 seek=500000 conv=notrunc 2>/dev/null
$gnu -b 1 -S -cf "$out/bad-sparse-gnu.tar" sparse
$gnu -b 1 -S --format=posix -cf "$out/bad-sparse-pax.tar" sparse
python3 -c 'import tarfile,sys; t=tarfile.open(sys.argv[1],"w",format=tarfile.PAX_FORMAT,pax_headers={"comment":"global"}); t.add("a.txt"); t.close()' "$out/bad-global.tar"
$gnu -b 1 --format=v7 -cf "$out/bad-v7.tar" a.txt
$gnu -b 1 -cf - a.txt b.bin | head -c 1536 >"$out/bad-truncated-body.tar"
$gnu -b 1 -cf - a.txt | head -c 1024 >"$out/bad-truncated-end.tar"
$gnu -b 1 -cf - a.txt | head -c 1536 >"$out/bad-one-end-block.tar"
{ $gnu -cf - a.txt; printf 'garbage'; } >"$out/bad-trailing.tar"
{ $gnu -cf - a.txt; $gnu -cf - b.bin; } >"$out/bad-concatenated.tar"
$gnu -b 1 -cf - --files-from /dev/null >"$out/empty.tar"
python3 "$here/mkfuzz.py"
