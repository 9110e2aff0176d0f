#!/usr/bin/env bash
# The test suite: lint, then pytest (tiny random models, the real all-MiniLM-L6-v2, short data slices).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check jaxst tests benchmarks
.venv/bin/ruff format --check jaxst tests benchmarks
.venv/bin/python -m pytest -q "$@"
