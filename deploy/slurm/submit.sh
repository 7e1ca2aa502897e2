#!/usr/bin/env bash
# Submit a sharded colplaid build to Slurm: one training job, an array of CP_SHARDS shard
# builds that starts when training succeeded (--dependency=afterok), and, with CP_MERGE=1,
# a merge job that starts when every array task succeeded.
#   deploy/slurm/submit.sh SETTINGS.env     (see colplaid-slurm.env.example)
# Prints the three job ids (train, array, merge) on one line; follow them with squeue/sacct.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# != 1)); then
    echo "usage: $0 SETTINGS.env" >&2
    exit 2
fi
set -a
# shellcheck disable=SC1090
. "$1"
set +a
: "${COLPLAID:?set COLPLAID in $1}" "${CP_OUT:?set CP_OUT in $1}" "${CP_INPUT:?set CP_INPUT in $1}"
: "${CP_SHARDS:?set CP_SHARDS in $1}"
if ! [[ $CP_SHARDS =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: CP_SHARDS must be a positive number, not '$CP_SHARDS'" >&2
    exit 2
fi
mkdir -p "$CP_OUT/logs"
read -r -a site_args <<<"${CP_SBATCH_ARGS:-}"
common=(--parsable --export=ALL --chdir="$CP_OUT" "${site_args[@]}")
train=$(sbatch "${common[@]}" --output="$CP_OUT/logs/train-%j.out" "$here/train.sbatch")
train=${train%%;*}
array=$(sbatch "${common[@]}" --dependency="afterok:$train" --array="0-$((CP_SHARDS - 1))" \
    --output="$CP_OUT/logs/shard-%a-%A.out" "$here/build-shard.sbatch")
array=${array%%;*}
merge=-
if [[ ${CP_MERGE:-1} == 1 ]]; then
    merge=$(sbatch "${common[@]}" --dependency="afterok:$array" \
        --output="$CP_OUT/logs/merge-%j.out" "$here/merge.sbatch")
    merge=${merge%%;*}
fi
echo "$train $array $merge"
