#!/usr/bin/env python3
"""What a training run did to the grid, from its metrics.csv: per run, the training episodes that
ended early (the environment ends an episode when the power flow fails, so these are the
divergences), the worst training episode by voltage violation (its avv_max, pu, and CR), and the
same for the warm-up episodes (before the first update) and the learning episodes separately.

    python3 scripts/train_safety.py RUN_DIR [RUN_DIR ...]      # prints one Markdown table row per run

A run directory is any folder holding a metrics.csv written by `voltarena train`.
"""
import csv
import sys
import tomllib
from pathlib import Path


def summarise(run: Path):
    path = run / "metrics.csv"
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "train"]
    except (OSError, KeyError) as e:
        sys.exit(f"{path}: not a voltarena metrics.csv ({e})")
    if not rows:
        sys.exit(f"{path}: no training episodes")
    lengths, prev = [], 0
    for r in rows:
        step = int(r["step"])
        lengths.append(step - prev)
        prev = step
    full = max(lengths[:-1] or lengths)  # the last row may be an episode cut by total_steps
    ended_early = sum(1 for n in lengths[:-1] if n < full)
    try:
        with open(run / "config.toml", "rb") as f:
            starts = int(tomllib.load(f).get("learning_starts", 2000))  # TrainConfig's default
    except (OSError, tomllib.TOMLDecodeError, ValueError) as e:
        sys.exit(f"{run / 'config.toml'}: not a resolved training config ({e})")
    worst = lambda rs: max(rs, key=lambda r: float(r["avv_max"])) if rs else None
    warm = worst([r for r in rows if int(r["step"]) <= starts])
    learn = worst([r for r in rows if int(r["step"]) > starts])
    fmt = lambda r: "—" if r is None else f"{float(r['avv_max']):.4f} / {float(r['cr']):.3f} (episode {r['episode']})"
    return f"| {run} | {len(rows)} | {ended_early} | {fmt(warm)} | {fmt(learn)} |"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("| run | training episodes | ended early (divergences) | worst warm-up episode: avv_max (pu) / CR | worst learning episode: avv_max (pu) / CR |")
    print("|---|---|---|---|---|")
    for d in sys.argv[1:]:
        print(summarise(Path(d)))
