#!/usr/bin/env python3
"""Writes a deterministic file tree for the benchmarks.

    gen_tree.py --seed S --files N --size BYTES [--layers K] OUT

The same arguments give the same bytes, names and modes on any machine
(Python >= 3.9).  File sizes are heavy-tailed (a few large files hold much
of the total, most files are small, as in a real image) and the content
is a mix of kinds so compression ratios look like an ordinary image:

  - 50 % of files: text (words drawn from a seeded vocabulary; gzip ~3x)
  - 30 %: random bytes (incompressible, like already-compressed assets)
  - 20 %: "binary" (random 4 KiB blocks repeated with small changes; ~2x)

Directories are 1 to 4 levels deep with about 25 entries each; 5 % of the
files are executable and 1 % are symlinks to other files.  With --layers K,
OUT gets K subdirectories layer0..layer{K-1}, each a tree of N/K files and
BYTES/K bytes (inputs for a K-layer image).

A stamp file OUT.gen-stamp (beside the tree, not in it) records the arguments; if it matches, nothing
is rewritten, so repeated benchmark runs reuse the tree.
"""
import argparse
import os
import random
import shutil
import sys

TEXT_POOL_SIZE = 2 << 20


def vocabulary(rng, n=5000):
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [12, 9, 8, 7.5, 7, 6.7, 6.3, 6, 5.9, 4.3, 4, 2.8, 2.7, 2.4, 2.2, 2, 2, 1.9, 1.5, 1,
               0.8, 0.8, 0.2, 0.15, 0.1, 0.07]
    words = set()
    while len(words) < n:
        k = max(1, int(rng.expovariate(1 / 5.5)))
        words.add("".join(rng.choices(letters, weights, k=k)))
    return sorted(words)


def text_pool(rng):
    words = vocabulary(rng)
    # Zipf-ish word frequencies, so common words repeat as in prose/code.
    cum = []
    acc = 0.0
    for i in range(len(words)):
        acc += 1.0 / (i + 1)
        cum.append(acc)
    drawn = rng.choices(words, cum_weights=cum, k=TEXT_POOL_SIZE // 5)
    lens = [rng.randint(3, 14) for _ in range(len(drawn) // 3)]
    out = []
    pos = 0
    for n in lens:
        if pos >= len(drawn):
            break
        out.append(" " * (4 * (n % 4)) + " ".join(drawn[pos:pos + n]) + "\n")
        pos += n
    return "".join(out).encode()[:TEXT_POOL_SIZE]


def sizes(rng, n, total):
    """n heavy-tailed sizes summing to exactly total."""
    if n == 0:
        return []
    w = [rng.lognormvariate(0, 1.6) for _ in range(n)]
    cap = max(total // 30, 1)
    s = sum(w)
    out = [min(int(x * total / s), cap) for x in w]
    short = total - sum(out)
    i = 0
    while short > 0:  # spread the remainder over the files below the cap
        j = i % n
        room = cap - out[j]
        if room > 0:
            add = min(room, short, max(1, total // n))
            out[j] += add
            short -= add
        i += 1
        if i > 100 * n:  # every file at the cap: let the last one grow
            out[-1] += short
            short = 0
    return out


def content(rng, kind, size, pool):
    if size == 0:
        return b""
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        parts = []
        left = size
        while left > 0:
            start = rng.randrange(0, len(pool) - 1)
            chunk = pool[start:start + min(left, 256 << 10)]
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)
    # binary: repeated 4 KiB blocks, each with a few random bytes changed
    blocks = [rng.randbytes(4096) for _ in range(8)]
    out = bytearray()
    while len(out) < size:
        b = bytearray(rng.choice(blocks))
        for _ in range(16):
            b[rng.randrange(4096)] = rng.randrange(256)
        out += b
    return bytes(out[:size])


def gen(out, seed, files, total):
    rng = random.Random(seed)
    pool = text_pool(rng)
    dirs = [""]
    paths = []
    for i in range(files):
        # a new directory every ~25 files, up to 4 levels deep
        if i % 25 == 0 and i > 0:
            parent = rng.choice(dirs)
            if parent.count("/") >= 3:
                parent = ""
            d = (parent + "/" if parent else "") + "d%03d" % len(dirs)
            dirs.append(d)
        d = dirs[-1] if rng.random() < 0.7 else rng.choice(dirs)
        paths.append((d + "/" if d else "") + "f%06d%s" % (i, rng.choice([".txt", ".bin", ".so", ".py", ""])))
    for d in dirs:
        os.makedirs(os.path.join(out, d), exist_ok=True)
    for i, (p, sz) in enumerate(zip(paths, sizes(rng, files, total))):
        full = os.path.join(out, p)
        r = rng.random()
        if r < 0.01 and i > 0:
            target = os.path.relpath(os.path.join(out, paths[rng.randrange(i)]), os.path.dirname(full))
            os.symlink(target, full)
            continue
        kind = "text" if r < 0.5 else ("random" if r < 0.8 else "binary")
        with open(full, "wb") as f:
            f.write(content(rng, kind, sz, pool))
        os.chmod(full, 0o755 if rng.random() < 0.05 else 0o644)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, required=True)
    ap.add_argument("--size", type=int, required=True, help="total bytes")
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("out")
    a = ap.parse_args()
    stamp = "seed=%d files=%d size=%d layers=%d v1\n" % (a.seed, a.files, a.size, a.layers)
    stamp_path = a.out.rstrip("/") + ".gen-stamp"
    try:
        if open(stamp_path).read() == stamp:
            return 0
    except OSError:
        pass
    if os.path.exists(stamp_path):
        os.unlink(stamp_path)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    if a.layers > 0:
        for k in range(a.layers):
            gen(os.path.join(a.out, "layer%d" % k), a.seed * 1000 + k, max(1, a.files // a.layers),
                a.size // a.layers)
    else:
        gen(a.out, a.seed, a.files, a.size)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
