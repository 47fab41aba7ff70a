#!/usr/bin/env bash
# README command 2: installs what is missing, builds, runs every test.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install_deps.sh"
"$ROOT/scripts/build.sh"
cd "$BUILD"
ctest --output-on-failure -j "${PS_TEST_JOBS:-2}" --timeout 600 "$@"
