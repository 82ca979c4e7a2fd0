#!/usr/bin/env python3
"""Summarises a bench/run: prints the markdown tables and writes the JSON.

Inputs (written by bench/run):
  samples.tsv  id, tool, run, t0, t1, peak_rss_kb      (one timed run a line)
  rows.tsv     id, group, size, kiln_tool, peer_tool, target_ratio,
               target_text, status, check_status, note (one comparison a line)

A row passes when the ratio peer/kiln (of the medians) is at least
target_ratio and its extra check (check_status) did not fail.  In smoke mode
the verdict is shown but marked as not enforced.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def read_tsv(path, n):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= n:
            out.append(f)
    return out


def fmt_s(x):
    if x is None:
        return "–"
    if x < 0.1:
        return "%.1f ms" % (x * 1000)
    if x < 10:
        return "%.3f s" % x
    return "%.1f s" % x


def fmt_mb(kb):
    return "%.0f MB" % (kb / 1024.0) if kb >= 10240 else "%.1f MB" % (kb / 1024.0)


def stats(samples):
    if not samples:
        return None
    t = [s[0] for s in samples]
    r = [s[1] for s in samples]
    return {"runs": len(t), "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
            "samples_s": t, "peak_rss_kb": max(r), "rss_kb_samples": r}


def cell(st):
    if st is None:
        return "–"
    return "%s (%s–%s), %s" % (fmt_s(st["median_s"]), fmt_s(st["min_s"]), fmt_s(st["max_s"]),
                                fmt_mb(st["peak_rss_kb"]))


def size_bytes(label):
    mult = {"KB": 1e3, "MB": 1e6, "GB": 1e9}
    for k, v in mult.items():
        if label.endswith(k):
            try:
                return float(label[:-len(k)]) * v
            except ValueError:
                return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    enforced = a.mode == "full"

    samples = {}
    for f in read_tsv(a.samples, 6):
        sid, tool, _run, t0, t1, rss = f[:6]
        try:
            rss_kb = int(rss)
        except ValueError:
            rss_kb = 0
        samples.setdefault((sid, tool), []).append((float(t1) - float(t0), rss_kb))

    rows = []
    for f in read_tsv(a.rows, 10):
        sid, group, size, ktool, ptool, tratio, ttext, status, check, note = f[:10]
        k = stats(samples.get((sid, "kiln")))
        p = stats(samples.get((sid, ptool)))
        ratio = (p["median_s"] / k["median_s"]) if (k and p and k["median_s"] > 0) else None
        verdict = status
        if status == "ok":
            ok = True
            if tratio and ratio is not None:
                ok = ratio >= float(tratio)
            elif tratio:
                ok = False
            if check == "fail":
                ok = False
            verdict = "pass" if ok else "fail"
            if not tratio and not check:
                verdict = "info"
        rows.append({"id": sid, "case": group, "size": size, "kiln_tool": ktool, "peer": ptool,
                     "kiln": k, "peer_stats": p, "ratio": ratio,
                     "target_ratio": float(tratio) if tratio else None, "target": ttext,
                     "status": status, "check": check or None, "verdict": verdict, "note": note})

    print()
    print("## kiln benchmarks (%s, %d runs each, warm page cache)" % (a.mode, a.runs))
    print()
    print("| case | kiln median (min–max), peak RSS | peer | peer median (min–max), peak RSS "
          "| ratio (peer/kiln) | target | result | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = r["case"] + (" " + r["size"] if r["size"] not in ("-", "") else "")
        verdict = r["verdict"]
        if verdict in ("pass", "fail") and not enforced:
            verdict += " (not enforced)"
        if r["status"] == "skipped":
            verdict = "skipped"
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, cell(r["kiln"]) if r["kiln_tool"] != "-" else "–", r["peer"], cell(r["peer_stats"]),
            "%.2f×" % r["ratio"] if r["ratio"] is not None else "–", r["target"] or "", verdict,
            r["note"]))

    # Scaling: kiln's time per MB and peak RSS across the sizes of a case.
    scaling = {}
    for r in rows:
        if r["kiln"] and size_bytes(r["size"]) and r["case"] in ("layer-write", "push"):
            scaling.setdefault(r["case"], {})[r["size"]] = r["kiln"]
    scaling_out = {}
    if any(len(v) >= 2 for v in scaling.values()):
        print()
        print("### Scaling (kiln)")
        print()
        print("| case | size | median | MB/s | peak RSS |")
        print("|---|---|---|---|---|")
    for case, by_size in scaling.items():
        if len(by_size) < 2:
            continue
        pts = sorted(by_size.items(), key=lambda kv: size_bytes(kv[0]))
        out = []
        for label, st in pts:
            mbps = size_bytes(label) / 1e6 / st["median_s"]
            out.append({"size": label, "bytes": size_bytes(label), "median_s": st["median_s"],
                        "mb_per_s": mbps, "peak_rss_kb": st["peak_rss_kb"]})
            print("| %s | %s | %s | %.1f | %s |" % (case, label, fmt_s(st["median_s"]), mbps,
                                                   fmt_mb(st["peak_rss_kb"])))
        # Linear: the largest size runs at >= 75 % of the middle size's
        # throughput.  Flat: its peak RSS is within 1.5x (+16 MB) of the smallest.
        linear = out[-1]["mb_per_s"] >= 0.75 * out[-2]["mb_per_s"]
        flat = out[-1]["peak_rss_kb"] <= 1.5 * out[0]["peak_rss_kb"] + 16384
        scaling_out[case] = {"points": out, "time_linear": linear, "rss_flat": flat}
        print("| %s | | time ~linear: %s | | RSS flat: %s |" % (
            case, "yes" if linear else "no", "yes" if flat else "no"))

    errors = [r for r in rows if r["status"] == "error"]
    try:
        version = subprocess.run([a.kiln, "version", "--json"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        version = json.loads(version) if version else None
    except Exception:
        version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except Exception:
        commit = None
    doc = {
        "mode": a.mode,
        "runs": a.runs,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "machine": platform.machine()},
        "git_commit": commit,
        "kiln_version": version,
        "targets_enforced": enforced,
        "rows": rows,
        "scaling": scaling_out,
        "errors": len(errors),
    }
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    n_pass = sum(1 for r in rows if r["verdict"] == "pass")
    n_fail = sum(1 for r in rows if r["verdict"] == "fail")
    n_skip = sum(1 for r in rows if r["status"] == "skipped")
    print("%d pass, %d fail%s, %d skipped, %d errors" % (
        n_pass, n_fail, "" if enforced else " (not enforced in smoke)", n_skip, len(errors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
