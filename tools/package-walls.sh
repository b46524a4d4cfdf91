#!/usr/bin/env bash
# The walls of the package graph (DESIGN.md "Layout": dependencies point inward,
# cmd → server → storage → validator/identity/webhook; nothing imports cmd; the
# rules know no I/O), checked with go list. make lint runs it; it prints each
# breach and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
fail=0
breach() { echo "package walls: $*" >&2; fail=1; }

# The service knows no storage backend: the runner (internal/serve) opens one.
server=$(go list -deps ./server)
for p in $(grep -E "^$mod/storage/" <<<"$server" || true); do
	breach "server depends on the storage backend $p (open stores in internal/serve)"
done
for p in $(grep -E "^$mod/(cmd|internal/serve)(/|$)" <<<"$server" || true); do
	breach "server depends on $p, which is outside it"
done

# The storage layer knows nothing of the service.
storage=$(go list -deps ./storage/...)
for p in $(grep -E "^$mod/(server|cmd|internal/serve|console|client)(/|$)" <<<"$storage" || true); do
	breach "storage depends on $p"
done

# The rules (validator, identity, webhook) know no I/O: neither they nor the
# packages outside the standard library that they reach beyond the generated API
# package (whose gRPC stubs bring the network) import an I/O package of the
# standard library, nor do they reach another layer of sendguard (the spelling
# of the API's enums, internal/enumword, is no layer: it is held to the same
# no-I/O check).
pure="./validator/... ./identity/... ./webhook/..."
io='^(net|net/.+|os|os/.+|database/.+|syscall|io/ioutil|log|log/.+|google\.golang\.org/grpc(/.+)?)$'
rules=$(go list -deps $pure | sort)
api=$(go list -deps ./proto/sendguard/v1 | sort)
reached=$(comm -23 <(echo "$rules") <(echo "$api"))
imports=$(go list -f '{{if not .Standard}}{{.ImportPath}} {{join .Imports " "}}{{end}}' $reached | grep . || true)
while read -r pkg imps; do
	for i in $imps; do
		if grep -qE "$io" <<<"$i"; then breach "$pkg (reached by the rules) imports the I/O package $i"; fi
	done
done <<<"$imports"
for p in $(grep -E "^$mod/" <<<"$reached" | grep -vE "^$mod/(validator|identity|webhook|proto|internal/enumword)(/|$)" || true); do
	breach "the rules ($pure) depend on $p"
done

# Nothing imports cmd/ (tests included).
all=$(go list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./...)
while read -r pkg imports; do
	for i in $imports; do
		case $i in "$mod/cmd" | "$mod/cmd/"*) breach "$pkg imports $i" ;; esac
	done
done <<<"$all"

if [ "$fail" = 0 ]; then echo "package walls: ok"; fi
exit $fail
