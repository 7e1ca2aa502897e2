#!/usr/bin/env bash
# The whole test suite (README command 2): install dependencies, build with warnings as
# errors, run every test with ctest; then the same suite built with ASan/UBSan.
#   scripts/test.sh            both builds
#   CP_TEST_SANITIZE=0 ...     skip the sanitizer build (quicker local runs)
#   CP_REQUIRE_ALL=1 ...       a test that skips itself fails instead (CI sets it)
#   CP_SHARED_DATA=DIR ...     optional data that cannot be redistributed (SciFact, BEIR
#                              layout, in DIR/scifact; default ../shared/data beside the clone)
# Every pass ends with ctest's own summary; then one line per pass names every skipped test
# and why (and the tests a pass does not register). The exit status is non-zero if a build
# or any test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

bash scripts/setup-deps.sh

cmake_args=(-DCP_WERROR=ON)
if [[ -n ${CP_SHARED_DATA:-} ]]; then
    cmake_args+=(-DCP_SHARED_DATA="$CP_SHARED_DATA")
fi

# skip_summary PASS DIR: one line naming the tests of the last ctest run in DIR that skipped
# themselves, each with the reason it printed ("SKIP: reason"), and those not registered in
# this pass. Under CP_REQUIRE_ALL=1 such tests failed (tests/skip_guard.sh) and are named too.
skip_summary() {
    local pass=$1 dir=$2 log=$2/Testing/Temporary/LastTest.log
    # name<TAB>reason for every test that printed "SKIP: reason", and name<TAB>!guard for
    # those skip_guard.sh failed under CP_REQUIRE_ALL=1.
    local reasons
    reasons=$(awk '
        /^[0-9]+\/[0-9]+ Testing: / { name = $3; next }
        /^SKIP: / && name != "" && !(name in seen) { seen[name] = 1; print name "\t" substr($0, 7) }
        /^FAIL: the test skipped itself/ && name != "" { print name "\t!guard" }
    ' "$log" 2>/dev/null || true)
    local names=() name
    while read -r name; do names+=("$name"); done < <(
        { sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$dir/ctest-output.txt" 2>/dev/null
          awk -F '\t' '$2 == "!guard" { print $1 }' <<<"$reasons"; } | sort -u)
    local list="" why
    for name in "${names[@]}"; do
        why=$(awk -F '\t' -v n="$name" '$1 == n && $2 != "!guard" { print $2; exit }' <<<"$reasons")
        list+="${list:+; }$name (${why:-no reason printed})"
    done
    local how="skipped"
    [[ ${CP_REQUIRE_ALL:-0} == 1 ]] && how="skipped, so failed under CP_REQUIRE_ALL=1"
    local line="== $pass pass: ${#names[@]} $how${list:+: $list}"
    if [[ $pass == sanitizer && -s $dir/release-only-tests.txt ]]; then
        line+="; not registered in this pass (release pass only): $(paste -sd, "$dir/release-only-tests.txt" | sed 's/,/, /g')"
    fi
    echo "$line"
}

summaries=()
build_and_test() {
    local pass=$1 dir=$2; shift 2
    cmake -S "$root" -B "$dir" "${cmake_args[@]}" "$@" >/dev/null || return 1
    cmake --build "$dir" -j "$jobs" || return 1
    rm -f "$dir/Testing/Temporary/LastTest.log" "$dir/ctest-output.txt"
    local status=0
    (cd "$dir" && ctest --output-on-failure -j "$jobs" ${CP_CTEST_ARGS:-}) 2>&1 |
        tee "$dir/ctest-output.txt" || status=1
    summaries+=("$(skip_summary "$pass" "$dir")")
    return $status
}

failed=()
if [[ ${CP_TEST_SANITIZE:-1} != 0 ]]; then
    echo "== sanitizer build (ASan + UBSan, clang)"
    CC=clang CXX=clang++ ASAN_OPTIONS=detect_leaks=1 \
        build_and_test sanitizer build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCP_SANITIZE=address,undefined -DCP_FUZZ=ON || failed+=(sanitizer)
fi
echo "== release build (gcc, -Werror)"
build_and_test release build-release -DCMAKE_BUILD_TYPE=RelWithDebInfo || failed+=(release)

for line in "${summaries[@]}"; do echo "$line"; done
if ((${#failed[@]})); then
    echo "== FAILED: the ${failed[*]} pass(es)" >&2
    exit 1
fi
