#!/bin/sh
# Runs one test: tests/skip_guard.sh COMMAND [ARGS...]; its exit status is the command's.
# A test that cannot run here prints "SKIP: reason" and exits 77, which ctest counts as
# skipped. With CP_REQUIRE_ALL=1 (CI) a skip is a failure: the run must have checked
# everything, and a skipped test checked nothing.
"$@"
status=$?
if [ "$status" = 77 ] && [ "${CP_REQUIRE_ALL:-0}" = 1 ]; then
    echo "FAIL: the test skipped itself (SKIP: line above) and CP_REQUIRE_ALL=1 requires every test to run"
    exit 1
fi
exit "$status"
