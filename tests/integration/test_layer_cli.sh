#!/usr/bin/env bash
# kiln layer create / extract / diff-id: round trips, reproducibility,
# agreement with gzip, zcat and sha256sum, and one-line errors on bad input.
. "$(dirname "$0")/lib.sh"

tree="$WORK/tree"
mkdir -p "$tree/bin" "$tree/etc/conf.d" "$tree/empty" "$tree/usr/share/doc"
printf 'hello\n' >"$tree/etc/motd"
printf 'a=1\nb=2\n' >"$tree/etc/conf.d/app.conf"
head -c 200000 /dev/urandom >"$tree/usr/share/doc/random.bin"
seq 1 50000 >"$tree/usr/share/doc/numbers.txt"
: >"$tree/etc/empty-file"
printf '#!/bin/sh\necho hi\n' >"$tree/bin/hi" && chmod 0755 "$tree/bin/hi"
ln -s hi "$tree/bin/hi-link"
ln -s ../etc/motd "$tree/usr/motd-link"
ln "$tree/etc/motd" "$tree/etc/motd-hardlink"
long="$tree/$(printf 'd%.0s' {1..60})/$(printf 'n%.0s' {1..120})"
mkdir -p "$(dirname "$long")" && echo long >"$long"
printf 'x' >"$tree/name with spaces"

# create: DIGEST DIFF_ID SIZE
out=$("$KILN" layer create "$tree" --output "$WORK/l1.tar.gz")
check "create prints digest, diff_id and size" \
        grep -qE '^sha256:[0-9a-f]{64} sha256:[0-9a-f]{64} [0-9]+$' <<<"$out"
read -r digest diff_id size <<<"$out"
check_eq "digest is the sha256 of the file" "$digest" "sha256:$(sha256sum "$WORK/l1.tar.gz" | cut -d' ' -f1)"
check_eq "size is the file's size" "$size" "$(stat -c %s "$WORK/l1.tar.gz")"
check "gzip -t accepts the layer" gzip -t "$WORK/l1.tar.gz"
check_eq "diff_id is the sha256 of the uncompressed tar" "$diff_id" \
        "sha256:$(zcat "$WORK/l1.tar.gz" | sha256sum | cut -d' ' -f1)"
