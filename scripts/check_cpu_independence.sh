#!/usr/bin/env bash
# Trains the same tiny MADDPG run natively and under QEMU user-mode emulation with other CPU models
# (default: an AVX2-only AMD EPYC and an Intel Haswell) and checks that metrics.csv is identical —
# VoltArena's claim that training numbers do not depend on the x86-64 CPU (docs/BENCHMARKS.md).
# Needs qemu-user (Debian: apt-get install qemu-user) and a built CLI; ≈ 10–20 min per emulated CPU.
#   bash scripts/check_cpu_independence.sh [CPU_MODEL ...]     (models: qemu-x86_64 -cpu help)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/voltarena
[ -x "$bin" ] || cargo build --release -q -p voltarena-experiments
command -v qemu-x86_64 > /dev/null || { echo "qemu-x86_64 not found (apt-get install qemu-user)" >&2; exit 1; }
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(EPYC-Rome Haswell-v4)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
train() {  # train TAG [qemu-model]
    local pre=(); [ -n "${2:-}" ] && pre=(qemu-x86_64 -cpu "$2")
    (cd experiments && "${pre[@]}" "../$bin" train ../configs/maddpg_l1_mapdn33.toml --runs-dir "$work/$1" --seed 3 \
        --set total_steps=960 --set learning_starts=480 --set eval_every=480 --set eval_episodes=2 --set checkpoint_every=0) \
        2> "$work/$1.err" | tail -1
}
ref=$(train native)/metrics.csv
status=0
for m in "${models[@]}"; do
    run=$(train "$m" "$m")
    if cmp -s "$ref" "$run/metrics.csv"; then echo "$m: metrics.csv identical to this CPU's"; else echo "$m: metrics.csv DIFFERS"; diff "$ref" "$run/metrics.csv" || true; status=1; fi
done
exit $status
