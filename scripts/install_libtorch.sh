#!/usr/bin/env bash
# Installs the CPU libtorch that tch 0.26 needs (PyTorch 2.13.0) into .libtorch/ (git-ignored),
# from PyPI wheels only; idempotent. Prints the LIBTORCH path on its last line.
#   bash scripts/install_libtorch.sh            # install if missing
# Users with a GPU: `pip install torch==2.13.0` (with its CUDA libraries, ~4.7 GB) and point
# LIBTORCH at site-packages/torch instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.libtorch"
if [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
    echo "$dest/torch"
    exit 0
fi
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dest" \
    torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
test -f "$dest/torch/lib/libtorch_cpu.so" || { echo "libtorch install failed: $dest/torch/lib/libtorch_cpu.so missing" >&2; exit 1; }
echo "$dest/torch"