check_eq "diff-id agrees" "$diff_id" "$("$KILN" layer diff-id "$WORK/l1.tar.gz")"
check "GNU tar lists the layer" tar -tzf "$WORK/l1.tar.gz"
tmps=("$WORK"/*kiln-tmp*)
check "no temporary file left beside the output" test ! -e "${tmps[0]}"

# Reproducible: again, from a copy with other times under another umask,
# and with another thread count.
out2=$("$KILN" layer create "$tree" --output "$WORK/l2.tar.gz")
check_eq "same tree twice: same digest" "$digest" "${out2%% *}"
cp -a "$tree" "$WORK/copy"
find "$WORK/copy" -exec touch -h -d '2001-02-03 04:05:06' {} +
out3=$(cd "$WORK" && umask 077 && env -u SOURCE_DATE_EPOCH "$KILN" layer create "$WORK/copy" --output "$WORK/l3.tar.gz")
check_eq "a copy with other mtimes and umask: same digest" "$digest" "${out3%% *}"
out4=$("$KILN" layer create "$tree" --threads 1 --output "$WORK/l4.tar.gz")
check_eq "--threads 1: same digest" "$digest" "${out4%% *}"
out5=$("$KILN" layer create "$tree" --threads 2 --output "$WORK/l5.tar.gz")
check_eq "--threads 2: same digest" "$digest" "${out5%% *}"

# Round trip: extract equals the tree.
mkdir "$WORK/root"
x=$("$KILN" layer extract "$WORK/l1.tar.gz" "$WORK/root")
check_eq "extract prints the diff_id" "$diff_id" "$x"
check "extracted tree equals the input (diff -r)" diff -r --no-dereference "$tree" "$WORK/root"
check "modes survive" test -x "$WORK/root/bin/hi"
check_eq "symlink target survives" "../etc/motd" "$(readlink "$WORK/root/usr/motd-link")"
check "empty directory survives" test -d "$WORK/root/empty"
check_eq "hardlink survives as a hardlink" "$(stat -c %i "$WORK/root/etc/motd")" \
        "$(stat -c %i "$WORK/root/etc/motd-hardlink")"

# DIR:DEST and several trees in one layer.
out6=$("$KILN" layer create "$tree/etc:/opt/etc" "$tree/bin:srv/bin" --output "$WORK/l6.tar.gz")
check "two trees at destinations" test -n "$out6"
mkdir "$WORK/root6"
"$KILN" layer extract "$WORK/l6.tar.gz" "$WORK/root6" >/dev/null
check "tree 1 at /opt/etc" diff -r --no-dereference "$tree/etc" "$WORK/root6/opt/etc"
check "tree 2 at /srv/bin" diff -r --no-dereference "$tree/bin" "$WORK/root6/srv/bin"

# Other compressions.
outn=$("$KILN" layer create "$tree" --compression none --output "$WORK/l.tar")
check_eq "--compression none: digest == diff_id == sha256 of the tar" \
        "$(cut -d' ' -f1 <<<"$outn") $(cut -d' ' -f1 <<<"$outn")" \
        "$(cut -d' ' -f2 <<<"$outn") sha256:$(sha256sum "$WORK/l.tar" | cut -d' ' -f1)"
check_eq "uncompressed tar has the same diff_id as the gzip layer" "$diff_id" "$(cut -d' ' -f2 <<<"$outn")"
outz=$("$KILN" layer create "$tree" --compression zstd --output "$WORK/l.tar.zst")
check "zstd -t accepts the zstd layer" zstd -q -t "$WORK/l.tar.zst"
check_eq "zstd layer: same diff_id" "$diff_id" "$(cut -d' ' -f2 <<<"$outz")"
mkdir "$WORK/rootz"
"$KILN" layer extract "$WORK/l.tar.zst" "$WORK/rootz" >/dev/null
check "zstd round trip" diff -r --no-dereference "$tree" "$WORK/rootz"

# --json
j=$("$KILN" --json layer create "$tree" --output "$WORK/lj.tar.gz")
check_eq "--json create" "$digest $diff_id $size" \
        "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["digest"], d["diff_id"], d["size"])' "$j")"

# Limits.
mkdir "$WORK/rootlim"
check_fails "--max-entries is enforced" "entries|too many|limit" \
        "$KILN" layer extract --max-entries 3 "$WORK/l1.tar.gz" "$WORK/rootlim"
mkdir "$WORK/rootlim2"
check_fails "--max-bytes is enforced" "bytes|too large|limit" \
        "$KILN" layer extract --max-bytes 10k "$WORK/l1.tar.gz" "$WORK/rootlim2"

# Bad input: one line naming the problem.
check_fails "missing directory" "nonexistent" \
        "$KILN" layer create "$WORK/nonexistent" --output "$WORK/bad1.tar.gz"
check "no output for a missing directory" test ! -e "$WORK/bad1.tar.gz"
mkdir "$WORK/fifotree" && mkfifo "$WORK/fifotree/pipe"
check_fails "a fifo in the tree is refused" "pipe.*fifo|fifo.*pipe" \
        "$KILN" layer create "$WORK/fifotree" --output "$WORK/bad2.tar.gz"
bad2=("$WORK"/bad2*)
check "no output (nor temporary) for a refused tree" test ! -e "${bad2[0]}"
python3 - "$WORK/evil.tar.gz" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    data = b"pwned"
    ti = tarfile.TarInfo("../../../../tmp/kiln-layer-evil-escape"); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
PY
mkdir "$WORK/evilroot"
check_fails "a layer with ../ is refused" "\.\." \
        "$KILN" layer extract "$WORK/evil.tar.gz" "$WORK/evilroot"
check "nothing escaped" test ! -e /tmp/kiln-layer-evil-escape
check_fails "extract from a missing file" "nope\.tar\.gz" \
        "$KILN" layer extract "$WORK/nope.tar.gz" "$WORK/evilroot"
echo "not a tar at all, just text" >"$WORK/junk.tar"
mkdir "$WORK/junkroot"
check_fails "extract of a file that is not a tar" "junk\.tar" \
        "$KILN" layer extract "$WORK/junk.tar" "$WORK/junkroot"
"$KILN" layer create "$tree" >/dev/null 2>&1
check_eq "create without --output is a usage error" 2 $?
"$KILN" layer frobnicate >/dev/null 2>&1
check_eq "unknown subcommand is a usage error" 2 $?
"$KILN" layer create "$tree" --compression lz4 --output "$WORK/x" >/dev/null 2>&1
check_eq "unknown compression is a usage error" 2 $?
check "help" "$KILN" help layer

finish
