#!/usr/bin/env bash
# memcap.sh runs the read workloads against a seeded bench server once per
# LIMIT, the server inside a cgroup whose memory limit is LIMIT bytes (0: no
# limit; default: no limit, then 1 GiB), each run after dropping the page cache,
# and prints each run's table and the server's memory. It answers "does a store
# of N numbers serve within LIMIT of memory, and at what cost"
# (docs/performance.md, Update 3).
#
# MEMCAP_WORKLOADS chooses the workloads (default stream,unary,unary1; the writes:
# reserve,report,webhook; or flow) and MEMCAP_LOAD_ARGS adds flags to the load
# (such as --campaign 1000000 for the flow), MEMCAP_SERVER_ARGS to the server
# (such as --record-cache 512MiB). The server's VmRSS and its anonymous
# part are sampled every second during the load, and their peaks printed with the
# VmRSS at the end.
# MEMCAP_COPY=1 runs each load on a fresh copy of DATA_DIR (a flow writes to the
# store; the copy keeps every run's start the same). MEMCAP_HEAP=FILE has the
# server write a heap profile to FILE.LIMIT each time its anonymous memory
# reaches a new peak (64 MiB above the last profile's), for "go tool pprof
# -sample_index=inuse_space"; MEMCAP_CPU=FILE a CPU profile of everything the
# server serves to FILE.LIMIT (LIMIT is the run's limit, 0 for none).
# Needs root (cgroups,
# drop_caches) and a cgroup v1 or v2 memory controller.
#
#   internal/loadgen/memcap.sh DATA_DIR NUMBERS [LIMIT_BYTES...]
#
# When DATA_DIR holds no finished seeding, it is seeded first with NUMBERS
# numbers, every one stored (sendguard-bench --serve-only --numbers NUMBERS
# --fresh 0 --data DATA_DIR: about 4 minutes and 0.9 GB at 10 M); later runs
# reuse it.
set -euo pipefail

