#!/usr/bin/env bash
# Creates .venv and installs jaxst with its test extra. torch==2.13.0 goes first, so that pip takes the
# CPU wheel instead of resolving a plain `torch` requirement to a CUDA build of several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
