#!/usr/bin/env bash
# Creates .venv and installs jaxst with its test extra at the exact versions of requirements-test.lock
# (refreshed by scripts/lock.sh; pyproject.toml keeps the ranges a library user installs from).
# torch==2.13.0 goes first, so that pip takes the CPU wheel instead of resolving a plain `torch`
# requirement to a CUDA build of several GB; the lock pins that same CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q pip==26.3
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -r requirements-test.lock
.venv/bin/python -m pip install -q --no-deps -e .
