#!/usr/bin/env bash
# scripts/stress.sh - reliability stress for leasepool: runs the scenarios of
# tests/_stress.py for many rounds, repeated, each repeat in a process of its own
# with a hard deadline. Tests the installed package (public API only).
#
# Usage:
#   scripts/stress.sh [-n ROUNDS] [-r REPEATS] [-d SECONDS] [-c SECONDS] [-m HANGS]
#                     [-l LOOP] [-s SEED] [-o LOGDIR] [SCENARIO...]
#
#   SCENARIO    crash churn calls admission grinder stop interrupt sigint (default: all
#               eight; see the docstring of tests/_stress.py for what each checks)
#   -n ROUNDS   rounds per repeat (default per scenario: crash 500, churn 300, calls 500,
#               admission 400, grinder 300,
#               stop 10 cycles per child, interrupt 2 and sigint 2 passes over
#               their 16/12 child-process combinations)
#   -r REPEATS  repeats per scenario, each a fresh process (default 3)
#   -d SECONDS  deadline of one repeat (default 120): shortly before it the repeat
#               prints what it was doing and where each asyncio task waits, at it
#               every thread's stack (faulthandler), then exits; `timeout` kills it
#               30 s later if even that does not work
#   -c SECONDS  deadline of each child process of stop/interrupt/sigint (default 30)
#   -m HANGS    stop/interrupt/sigint give up after this many hung children
#               (default 3; raise it, with -d, to see every combination)
#   -l LOOP     asyncio or uvloop, for crash, churn, calls and admission (default asyncio)
#   -s SEED     seed of the first repeat (the next ones use SEED+1, ...); default
#               random. Every repeat prints its seed.
#   -o LOGDIR   keep the logs there (default: a new directory under /tmp, printed)
#
# Environment: LEASEPOOL_PY - the Python to run (default .venv/bin/python of this
# checkout, else python3).
#
# Output: one line per repeat, "PASS|FAIL|HANG scenario #i seed=S (Ns) log=FILE";
# for FAIL/HANG also the problem lines and, for a hang, the start of the stack
# dump. A repeat that leaves a process behind (e.g. a worker that outlived its
# parent) fails with a LEFTOVER line; those processes are killed. A summary at the
# end. Exit status 0 if every repeat passed, 1 otherwise.
#
# Examples:
#   scripts/stress.sh                              # everything, 3 repeats each
#   scripts/stress.sh -n 500 -r 3 -d 120 crash     # the crash -> recover baseline
#   scripts/stress.sh -n 1 -r 10 interrupt sigint  # exit paths, 10 fresh runs each
#
# Runs one repeat at a time (each uses up to ~2 cores).

set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=''
REPEATS=3
DEADLINE=120
CHILD_DEADLINE=30
MAX_HANGS=3
LOOP=asyncio
SEED=''
LOGDIR=''

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while getopts 'n:r:d:c:m:l:s:o:h' opt; do
    case $opt in
        n) ROUNDS=$OPTARG ;;
        r) REPEATS=$OPTARG ;;
        d) DEADLINE=$OPTARG ;;
        c) CHILD_DEADLINE=$OPTARG ;;
        m) MAX_HANGS=$OPTARG ;;
        l) LOOP=$OPTARG ;;
        s) SEED=$OPTARG ;;
        o) LOGDIR=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=(crash resilience churn calls admission grinder stop interrupt sigint)

PY=${LEASEPOOL_PY:-}
if [[ -z $PY ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
for n in "$REPEATS" "$DEADLINE" "$CHILD_DEADLINE" "$MAX_HANGS" ${ROUNDS:+"$ROUNDS"} ${SEED:+"$SEED"}; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "stress.sh: not a whole number: $n" >&2; exit 2; }
done
for s in "${SCENARIOS[@]}"; do
    case $s in crash | churn | calls | admission | grinder | stop | interrupt | sigint) ;; *) echo "stress.sh: unknown scenario: $s" >&2; exit 2 ;; esac
done
[[ -n $SEED ]] || SEED=$((RANDOM * 32768 + RANDOM))
[[ -n $LOGDIR ]] || LOGDIR=$(mktemp -d /tmp/leasepool-stress.XXXXXX)
mkdir -p "$LOGDIR"

echo "stress: python=$PY ($("$PY" -c 'import leasepool, sys; print(sys.version.split()[0], leasepool.__file__)'))"
echo "stress: scenarios=${SCENARIOS[*]} rounds=${ROUNDS:-default} repeats=$REPEATS deadline=${DEADLINE}s loop=$LOOP logs=$LOGDIR"

