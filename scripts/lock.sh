#!/usr/bin/env bash
# Refreshes requirements-test.lock, the exact versions scripts/setup.sh installs, from pyproject.toml's
# ranges (jaxst's dependencies and its test extra) with pip-tools' pip-compile. Extra arguments go to
# pip-compile, e.g. `bash scripts/lock.sh --upgrade` or `--upgrade-package transformers`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q pip-tools==7.6.2
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/venv/bin/pip-compile" --quiet --extra test \
    --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
    --constraint scripts/torch-cpu.txt --output-file requirements-test.lock "$@" pyproject.toml
