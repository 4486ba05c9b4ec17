# Shared set-up of the benchmark scripts (sourced by bench/run.sh and bench/probe.sh, from the repository root):
# the upstream nginx answering fixed bodies, nginx as a plain reverse proxy, Tollgate with its four gateways, all on
# 127.0.0.1 and free ports, stopped on exit; the lanes (NAMES, url_of, script_of), wrk_run and a sanity check of
# every path. Settings: DURATION, WORKERS, TOLLGATE_BIN, NGINX, DATA_DIR (the store, default inside the work dir).

DURATION=${DURATION:-10}
WORKERS=${WORKERS:-1}   # workers of each proxy (and of the upstream nginx)
BIN=${TOLLGATE_BIN:-build/tollgate}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

work=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

UP=$(free_port); NX=$(free_port)

# nginx_conf DIR PORT EXTRA SERVER: an nginx config in DIR/nginx.conf listening on PORT, with EXTRA in its http block
# and SERVER in its server block (the upstream and the reverse proxy differ only there)
nginx_conf() {
    cat > "$1/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
    $3
    server {
        listen 127.0.0.1:$2 reuseport;
        $4
    }
}
EOF
}

# ---- upstream: nginx answering the fixed body from its config
mkdir -p "$work/up" "$work/nx"
body=$(tr -d '\n' < bench/response.json)
abody=$(tr -d '\n' < bench/anthropic_response.json)
nginx_conf "$work/up" "$UP" "" "location / { default_type application/json; return 200 '$body'; }
        location = /v1/messages { default_type application/json; return 200 '$abody'; }"
"$NGINX" -p "$work/up" -c "$work/up/nginx.conf" &
pids+=($!)

# ---- nginx as a plain reverse proxy
nginx_conf "$work/nx" "$NX" "upstream provider { server 127.0.0.1:$UP; keepalive 128; }" \
    'location / { proxy_pass http://provider; proxy_http_version 1.1; proxy_set_header Connection ""; }'
"$NGINX" -p "$work/nx" -c "$work/nx/nginx.conf" &
pids+=($!)

# ---- Tollgate
cat > "$work/tollgate.json" <<EOF
{ "listen": "127.0.0.1:0", "workers": $WORKERS, "access_log": false, "data_dir": "${DATA_DIR:-$work/tg-data}",
  "providers": { "openai": { "base_url": "http://127.0.0.1:$UP/v1" }, "anthropic": { "base_url": "http://127.0.0.1:$UP" } },
  "gateways": [ { "account": "local", "id": "default", "collect_logs": false },
                { "account": "local", "id": "logged", "collect_logs": true },
                { "account": "local", "id": "cached", "collect_logs": false, "cache_ttl": 86400 },
                { "account": "local", "id": "cachedlog", "collect_logs": true, "cache_ttl": 86400 } ] }
EOF
"$BIN" --config "$work/tollgate.json" 2> "$work/tollgate.log" &
tg_pid=$!
pids+=($tg_pid)
for _ in $(seq 1 100); do grep -q 'listening on' "$work/tollgate.log" && break; sleep 0.05; done
TG=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/tollgate.log" | cut -d: -f2)
wait_port "$UP"; wait_port "$NX"; wait_port "$TG"

direct_url="http://127.0.0.1:$UP/v1/chat/completions"
nginx_url="http://127.0.0.1:$NX/v1/chat/completions"
tg_url="http://127.0.0.1:$TG/v1/local/default/openai/chat/completions"   # logs off: the passthrough itself
tglog_url="http://127.0.0.1:$TG/v1/local/logged/openai/chat/completions" # every request logged, bodies too
hit_url="http://127.0.0.1:$TG/v1/local/cached/openai/chat/completions"   # cache hits (the first request fills it)
hitlog_url="http://127.0.0.1:$TG/v1/local/cachedlog/openai/chat/completions" # cache hits, each one logged
ant_url="http://127.0.0.1:$TG/v1/local/default/anthropic/v1/messages"     # Anthropic passthrough (logs off)
compat_url="http://127.0.0.1:$TG/v1/local/default/compat/chat/completions" # the same, through the unified API
NAMES="direct nginx tollgate tg+logs hit hit+logs anthropic compat"
# (two lanes outside NAMES, for bench/probe.sh: tg+logs and hit+logs without the bodies, cf-aig-collect-log-payload false)
url_of() { case "$1" in direct) echo "$direct_url" ;; nginx) echo "$nginx_url" ;; tollgate) echo "$tg_url" ;;
    tg+logs|tg+logs-nobody) echo "$tglog_url" ;; hit) echo "$hit_url" ;; hit+logs|hit+logs-nobody) echo "$hitlog_url" ;;
    anthropic) echo "$ant_url" ;; compat) echo "$compat_url" ;; esac; }
script_of() { case "$1" in anthropic) echo bench/post_anthropic.lua ;; compat) echo bench/post_compat.lua ;;
    *-nobody) echo bench/post_nobody.lua ;; *) echo bench/post.lua ;; esac; }

rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# to microseconds: "45.12us" "1.20ms" "1.00s"
to_us() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v+0} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000000} else print v }'; }

# settle: before a measurement, let the previous one's disk writes finish: Tollgate's log queue empty, then the
# kernel's dirty pages written (sync). On the benchmark machine disk writes from any process stall the others
# (bench/RESULTS.md, session 20: 48 MB/s of writes take nginx's own p99 at 1 connection from ~65 us to ~1 ms), so a
# lane measured while the kernel still writes back the logged lane before it pays for that lane's bytes. SETTLE=0
# measures without it.
settle() {
    [ "${SETTLE:-1}" = 1 ] || return 0
    local i depth
    for i in $(seq 1 100); do
        depth=$(curl -s "http://127.0.0.1:$TG/metrics" | awk '/^tollgate_log_queue_depth/{print $2}')
        [ "${depth:-0}" = 0 ] && break
        sleep 0.05
    done
    sync
    sleep 0.2
}

# wrk_run URL CONNS THREADS [SCRIPT] -> sets P50 P99 RPS ERRS (after settle)
wrk_run() {
    local out
    settle
    out=$(wrk -t"$3" -c"$2" -d"${DURATION}s" --latency -s "${4:-bench/post.lua}" "$1")
    P50=$(to_us "$(echo "$out" | awk '$1=="50%"{print $2}')")
    P99=$(to_us "$(echo "$out" | awk '$1=="99%"{print $2}')")
    RPS=$(echo "$out" | awk '/Requests\/sec/{print $2}')
    ERRS=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}' | tr '\n' ' ')
    [ -z "$ERRS" ] || echo "  wrk reported errors for $1: $ERRS" >&2
}

# sanity: each path answers the body
for u in "$direct_url" "$nginx_url" "$tg_url" "$tglog_url" "$hit_url" "$hitlog_url" "$ant_url"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d '{}' "$u")
    [ "$code" = 200 ] || { echo "bench: $u answered $code" >&2; exit 1; }
done
compat_body=$(awk -F'[[][[]|[]][]]' '/wrk.body/{print $2}' bench/post_compat.lua)
curl -s -X POST -H 'content-type: application/json' -d "$compat_body" "$compat_url" | grep -q '"object":"chat.completion"' ||
    { echo "bench: $compat_url did not answer a translated chat completion" >&2; exit 1; }
