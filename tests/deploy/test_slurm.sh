#!/usr/bin/env bash
# deploy/slurm on a real Slurm (issue 15 §2): starts munged, slurmctld and slurmd from
# Debian's packages on 127.0.0.1 in a temporary directory (own slurm.conf, spool and state
# directories, munge key and socket, ports away from the defaults), submits
# deploy/slurm/submit.sh for 4 shards of a small synthetic corpus (train, then the array with
# --dependency=afterok, then the merge), waits, and checks that every job completed and that
# exhaustive search over the merged index gives the ids and scores (within 1e-5) of a single
# build with the same codec. Every daemon it started is stopped on exit, failure included.
# Needs root (slurmd runs jobs as their submitting user; the daemons run as root here).
set -u
: "${COLPLAID:?COLPLAID must point at the colplaid binary}"
: "${CP_SOURCE_DIR:?}"
PY=/usr/bin/python3
for tool in munged slurmctld slurmd sbatch squeue sacct scontrol; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (scripts/setup-deps.sh installs munge and slurm-wlm)"
        exit 77
    fi
done
if [[ $(id -u) != 0 ]]; then
    echo "SKIP: a private Slurm needs root here (slurmd starts jobs as their user)"
    exit 77
fi
if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "SKIP: $PY with numpy is needed to write test .npy files"
    exit 77
fi

