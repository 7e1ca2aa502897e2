#!/usr/bin/env bash
# The whole test suite (README command 2): install dependencies, build with warnings as
# errors, run every test with ctest; then the same suite built with ASan/UBSan.
#   scripts/test.sh            both builds
#   CP_TEST_SANITIZE=0 ...     skip the sanitizer build (quicker local runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

bash scripts/setup-deps.sh

build_and_test() {
    local dir=$1; shift
    cmake -S "$root" -B "$dir" -DCP_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure -j "$jobs" ${CP_CTEST_ARGS:-})
}

if [[ ${CP_TEST_SANITIZE:-1} != 0 ]]; then
    echo "== sanitizer build (ASan + UBSan, clang)"
    CC=clang CXX=clang++ ASAN_OPTIONS=detect_leaks=1 \
        build_and_test build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCP_SANITIZE=address,undefined -DCP_FUZZ=ON
fi
echo "== release build (gcc, -Werror)"
build_and_test build-release -DCMAKE_BUILD_TYPE=RelWithDebInfo
