#!/usr/bin/env bash
# Where a lane's time goes: the set-up of bench/run.sh (bench/lib.sh), then LANES measured in ROUNDS interleaved
# rounds of DURATION seconds at CONNS connections, each line giving wrk's req/s, p50 and p99 beside what the machine
# did meanwhile: its CPU split (clock ticks of both cores: user, system, irq+softirq, idle), Tollgate's ticks and its
# log writer's, the writer's batches and their average time, the worker's involuntary context switches, the pages
# the kernel wrote, the MB/s Tollgate sent to storage, and the share of the round its worker spent on a CPU (wk%) and
# runnable but waiting for one (wkq%). For A/B comparisons of builds (TOLLGATE_BIN), of the
# store's place (DATA_DIR, e.g. under /dev/shm), of the writer's scheduling (WRITER_CMD, run with the writer's thread
# id appended: "chrt -i -p 0", "renice -n 19 -p", "taskset -pc 1"; WORKER_CMD the same for the worker), or of what
# disk writes by another process do to a lane (DISK_LOAD="MB_PER_S [WRITE_KIB [buffered]]": bench/diskload.c writing
# into the work dir during each round). Each round starts on a settled machine (lib.sh's settle). At the end, each
# lane's req/s against the first lane's: round by round, their median, and pooled (sum over sum). Prints figures
# only; nothing passes or fails.
#
#   bench/probe.sh                                        tollgate and tg+logs at 64 connections, 3 rounds of 5 s
#   LANES="direct hit hit+logs hit+logs-nobody" CONNS=1 ROUNDS=5 bench/probe.sh
#   DISK_LOAD=24 LANES="direct hit" CONNS=1 bench/probe.sh   nginx and cache hits beside 24 MB/s of O_DIRECT writes
#
# Lanes: those of bench/run.sh (direct nginx tollgate tg+logs hit hit+logs anthropic compat), and tg+logs-nobody and
# hit+logs-nobody (logged without the bodies: cf-aig-collect-log-payload false).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
LANES=${LANES:-tollgate tg+logs}
. bench/lib.sh
for name in $LANES; do
    [ -n "$(url_of "$name")" ] ||
        { echo "probe: no lane named '$name' (lanes: $NAMES tg+logs-nobody hit+logs-nobody)" >&2; exit 1; }
done

[ -z "${DISK_LOAD:-}" ] || [ -x build/rel/bench/diskload ] ||
    { echo "probe: DISK_LOAD needs build/rel/bench/diskload (make build/rel/bench/diskload)" >&2; exit 1; }

for name in $NAMES; do wrk -t1 -c8 -d1s -s "$(script_of "$name")" "$(url_of "$name")" > /dev/null; done

# the writer is the thread named tg-logwriter; the worker the busiest other one after the warm-up
ticks() { awk '{print $14 + $15}' "$1"; } # user + system clock ticks of a /proc/.../stat
thread_ticks() { ticks "/proc/$tg_pid/task/$1/stat"; }
writer=""
worker=""
best=-1
for t in /proc/"$tg_pid"/task/*; do
    id=${t##*/}
    if [ "$(cat "$t/comm")" = tg-logwriter ]; then writer=$id; continue; fi
    n=$(thread_ticks "$id")
    if [ "$n" -gt "$best" ]; then best=$n; worker=$id; fi
done
[ -n "$writer" ] || { echo "probe: Tollgate has no tg-logwriter thread" >&2; exit 1; }
[ -n "${WRITER_CMD:-}" ] && $WRITER_CMD "$writer" > /dev/null
[ -n "${WORKER_CMD:-}" ] && $WORKER_CMD "$worker" > /dev/null

