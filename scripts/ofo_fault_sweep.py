#!/usr/bin/env python3
"""Nested OFO under node failures and lost messages (Zhan et al. 2025, IV-F / Fig. 13 analogue).

Runs `voltarena baseline configs/ofo_rural2_faults.toml` (the 4-h dynamic rural2_96 case: droop,
centralized, nested) with k = 1..10 failed nodes (random draws of bus ids, several seeds; the
monitored bus 65 is never drawn) and with a share of lost transmissions (several seeds; each
message retransmitted up to twice after a timeout, the scenario default), and writes
results/ofo_rural2_faults/: faults.csv (every run), summary.csv (mean / min / max of AVV at bus 65
per case) and failed_nodes.svg, message_loss.svg. Standard library only.

    python3 scripts/ofo_fault_sweep.py [--voltarena target/release/voltarena] [--draws 3]
"""
import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys

CONTROLLERS = ["droop", "centralized", "nested"]
COLOURS = {"droop": "#cc6677", "centralized": "#117733", "nested": "#332288"}
BUS_IDS = [b for b in range(1, 96) if b != 65]  # non-slack buses of rural2_96, monitored bus excluded


def run(exe, sets):
    cmd = [exe, "baseline", "configs/ofo_rural2_faults.toml", "--json", "--out", "/tmp/voltarena-fault-sweep"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)["controllers"]


def svg_chart(path, title, xlabel, cases, rows):
    """Log-scale AVV against the case value: mean line, min-max band per controller."""
    w, h, ml, mr, mt, mb = 640, 380, 70, 130, 40, 50
    xs = sorted(cases)
    vals = [r["avv"] for r in rows if r["avv"] > 0]
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    fx = lambda x: ml + (w - ml - mr) * (xs.index(x) / max(1, len(xs) - 1))
    fy = lambda v: mt + (h - mt - mb) * (1 - (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for e in range(lo, hi + 1):
        y = fy(10 ** e)
        parts.append(f'<line x1="{ml}" x2="{w - mr}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/><text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
    for x in xs:
        parts.append(f'<text x="{fx(x):.1f}" y="{h - mb + 16}" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{(ml + w - mr) / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>')
    parts.append(f'<text x="16" y="{(mt + h - mb) / 2}" text-anchor="middle" transform="rotate(-90 16 {(mt + h - mb) / 2})">AVV at bus 65 (pu)</text>')
    for k, c in enumerate(CONTROLLERS):
        pts = []
        for x in xs:
            v = [r["avv"] for r in rows if r["controller"] == c and r["case"] == x]
            pts.append((x, sum(v) / len(v), min(v), max(v)))
        band = [(fx(x), fy(mx)) for x, _, _, mx in pts] + [(fx(x), fy(mn)) for x, _, mn, _ in reversed(pts)]
        parts.append('<polygon points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in band) + f'" fill="{COLOURS[c]}" opacity="0.15"/>')
        parts.append('<polyline points="' + " ".join(f"{fx(x):.1f},{fy(m):.1f}" for x, m, _, _ in pts) + f'" fill="none" stroke="{COLOURS[c]}" stroke-width="2"/>')
        parts.append(f'<rect x="{w - mr + 12}" y="{mt + 20 * k}" width="14" height="4" fill="{COLOURS[c]}"/><text x="{w - mr + 32}" y="{mt + 20 * k + 6}">{c}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--voltarena", default="target/release/voltarena")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--out", default="results/ofo_rural2_faults")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for k in range(1, 11):
        for d in range(a.draws):
            buses = sorted(random.Random(1000 * k + d).sample(BUS_IDS, k))
            res = run(a.voltarena, [f"scenario.failed_buses={buses}"])
            for c in CONTROLLERS:
                rows.append({"study": "failed_nodes", "case": k, "draw": d, "detail": " ".join(map(str, buses)), "controller": c, "avv": res[c]["avv"], "loss_kwh": res[c]["loss_kwh"], "q_kvarh": res[c]["q_kvarh"]})
            print(f"{k} failed {buses}: " + ", ".join(f"{c} {res[c]['avv']:.2e}" for c in CONTROLLERS), flush=True)
    for p in [0.0, 0.05, 0.1, 0.2, 0.3]:
        for d in range(a.draws):
            res = run(a.voltarena, [f"scenario.drop_prob={p}", f"scenario.seed={d}"])
            for c in CONTROLLERS:
                rows.append({"study": "message_loss", "case": p, "draw": d, "detail": f"seed {d}", "controller": c, "avv": res[c]["avv"], "loss_kwh": res[c]["loss_kwh"], "q_kvarh": res[c]["q_kvarh"]})
            print(f"{p} lost, seed {d}: " + ", ".join(f"{c} {res[c]['avv']:.2e}" for c in CONTROLLERS), flush=True)
    with open(os.path.join(a.out, "faults.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    with open(os.path.join(a.out, "summary.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["study", "case", "controller", "avv_mean", "avv_min", "avv_max", "loss_kwh_mean"])
        for study in ["failed_nodes", "message_loss"]:
            for case in sorted({r["case"] for r in rows if r["study"] == study}):
                for c in CONTROLLERS:
                    sel = [r for r in rows if r["study"] == study and r["case"] == case and r["controller"] == c]
                    v = [r["avv"] for r in sel]
                    wr.writerow([study, case, c, f"{sum(v) / len(v):.4e}", f"{min(v):.4e}", f"{max(v):.4e}", f"{sum(r['loss_kwh'] for r in sel) / len(sel):.2f}"])
    svg_chart(os.path.join(a.out, "failed_nodes.svg"), f"AVV vs failed nodes (rural2_96, 4 h, {a.draws} random draws each)", "failed nodes", {r["case"] for r in rows if r["study"] == "failed_nodes"}, [dict(r, case=r["case"]) for r in rows if r["study"] == "failed_nodes"])
    svg_chart(os.path.join(a.out, "message_loss.svg"), f"AVV vs lost transmissions (2 retries, {a.draws} seeds)", "share of transmissions lost", {r["case"] for r in rows if r["study"] == "message_loss"}, [r for r in rows if r["study"] == "message_loss"])
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