work=$(mktemp -d /tmp/cp_test_slurm.XXXXXX)
chmod 755 "$work"
pids=()
# slurmstepd processes (one per running job step, detached from slurmd) of this test's
# Slurm: those with a file or working directory in $work.
our_stepds() {
    local d f
    for d in /proc/[0-9]*; do
        [[ $(cat "$d/comm" 2>/dev/null) == slurmstepd ]] || continue
        for f in "$d/cwd" "$d"/fd/*; do
            if [[ $(readlink "$f" 2>/dev/null) == "$work"/* ]]; then
                echo "${d#/proc/}"
                break
            fi
        done
    done
}
cleanup() {
    local p i
    if [[ -n ${SLURM_CONF:-} ]]; then
        scancel --full --quiet --user=root 2>/dev/null
    fi
    for _ in $(seq 50); do [[ -z $(our_stepds) ]] && break; sleep 0.2; done
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for p in $(our_stepds); do kill -9 "$p" 2>/dev/null; done
    if [[ ${CP_TEST_KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
dump_logs() {
    local f
    for f in "$work"/log/* "$work"/out/logs/*; do
        [[ -f $f ]] || continue
        echo "---- $f" >&2
        tail -n 30 "$f" >&2
    done
}

# Free loopback ports for slurmctld and slurmd (not 6817/6818, so a real Slurm on this host
# is not disturbed).
read -r ctld_port slurmd_port < <($PY - <<'EOF2'
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
EOF2
)
mkdir -p "$work"/{munge,log,state,spool/cpnode,out,run}
chmod 711 "$work/munge"

# ---- munge: its own key and socket ----
$PY -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(1024))' "$work/munge/munge.key"
chmod 400 "$work/munge/munge.key"
munge_socket=$work/munge/munge.socket
munged --foreground --force --socket="$munge_socket" --key-file="$work/munge/munge.key" \
    --pid-file="$work/munge/munged.pid" --seed-file="$work/munge/munged.seed" \
    --log-file="$work/log/munged.log" >"$work/log/munged.out" 2>&1 &
pids+=($!)

# ---- slurm.conf: one node, no cgroups, no accounting database ----
cpus=$(nproc)
cat >"$work/slurm.conf" <<EOF2
ClusterName=cptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool/%n
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd-%n.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$work/log/jobcomp.txt
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=300
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=cpnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=cptest Nodes=cpnode Default=YES MaxTime=INFINITE State=UP
EOF2
export SLURM_CONF=$work/slurm.conf

# wait for munged
for _ in $(seq 50); do [[ -S $munge_socket ]] && break; sleep 0.1; done
[[ -S $munge_socket ]] || { fail "munged did not start"; dump_logs; exit 1; }

slurmctld -D -c -f "$SLURM_CONF" >"$work/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N cpnode -f "$SLURM_CONF" >"$work/log/slurmd.out" 2>&1 &
pids+=($!)

# wait for the node to be idle
up=0
for _ in $(seq 150); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1)
    if [[ $state == idle ]]; then up=1; break; fi
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
    sleep 0.2
done
if ((up == 0)); then
    fail "the Slurm node did not become idle (state '${state:-}')"
    dump_logs
    exit 1
fi
echo "ok  munged, slurmctld (port $ctld_port) and slurmd (port $slurmd_port) up, node idle"

# ---- data: 600 documents, dim 32, clustered ----
$PY - "$work" <<'EOF2'
import sys, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(15)
n, dim = 600, 32
lens = rng.integers(3, 15, size=n).astype(np.int64)
centres = rng.normal(size=(40, dim))
tot = int(lens.sum())
emb = centres[rng.integers(0, 40, size=tot)] + 0.35 * rng.normal(size=(tot, dim))
np.save(w + "/emb.npy", emb.astype(np.float32))
np.save(w + "/lens.npy", lens)
open(w + "/ids.txt", "w").write("".join("doc-%d\n" % i for i in range(n)))
q = centres[rng.integers(0, 40, size=(10, 8))] + 0.35 * rng.normal(size=(10, 8, dim))
np.save(w + "/q.npy", q.astype(np.float32))
EOF2

cat >"$work/settings.env" <<EOF2
COLPLAID=$COLPLAID
CP_OUT=$work/out
CP_SHARDS=4
CP_INPUT="--embeddings $work/emb.npy --doclens $work/lens.npy --ids $work/ids.txt"
CP_TRAIN_ARGS="--kmeans-iters 2"
CP_BUILD_ARGS="--segment-docs 64 --no-calibrate --threads 1"
CP_MERGE=1
CP_SBATCH_ARGS="--time=10"
EOF2
jobs_line=$(bash "$CP_SOURCE_DIR/deploy/slurm/submit.sh" "$work/settings.env" 2>"$work/err") ||
    { fail "submit.sh: $(cat "$work/err")"; dump_logs; exit 1; }
read -r train_job array_job merge_job <<<"$jobs_line"
[[ $train_job =~ ^[0-9]+$ && $array_job =~ ^[0-9]+$ && $merge_job =~ ^[0-9]+$ ]] ||
    { fail "submit.sh printed '$jobs_line'"; exit 1; }
echo "ok  submitted: train $train_job, array $array_job (4 tasks), merge $merge_job"

# Wait for the queue to drain (the merge job is last).
done_=0
for _ in $(seq 450); do
    queue=$(squeue -h -o '%i %T %r' 2>/dev/null)
    if [[ -z $queue ]]; then done_=1; break; fi
    # a failed job leaves its dependents pending for ever: stop waiting, the checks below fail
    if grep -q DependencyNeverSatisfied <<<"$queue"; then
        fail "a job failed, its dependents will never run: $queue"
        done_=1
        break
    fi
    sleep 0.2
done
((done_)) || { fail "jobs still queued after 90 s: $(squeue 2>&1)"; dump_logs; exit 1; }

# Every job, the 4 array tasks included, completed with exit 0 (the jobcomp log records each).
$PY - "$work/log/jobcomp.txt" "$train_job" "$array_job" "$merge_job" <<'EOF2' || { fail "job states"; dump_logs; }
import sys, re
path, train, array, merge = sys.argv[1:]
recs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(path)]
by = {}
for r in recs:
    by[r["JobId"]] = r
names = {r["JobId"]: r.get("Name") for r in recs}
comp = [r for r in recs if r.get("JobState") == "COMPLETED" and r.get("ExitCode") == "0:0"]
assert len(recs) == 6, ("want 6 job records (train, 4 shards, merge)", recs)
assert len(comp) == 6, ("not all COMPLETED with exit 0", [(r["JobId"], r.get("Name"), r.get("JobState"), r.get("ExitCode")) for r in recs])
assert by[train]["Name"] == "colplaid-train" and by[merge]["Name"] == "colplaid-merge", names
assert sum(1 for r in recs if r.get("Name") == "colplaid-shard") == 4, names
# the dependencies held: the array started after training ended, the merge after the array
def t(r, k): return r[k]
shards = [r for r in recs if r.get("Name") == "colplaid-shard"]
assert all(s["StartTime"] >= by[train]["EndTime"] for s in shards), "a shard started before training ended"
assert all(by[merge]["StartTime"] >= s["EndTime"] for s in shards), "the merge started before a shard ended"
print("ok  6 jobs COMPLETED with exit 0, in dependency order")
EOF2

for i in 0 1 2 3; do
    [[ -f $work/out/shard-$i.db ]] || fail "no shard-$i.db"
done
[[ -f $work/out/all.db ]] || { fail "no merged all.db"; dump_logs; exit 1; }

# ---- the merged index equals a single build with the same codec ----
"$COLPLAID" index build --embeddings "$work/emb.npy" --doclens "$work/lens.npy" \
    --ids "$work/ids.txt" --codec-from "$work/out/codec.db" --index "$work/single.db" \
    --no-calibrate --quiet 2>"$work/err" || fail "single build: $(cat "$work/err")"
for f in single out/all; do
    "$COLPLAID" search --index "$work/$f.db" --query-embeddings "$work/q.npy" --exact --k 20 \
        >"$work/${f//\//_}.tsv" 2>"$work/err" || fail "search $f: $(cat "$work/err")"
done
$PY - "$work/single.tsv" "$work/out_all.tsv" <<'EOF2' || fail "the merged index differs from the single build"
import sys
def hits(p):
    out = {}
    for line in open(p, encoding="utf-8"):
        q, d, r, s = line.rstrip("\n").split("\t")
        out.setdefault(q, []).append((d, float(s)))
    return out
a, b = hits(sys.argv[1]), hits(sys.argv[2])
assert sorted(a) == sorted(b) and len(a) == 10, (sorted(a), sorted(b))
worst = 0.0
for q in a:
    assert len(a[q]) == 20, (q, len(a[q]))
    assert [d for d, _ in a[q]] == [d for d, _ in b[q]], (q, a[q], b[q])
    worst = max(worst, max(abs(x - y) for (_, x), (_, y) in zip(a[q], b[q])))
assert worst <= 1e-5, worst
print("ok  merged (Slurm) == single build: 10 exact searches, k 20, max score diff %.1e" % worst)
EOF2

if ((failures)); then
    dump_logs
    echo "$failures failure(s)"
    exit 1
fi
echo "ok  test_slurm"
