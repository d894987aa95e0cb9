#!/usr/bin/env bash
# Copies a finished training run directory into DEST with only what re-checking it needs: the
# resolved config.toml, run.json (provenance), metrics.csv, curve.svg, best.json and best/ — the best
# validation policy (actor, normaliser, progress, manifest with SHA-256), a few tens of kB. Left out:
# checkpoint/ and replay/ (resuming; megabytes) and tb/ (TensorBoard events).
#   bash scripts/publish_run.sh RUN_DIR DEST
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 RUN_DIR DEST" >&2; exit 2; }
src=$1; dest=$2
[ -f "$src/config.toml" ] || { echo "$src: not a run directory (no config.toml)" >&2; exit 2; }
[ -f "$src/best/manifest.json" ] || { echo "$src: no best/ policy with a manifest (train with eval_every > 0)" >&2; exit 2; }
mkdir -p "$dest/best"
for f in config.toml run.json metrics.csv curve.svg best.json; do
    [ -f "$src/$f" ] && cp "$src/$f" "$dest/$f"
done
cp "$src"/best/* "$dest/best/"
echo "$dest"
