#!/usr/bin/env bash
# Installs the Python package (python/, built by maturin from PyPI) into a venv, .venv-python/, and
# runs its tests with pytest. The tests compare `voltarena.evaluate` with the CLI's `rollout`, so
# the CLI is built first (a no-op after `cargo test --workspace --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p voltarena-experiments
VENV=.venv-python
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check ./python pytest
"$VENV/bin/python" -m pytest -q -p no:cacheprovider python/tests