dir=${1:?data directory}
numbers=${2:?numbers}
shift 2
limits=("$@")
if [[ ${#limits[@]} -eq 0 ]]; then
	limits=(0 1073741824)
fi
work=$(mktemp -d)
bin=${SENDGUARD_BENCH_BIN:-$work/sendguard-bench}
if [[ -z ${SENDGUARD_BENCH_BIN:-} ]]; then
	go build -o "$bin" ./cmd/sendguard-bench
fi
cg=sendguard-memcap-$$
cgdir=""
pid=""
sampler=""

cleanup() {
	if [[ -n $sampler ]]; then
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		sampler=""
	fi
	if [[ -n $pid ]]; then
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
	fi
	if [[ -n $cgdir ]]; then
		rmdir "$cgdir" 2>/dev/null || true
		cgdir=""
	fi
}
trap 'cleanup; rm -rf "$work" "${copy:-}"' EXIT
copy=

# start_server LOG ARGS... starts "$bin --serve-only ARGS..." in the
# background, in the cgroup cgdir when it is set, with its output in LOG, and
# waits until it is ready (or fails, printing LOG).
start_server() {
	local log=$1
	shift
	# The shell joins the cgroup first and only then becomes the server: a
	# server that could not join does not start.
	sh -c 'if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit 1; fi; shift; exec "$@"' \
		sh "$cgdir" "$bin" --serve-only "$@" >"$log" 2>&1 &
	pid=$!
	until grep -q 'bench server ready' "$log"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "the bench server did not start:" >&2
			cat "$log" >&2
			pid=""
			exit 1
		fi
		sleep 1
	done
}

# make_cgroup LIMIT creates the cgroup cgdir limited to LIMIT bytes, swap
# included, and checks that the limit took.
make_cgroup() {
	local want=$1 got
	if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # v2
		echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		cgdir=/sys/fs/cgroup/$cg
		mkdir -p "$cgdir"
		echo "$want" >"$cgdir/memory.max"
		echo 0 >"$cgdir/memory.swap.max" 2>/dev/null || true
		got=$(cat "$cgdir/memory.max")
	else # v1
		cgdir=/sys/fs/cgroup/memory/$cg
		mkdir -p "$cgdir"
		echo "$want" >"$cgdir/memory.limit_in_bytes"
		echo "$want" >"$cgdir/memory.memsw.limit_in_bytes" 2>/dev/null || true
		got=$(cat "$cgdir/memory.limit_in_bytes")
	fi
	# The kernel rounds a limit down to whole pages.
	if ((got > want || got < want - 4096)); then
		echo "cgroup $cgdir: memory limit $got, want $want" >&2
		exit 1
	fi
}

if [[ ! -f $dir/.memcap-seeded ]]; then
	if [[ -e $dir ]] && [[ -n $(ls -A "$dir") ]]; then
		echo "$dir is not empty and was not seeded by memcap.sh: remove it, or name another" >&2
		exit 1
	fi
	echo "seeding $numbers numbers into $dir"
	start_server "$work/seed.log" --numbers "$numbers" --fresh 0 --data "$dir"
	cleanup
	touch "$dir/.memcap-seeded"
fi

# run LABEL LIMIT starts the server (in a cgroup of LIMIT bytes unless LIMIT is
# 0) on a cold page cache, runs the load from this process and prints the results.
run() {
	local label=$1 limit=$2 grpc http faults data=$dir
	if [[ -n ${MEMCAP_COPY:-} ]]; then
		copy=$dir.memcap-copy
		rm -rf "$copy"
		cp -a "$dir" "$copy"
		data=$copy
	fi
	if [[ $limit != 0 ]]; then
		make_cgroup "$limit"
	fi
	sync
	echo 3 >/proc/sys/vm/drop_caches
	# shellcheck disable=SC2086 # MEMCAP_SERVER_ARGS is split into flags on purpose
	start_server "$work/server.log" --skip-seed --numbers "$numbers" --data "$data" \
		${MEMCAP_HEAP:+--memprofile "$MEMCAP_HEAP.$limit"} ${MEMCAP_CPU:+--cpuprofile "$MEMCAP_CPU.$limit"} ${MEMCAP_SERVER_ARGS:-}
	if [[ -n $cgdir ]] && ! grep -q "$cg" "/proc/$pid/cgroup"; then
		echo "the server is not in cgroup $cg" >&2
		exit 1
	fi
	grpc=$(grep -o 'grpc=[0-9.:]*' "$work/server.log" | cut -d= -f2)
	http=$(grep -o 'http=[0-9.:]*' "$work/server.log" | cut -d= -f2)
	SENDGUARD_WHATSAPP_APP_SECRET=$(grep -o 'SECRET=[0-9a-f]*' "$work/server.log" | cut -d= -f2)
	export SENDGUARD_WHATSAPP_APP_SECRET
	# The store loads its key filter in the background (a scan of every table:
	# about 15 s at 10 M numbers on a cold cache); let it finish first.
	sleep 30
	faults=$(cut -d')' -f2 "/proc/$pid/stat" | awk '{print $10}')
	echo "== $label"
	# The server's VmRSS and anonymous memory (kB), every second, until the
	# load ends; with MEMCAP_HEAP, a heap profile whenever the anonymous memory
	# is 64 MiB above the last profile's (VmRSS also grows as tables are read).
	(profiled=0
	while [[ -r /proc/$pid/status ]]; do
		read -r rss anon < <(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {print r, a}' "/proc/$pid/status" 2>/dev/null || true)
		echo "$rss ${anon:-0}"
		if [[ -n ${MEMCAP_HEAP:-} && -n ${anon:-} ]] && ((anon > profiled + 65536)); then
			kill -USR1 "$pid" 2>/dev/null || true
			profiled=$anon
		fi
		sleep 1
	done) >"$work/rss" &
	sampler=$!
	# shellcheck disable=SC2086 # MEMCAP_LOAD_ARGS is split into flags on purpose
	if ! "$bin" --addr "$grpc" --http-addr "$http" --skip-seed --numbers "$numbers" \
		--workloads "${MEMCAP_WORKLOADS:-stream,unary,unary1}" --duration 10s --rounds 3 --markdown ${MEMCAP_LOAD_ARGS:-} >"$work/load.out" 2>&1; then
		cat "$work/load.out" >&2
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "the server died: $(dmesg 2>/dev/null | grep -i 'killed process' | tail -1)" >&2
			pid=""
		fi
		exit 1
	fi
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	grep -E '^\||memory|flow campaign|record cache' "$work/load.out" || true
	echo "server: peak VmRSS during the load $(($(sort -n "$work/rss" | tail -1 | cut -d' ' -f1) / 1024)) MiB, peak anonymous $(($(sort -n -k2 "$work/rss" | tail -1 | cut -d' ' -f2) / 1024)) MiB (sampled every second)"
	echo "server: $(grep -E 'VmRSS|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t\n' ' ')"
	echo "server: Go heap $(curl -s "http://$http/metrics" | awk '/^go_memstats_heap_(inuse|idle|released)_bytes / {printf "%s %d MiB ", $1, $2/1048576}')"
	echo "server: major page faults during the load: $(($(cut -d')' -f2 "/proc/$pid/stat" | awk '{print $10}') - faults))"
	cleanup
}

for limit in "${limits[@]}"; do
	if [[ $limit == 0 ]]; then
		run "no memory limit" 0
	else
		run "memory limit $limit bytes ($((limit >> 20)) MiB)" "$limit"
	fi
done