cpu_ticks() { awk '/^cpu /{print $2 + $3, $4, $7 + $8, $5 + $6}' /proc/stat; } # user system irq idle(+iowait)
# the worker's time on a CPU and waiting for one, in ns (/proc/.../schedstat: its first two fields)
schedstat() { awk '{print $1, $2}' "/proc/$tg_pid/task/$worker/schedstat"; }
involuntary() { awk '/^nonvoluntary_ctxt_switches/{print $2}' "/proc/$tg_pid/task/$worker/status"; }
batches() { curl -s "http://127.0.0.1:$TG/metrics" | awk '/^tollgate_log_batch_seconds_sum/{s=$2} /^tollgate_log_batch_seconds_count/{n=$2} END{print s + 0, n + 0}'; }
written() { awk '/^nr_written /{print $2}' /proc/vmstat; }
tg_written() { awk '/^write_bytes:/{print $2}' "/proc/$tg_pid/io"; } # bytes Tollgate sent to storage
# every figure a line compares, before and after a run: user system irq idle tg writer batch_s batches invol
# pages tg_bytes worker run_ns wait_ns
snapshot() {
    echo "$(cpu_ticks) $(ticks "/proc/$tg_pid/stat") $(thread_ticks "$writer") $(batches) $(involuntary) $(written)" \
        "$(tg_written) $(thread_ticks "$worker") $(schedstat)"
}
threads=$(( CONNS < 2 ? 1 : 2 ))
declare -A rates # lane -> its rounds' req/s

echo "Tollgate probe — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr); $BIN; $CONNS connections, $ROUNDS rounds of $DURATION s"
echo "data_dir ${DATA_DIR:-(work dir)}; writer command ${WRITER_CMD:-(none)}; worker command ${WORKER_CMD:-(none)};" \
    "disk load ${DISK_LOAD:-(none)};" \
    "clock ticks are 1/$(getconf CLK_TCK) s"
printf '%-16s %9s %8s %8s  %5s %5s %5s %5s  %5s %6s  %7s %8s  %7s %7s %6s  %6s %6s  %4s %4s\n' lane req/s p50 p99 user sys \
    irq idle tg writer batches batch_us invol pages tgMB/s wk_us wr_us wk% wkq%
for round in $(seq 1 "$ROUNDS"); do
    for name in $LANES; do
        settle # (wrk_run settles too; here, so that the snapshot does not count the sync)
        before=$(snapshot)
        if [ -n "${DISK_LOAD:-}" ]; then
            build/rel/bench/diskload "$work/diskload" "$DURATION" $DISK_LOAD > "$work/diskload.out" &
            loader=$!
        fi
        SETTLE=0 wrk_run "$(url_of "$name")" "$CONNS" "$threads" "$(script_of "$name")"
        [ -z "${DISK_LOAD:-}" ] || { wait "$loader"; loaded=$(cat "$work/diskload.out"); }
        after=$(snapshot)
        awk -v name="$name" -v rps="$RPS" -v p50="$P50" -v p99="$P99" -v before="$before" -v after="$after" \
            -v dur="$DURATION" -v tick_us="$(( 1000000 / $(getconf CLK_TCK) ))" 'BEGIN{
            split(before, a, " "); split(after, b, " "); for (k = 1; k <= 14; ++k) d[k] = b[k] - a[k]
            n = rps * dur # requests (and, in a logged lane, records) in the round
            printf "%-16s %9.0f %6.0fus %6.0fus  %5d %5d %5d %5d  %5d %6d  %7d %8.0f  %7d %7d %6.1f  %6.2f %6.2f  %4.0f %4.0f\n",
                name, rps, p50, p99, d[1], d[2], d[3], d[4], d[5], d[6], d[8], d[8] ? d[7] / d[8] * 1e6 : 0, d[9],
                d[10], d[11] / dur / 1e6, n ? d[12] * tick_us / n : 0, n ? d[6] * tick_us / n : 0, d[13] / dur / 1e7, d[14] / dur / 1e7 }'
        [ -z "${DISK_LOAD:-}" ] || echo "                 ${loaded:-diskload printed nothing}"
        rates[$name]="${rates[$name]:-} $RPS"
    done
done

# each lane's req/s against the first lane's, round by round, their median, and pooled (sum over sum)
first=${LANES%% *}
for name in $LANES; do
    [ "$name" != "$first" ] || continue
    awk -v a="${rates[$name]}" -v b="${rates[$first]}" -v what="$name / $first" 'BEGIN{
        n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; ++i) { r[i] = x[i] / y[i] * 100; sx += x[i]; sy += y[i]; line = line sprintf(" %.1f", r[i]) }
        for (i = 1; i <= n; ++i) for (j = i + 1; j <= n; ++j) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
        med = n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "%s req/s:%s%%; median %.1f%%, pooled %.1f%%\n", what, line, med, sx / sy * 100 }'
done
