#!/usr/bin/env bash
# Checks that the tree keeps its habits (part of scripts/test.sh, so CI runs
# it):
#  1. every C++ and CUDA file is formatted with .clang-format (Google style);
#  2. a Clang build of every non-CUDA target (libraries, binaries, tests)
#     with -Wthread-safety -Werror=thread-safety: the ABSL_GUARDED_BY and
#     ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations are checked, which GCC
#     ignores. It builds into build-clang/ (or $PS_CLANG_BUILD_DIR).
# PS_LINT=format or PS_LINT=clang runs one part only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_CLANG_BUILD_DIR:-$ROOT/build-clang}"
PART="${PS_LINT:-all}"
cd "$ROOT"

if [ "$PART" = all ] || [ "$PART" = format ]; then
  bad=()
  while IFS= read -r f; do
    clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done < <(git ls-files -co --exclude-standard '*.cc' '*.h' '*.cu' '*.cuh')
  if [ ${#bad[@]} -gt 0 ]; then
    echo "lint: ${#bad[@]} file(s) not formatted (run: clang-format -i FILE):"
    printf '  %s\n' "${bad[@]}"
    exit 1
  fi
  echo "lint: format ok"
fi

if [ "$PART" = all ] || [ "$PART" = clang ]; then
  echo "lint: clang -Wthread-safety build in $BUILD"
  CC=clang CXX=clang++ PS_BUILD_DIR="$BUILD" "$ROOT/scripts/build.sh" \
    -DPS_ENABLE_CUDA=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ ||
    { echo "lint: clang build FAILED"; exit 1; }
  echo "lint: clang thread-safety build ok"
fi
