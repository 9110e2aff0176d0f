#!/usr/bin/env bash
# The test suite: lint, then pytest (tiny random models, the real all-MiniLM-L6-v2, short data slices) in
# two runs: the tests not marked multi_device on one CPU device, then the marked ones on 8 fake devices
# (tests/conftest.py says why), then the 15 slowest tests of both. Each run spreads its test files over
# JAXST_TEST_WORKERS pytest-xdist processes (default 2: one process keeps about 1.3 of a 2-core
# machine's cores busy, two keep both; each file stays in one process, so its shared models and compiled
# programs are made once). Arguments go to both pytest runs (e.g. a test path).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check jaxst tests benchmarks scripts
.venv/bin/ruff format --check jaxst tests benchmarks scripts
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
run_pytest() {  # devices, marker expression, pytest arguments; "no tests selected" (status 5) passes
    local status=0
    JAXST_TEST_DEVICES=$1 .venv/bin/python -m pytest -q -n "${JAXST_TEST_WORKERS:-2}" --dist loadfile -m "$2" \
        --junitxml="$results/$1.xml" "${@:3}" || status=$?
    [[ $status -eq 0 || $status -eq 5 ]] || exit "$status"
}
run_pytest 1 "not multi_device" "$@"
run_pytest 8 "multi_device" "$@"
.venv/bin/python scripts/slowest_tests.py "$results"/*.xml
