#!/usr/bin/env bash
# memcap.sh runs the read workloads against a seeded bench server once per
# LIMIT, the server inside a cgroup whose memory limit is LIMIT bytes (0: no
# limit; default: no limit, then 1 GiB), each run after dropping the page cache,
# and prints each run's table and the server's memory. It answers "does a store of N numbers serve within LIMIT
# of memory, and at what cost" (docs/performance.md, "Update 3").
#
# Needs root (cgroups, drop_caches) and a cgroup v1 or v2 memory controller.
#
#   internal/loadgen/memcap.sh DATA_DIR NUMBERS [LIMIT_BYTES...]
#
# When DATA_DIR does not exist, it is seeded first with NUMBERS numbers, every one
# stored (sendguard bench --serve-only --numbers NUMBERS --fresh 0 --data
# DATA_DIR: about 4 minutes and 0.9 GB at 10 M); later runs reuse it.
set -euo pipefail

dir=${1:?data directory}
numbers=${2:?numbers}
shift 2
limits=("$@")
if [[ $# -eq 0 ]]; then
	limits=(0 1073741824)
fi
bin=${SENDGUARD_BIN:-}
if [[ -z $bin ]]; then
	bin=$(mktemp -d)/sendguard
	go build -o "$bin" ./cmd/sendguard
fi
cg=sendguard-memcap-$$

if [[ ! -d $dir ]]; then
	echo "seeding $numbers numbers into $dir"
	out=$(mktemp)
	"$bin" bench --serve-only --numbers "$numbers" --fresh 0 --data "$dir" >"$out" 2>&1 &
	pid=$!
	until grep -q ready "$out"; do
		if ! kill -0 $pid 2>/dev/null; then
			cat "$out"
			exit 1
		fi
		sleep 2
	done
	kill -INT $pid
	wait $pid || true
	rm -f "$out"
fi

# cgroup_enter LIMIT sets up a cgroup limited to LIMIT bytes (no swap) and prints
# the shell command that moves the shell running it into the cgroup.
cgroup_enter() {
	if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # v2
		echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		mkdir -p /sys/fs/cgroup/$cg
		echo "$1" >/sys/fs/cgroup/$cg/memory.max
		echo 0 >/sys/fs/cgroup/$cg/memory.swap.max 2>/dev/null || true
		echo "echo \$\$ > /sys/fs/cgroup/$cg/cgroup.procs;"
	else # v1
		mkdir -p /sys/fs/cgroup/memory/$cg
		echo "$1" >/sys/fs/cgroup/memory/$cg/memory.limit_in_bytes
		echo "$1" >/sys/fs/cgroup/memory/$cg/memory.memsw.limit_in_bytes 2>/dev/null || true
		echo "echo \$\$ > /sys/fs/cgroup/memory/$cg/cgroup.procs;"
	fi
}

cgroup_remove() {
	rmdir /sys/fs/cgroup/$cg 2>/dev/null || rmdir /sys/fs/cgroup/memory/$cg 2>/dev/null || true
}
trap cgroup_remove EXIT

# run LABEL LIMIT starts the server (in a cgroup of LIMIT bytes unless LIMIT is
# 0) on a cold page cache, runs the load from this process and prints the results.
run() {
	local label=$1 cap=$2 enter="" out pid grpc http faults
	if [[ $cap != 0 ]]; then
		enter=$(cgroup_enter "$cap")
	fi
	sync
	echo 3 >/proc/sys/vm/drop_caches
	out=$(mktemp)
	sh -c "$enter exec $bin bench --serve-only --skip-seed --numbers $numbers --data $dir" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 1 120); do
		grep -q ready "$out" && break
		sleep 1
	done
	grpc=$(grep -o 'grpc=[0-9.:]*' "$out" | cut -d= -f2)
	http=$(grep -o 'http=[0-9.:]*' "$out" | cut -d= -f2)
	sleep 20 # the key filter loads in the background
	faults=$(awk '{print $12}' /proc/$pid/stat)
	echo "== $label"
	"$bin" bench --addr "$grpc" --http-addr "$http" --skip-seed --numbers "$numbers" \
		--workloads stream,unary,unary1 --duration 10s --rounds 3 --markdown | grep -E '^\||memory'
	echo "server: $(grep -E 'VmRSS|RssAnon|RssFile' /proc/$pid/status | tr -s ' \t\n' ' ')"
	echo "server: major page faults during the load: $(($(awk '{print $12}' /proc/$pid/stat) - faults))"
	kill -INT $pid
	wait $pid || true
	rm -f "$out"
}

for limit in "${limits[@]}"; do
	if [[ $limit == 0 ]]; then
		run "no memory limit" 0
	else
		run "memory limit $limit bytes ($((limit >> 20)) MiB)" "$limit"
		cgroup_remove
	fi
done
