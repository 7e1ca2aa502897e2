#!/usr/bin/env bash
# CI step for docker/, the quick half: static checks of the files. The image itself is built
# with podman and run by build_and_run.sh (the docker_image test, release build only).
# Checked here:
#  1. every project script the Dockerfile runs or copies exists, and CI exercises it
#     (it is called by scripts/test.sh or by a registered test);
#  2. the compose file only uses the image the Dockerfile builds and colplaid subcommands
#     that exist;
#  3. dockerfilelint (npm, pinned in package.json) finds nothing.
set -euo pipefail
src=${CP_SOURCE_DIR:?}
bin=${COLPLAID:?}
dockerfile=$src/docker/Dockerfile
compose=$src/docker/compose.yaml
fail=0

mapfile -t scripts < <(grep -E '^(RUN|COPY)|^\s+&&' "$dockerfile" | grep -oE 'scripts/[A-Za-z0-9_./-]+\.(sh|awk)' | sort -u)
((${#scripts[@]} > 0)) || { echo "no scripts found in $dockerfile: the check is broken"; exit 1; }
for s in "${scripts[@]}"; do
    if [[ ! -f $src/$s ]]; then
        echo "Dockerfile uses $s, which does not exist"; fail=1; continue
    fi
    if ! grep -rqF "$(basename "$s")" "$src/scripts/test.sh" "$src/tests" --include='*.sh' \
            --include='*.py' --include='CMakeLists.txt' --include='test.sh' 2>/dev/null; then
        echo "Dockerfile uses $s, but no CI step or test runs it"; fail=1
    fi
done
echo "Dockerfile scripts checked: ${scripts[*]}"

grep -q '^  *image: colplaid:latest' "$compose" || { echo "compose.yaml: no colplaid:latest image"; fail=1; }
while read -r sub; do
    "$bin" "$sub" --help >/dev/null 2>&1 || { echo "compose.yaml runs 'colplaid $sub', which has no --help"; fail=1; }
done < <(grep -A1 -E '^\s+command: >' "$compose" | grep -oE '^\s+(index|serve|search)\b' | tr -d ' ' | sort -u)

lint_dir=$CP_BINARY_DIR/docker-lint
mkdir -p "$lint_dir"
cp "$src/tests/docker/package.json" "$src/tests/docker/package-lock.json" "$lint_dir/"
if [[ ! -x $lint_dir/node_modules/.bin/dockerfilelint ]]; then
    if ! (cd "$lint_dir" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1); then
        echo "SKIP: dockerfilelint could not be installed from the npm registry (offline?)"
        exit $((fail ? 1 : 77))
    fi
fi
"$lint_dir/node_modules/.bin/dockerfilelint" "$dockerfile" || fail=1
exit $fail