# Live (not zombie) processes of process group $1, space-separated. Waits up to 10 s
# for workers that are still noticing that their parent is gone.
left_in_group() {
    local pids i
    for ((i = 0; i < 100; i++)); do
        pids=$(ps -eo pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ {print $1}' | paste -sd' ' -)
        [[ -z $pids ]] && return 0
        sleep 0.1
    done
    echo "$pids"
}

declare -A PASSED FAILED HUNG
total_bad=0
seed=$SEED
# Run from a neutral directory: the installed package is under test, not the checkout.
cd /tmp || exit 2
for scenario in "${SCENARIOS[@]}"; do
    PASSED[$scenario]=0 FAILED[$scenario]=0 HUNG[$scenario]=0
    for ((i = 1; i <= REPEATS; i++)); do
        log=$LOGDIR/$scenario-$i.log
        args=("$scenario" --deadline "$DEADLINE" --child-deadline "$CHILD_DEADLINE"
              --max-hangs "$MAX_HANGS" --seed "$seed" --loop "$LOOP")
        [[ -n $ROUNDS ]] && args+=(--rounds "$ROUNDS")
        start=$SECONDS
        # The repeat's own faulthandler fires at the deadline; `timeout` is the backstop
        # (SIGTERM to the whole process group, SIGKILL 10 s later). `timeout` makes a
        # process group of its own (pgid = its pid), so whatever the repeat leaves
        # behind (worker processes of a repeat that died) is found and killed below.
        timeout -k 10 $((DEADLINE + 30)) "$PY" -X faulthandler "$ROOT/tests/_stress.py" "${args[@]}" >"$log" 2>&1 &
        group=$!
        wait "$group"
        rc=$?
        took=$((SECONDS - start))
        left=$(left_in_group "$group")
        if [[ -n $left ]]; then
            echo "LEFTOVER: processes of this repeat still alive after it ended: $left" >>"$log"
            ps -o pid=,stat=,args= -p "${left// /,}" 2>/dev/null | cut -c1-200 >>"$log"
            kill -9 $left 2>/dev/null
            ((rc == 0)) && rc=1
        fi
        if ((rc == 124 || rc == 137)); then
            verdict=HANG
            echo "HANG: killed by timeout after $((DEADLINE + 30)) s (exit $rc)" >>"$log"
        elif grep -qE '^Timeout \([0-9]+:[0-9]{2}:[0-9]{2}\)!' "$log"; then
            verdict=HANG   # this process's own deadline: faulthandler dumped every stack
        elif ((rc == 3)); then
            verdict=HANG   # a child process of the scenario hung
        elif ((rc == 0)); then
            verdict=PASS
        else
            verdict=FAIL
        fi
        echo "$verdict $scenario #$i seed=$seed (${took}s) exit=$rc log=$log"
        case $verdict in
            PASS) PASSED[$scenario]=$((PASSED[$scenario] + 1)) ;;
            FAIL) FAILED[$scenario]=$((FAILED[$scenario] + 1)) ;;
            HANG) HUNG[$scenario]=$((HUNG[$scenario] + 1)) ;;
        esac
        if [[ $verdict != PASS ]]; then
            total_bad=$((total_bad + 1))
            grep -E '^(FAIL|HANG|RESULT|LEFTOVER|crash:|churn:|calls:)' "$log" | head -n 12 | sed 's/^/    /'
            if grep -qE '^Timeout \(' "$log"; then
                echo "    --- status, asyncio tasks and stack dump (start; all in the log):"
                sed -n '/^WATCHDOG: deadline/,/^Timeout (/{/^Timeout (/!p}' "$log" | head -n 20 | sed 's/^/    /'
                sed -n '/^Timeout (/,$p' "$log" | head -n 40 | sed 's/^/    /'
            elif [[ $verdict == FAIL ]] && ! grep -qE '^(FAIL|RESULT)' "$log"; then
                tail -n 20 "$log" | sed 's/^/    /'
            fi
        fi
        seed=$((seed + 1))
    done
done

echo
echo "stress summary (logs: $LOGDIR):"
for scenario in "${SCENARIOS[@]}"; do
    printf '  %-10s pass %d  fail %d  hang %d  (of %d)\n' "$scenario" \
        "${PASSED[$scenario]}" "${FAILED[$scenario]}" "${HUNG[$scenario]}" "$REPEATS"
done
if ((total_bad)); then
    echo "stress: $total_bad repeat(s) failed or hung"
    exit 1
fi
echo "stress: all passed"
