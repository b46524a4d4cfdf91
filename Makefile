# sendguard — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BUF   := bin/buf
GOLANGCI := bin/golangci-lint
PKGS  := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: run
run: ## Start the server: embedded Badger in ./data, gRPC 127.0.0.1:50051, HTTP 127.0.0.1:8080, JSON API 127.0.0.1:8081
	$(GO) run ./cmd/sendguard serve --data ./data --grpc-addr 127.0.0.1:50051 --http-addr 127.0.0.1:8080 --api-addr 127.0.0.1:8081

# What `sendguard version` and sendguard_build_info say (internal/buildinfo): the
# tag or commit, and the commit, when built from a git checkout.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/sendguard/sendguard/internal/buildinfo.version=$(VERSION) \
            -X github.com/sendguard/sendguard/internal/buildinfo.revision=$(REVISION)

.PHONY: build
build: ## Build bin/sendguard (its version from git: VERSION=v1.4.0 overrides)
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/sendguard ./cmd/sendguard

.PHONY: test
test: ## Run every test with the race detector
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

.PHONY: chaos
chaos: ## Hostile traffic and full disks against the binary (internal/chaos; the full-disk part needs root), each printing its FIGURE
	SENDGUARD_CHAOS=1 $(GO) test -count=1 -v -timeout 25m ./internal/chaos/

.PHONY: soak
soak: ## Crash test: 20 rounds of kill -9 under load, every acknowledged write checked
	SENDGUARD_CRASH_ROUNDS=20 $(GO) test -count=1 -timeout 30m -run 'TestCrashLosesNothing' -v ./cmd/sendguard/ | grep -E 'round|rounds|ok|FAIL|panic'

.PHONY: test-upgrade
test-upgrade: ## Upgrade tests: data written by commit 2b23cf3 (two keys per recipient) and by d57f614 (before per-sender recipient state), opened by this build
	@d=$$(mktemp -d) && git archive 2b23cf3 | tar -x -C $$d && (cd $$d && $(GO) build -o $$d/sendguard-old ./cmd/sendguard) && \
	mkdir $$d/presender && git archive d57f614 | tar -x -C $$d/presender && (cd $$d/presender && $(GO) build -o $$d/sendguard-presender ./cmd/sendguard) && \
	SENDGUARD_OLD_BINARY=$$d/sendguard-old SENDGUARD_PRESENDER_BINARY=$$d/sendguard-presender \
	$(GO) test -count=1 -run 'TestUpgradeFromOldBinary|TestUpgradeFromPreSenderStore' -v ./cmd/sendguard/; rc=$$?; rm -rf $$d; exit $$rc

.PHONY: bench
bench: ## Run the Go benchmarks and a short load run (100k numbers, 4 s per workload; docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./validator/ ./storage/... ./server/ ./identity/ ./validator/keyword/
	$(GO) run ./cmd/sendguard-bench --numbers 100000 --duration 4s --rounds 4 --scale-base 10000

.PHONY: bench-full
bench-full: ## The load run behind docs/performance.md: 10M numbers, every target (about 15 minutes)
	$(GO) run ./cmd/sendguard-bench --numbers 10000000 --duration 10s --rounds 5 --scale-base 10000 --markdown

.PHONY: bench-flow
bench-flow: ## A campaign's flow (validate, reserve, statuses by webhook) vs the same flow with no-op rules: 1M numbers, campaigns of 100k (docs/performance.md, Update 7)
	$(GO) run ./cmd/sendguard-bench --workloads flow --numbers 1000000 --campaign 100000

.PHONY: bench-memcap
bench-memcap: ## 10M numbers with no memory limit, then in a 1 GiB cgroup (needs root; seeds MEMCAP_DIR once; docs/performance.md)
	internal/loadgen/memcap.sh $${MEMCAP_DIR:-/var/tmp/sendguard-memcap-10m} 10000000

.PHONY: bench-scaleout
bench-scaleout: ## Decisions/s on Badger vs one and two replicas on a local Redis Cluster (needs redis-server; docs/scale-out.md)
	$(GO) test -run '^$$' -bench ScaleOut -benchtime 1x -timeout 10m ./internal/loadgen/

FUZZTIME ?= 60s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s)
	@set -e; for t in $$(grep -rlE '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' $$t/*_test.go | cut -d' ' -f2); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t; \
	  done; done

$(BUF): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../$(BUF) github.com/bufbuild/buf/cmd/buf

# golangci-lint has its own module (tools/lint), so that its many dependencies
# do not move the versions pinned in tools/go.mod.
$(GOLANGCI): tools/lint/go.mod tools/lint/go.sum
	cd tools/lint && $(GO) build -o ../../$(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# The TypeScript client (clients/typescript): its npm packages, pinned in
# package-lock.json, are installed (npm ci) when the lock is newer than the
# last install; protoc-gen-es among them generates its code.
TS := clients/typescript
NPM_CI := npm ci --no-audit --no-fund --loglevel=error

$(TS)/node_modules/.package-lock.json: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && $(NPM_CI)

.PHONY: generate
generate: $(BUF) $(TS)/node_modules/.package-lock.json ## Regenerate from proto/: the Go code, the OpenAPI document, the descriptor set, the TypeScript client's code, the console's classification.js (local plugins, pinned in go.mod, tools/go.mod and clients/typescript/package-lock.json)
	$(BUF) generate
	$(BUF) generate --template $(TS)/buf.gen.yaml
	$(GO) test ./internal/audience -run TestConsoleClassification -count=1 -update

.PHONY: test-ts
test-ts: build ## The TypeScript client (clients/typescript): npm ci, prettier check, tsc (strict), node --test against a real sendguard serve
	cd $(TS) && $(NPM_CI) && npm run lint --silent && SENDGUARD_BIN=$(CURDIR)/bin/sendguard npm test --silent

.PHONY: lint
lint: $(BUF) $(GOLANGCI) ## buf lint, buf breaking against proto/baseline.binpb, the package graph's walls, gofmt, go vet, go mod tidy -diff (every module), golangci-lint (README "Lint and generated code")
	$(BUF) lint
	$(BUF) breaking --against $(PROTO_BASELINE)
	tools/package-walls.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet $(PKGS)
	@for m in . tools tools/lint; do \
	  (cd $$m && $(GO) mod tidy -diff) || { echo "go.mod/go.sum of $$m are not tidy: run go mod tidy there"; exit 1; }; \
	done
	$(GOLANGCI) run

# The released API contract as a buf image: `make lint` fails on a change that
# breaks it (buf breaking, the FILE rules of buf.yaml). CI sees only main, so
# the baseline is committed; it moves only when a release adds to the API.
PROTO_BASELINE := proto/baseline.binpb

.PHONY: proto-baseline
proto-baseline: $(BUF) ## Refresh proto/baseline.binpb (what buf breaking checks against) from proto/: only when releasing an API change; commit it
	$(BUF) build --exclude-source-info -o $(PROTO_BASELINE)

.PHONY: lint-go
lint-go: $(GOLANGCI) ## golangci-lint with .golangci.yml: staticcheck, unused, errcheck, gocritic, revive, protogetter, govet, ineffassign
	$(GOLANGCI) run

.PHONY: lint-fix
lint-fix: $(GOLANGCI) ## Apply the fixes golangci-lint suggests (e.g. protogetter's getters); review the diff
	$(GOLANGCI) run --fix

# Where make generate writes. check-generated fails when, after regenerating,
# anything under them differs from what is committed: a changed or deleted
# file, and a new untracked one (git status). It also fails when generating
# changed the status of any other file of the tree (a plugin writing elsewhere).
GENERATED := proto/ $(TS)/src/gen/ console/static/js/classification.js

.PHONY: check-generated
check-generated: $(BUF) $(TS)/node_modules/.package-lock.json ## Fail when regenerating would change the committed code or add a file
	@before="$$(git status --porcelain --untracked-files=all)"; \
	$(MAKE) --no-print-directory generate || exit 1; \
	stale="$$(git status --porcelain --untracked-files=all -- $(GENERATED))"; \
	after="$$(git status --porcelain --untracked-files=all)"; \
	if [ -n "$$stale" ]; then \
	  git status --short --untracked-files=all -- $(GENERATED); git diff --stat -- $(GENERATED); \
	  echo 'generated code (Go, OpenAPI, descriptor set, TypeScript, console classification) is stale: run make generate and commit'; exit 1; \
	fi; \
	if [ "$$before" != "$$after" ]; then \
	  diff <(echo "$$before") <(echo "$$after"); \
	  echo 'make generate changed files outside $(GENERATED): list them in GENERATED and commit them'; exit 1; \
	fi

.PHONY: fmt
fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

bin/grpcurl: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../bin/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl

.PHONY: grpcurl
grpcurl: bin/grpcurl ## Build the pinned grpcurl into bin/grpcurl (for the README's examples)

IMAGE_OUT ?= bin/image
IMAGE_TAG ?= sendguard:dev
.PHONY: image
image: ## OCI image of the static binary, no engine or registry: bin/image/oci (OCI layout), bin/image/sendguard-image.tar (podman/docker load)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(IMAGE_OUT)/sendguard ./cmd/sendguard
	cd tools && $(GO) run ./imagebuild --binary $(abspath $(IMAGE_OUT))/sendguard \
	  --config $(CURDIR)/deploy/image/sendguard.yaml --out $(abspath $(IMAGE_OUT)) --tag $(IMAGE_TAG) \
	  --created "$$(git log -1 --format=%ct 2>/dev/null || echo 0)" \
	  --revision "$$(git rev-parse HEAD 2>/dev/null)" --version "$$(git describe --always --dirty 2>/dev/null)"

.PHONY: test-deploy
test-deploy: ## Check deploy/ with its tools required (systemd-analyze, promtool): image contents, unit, dashboard and alerts vs a live /metrics
	SENDGUARD_REQUIRE_DEPLOY_TOOLS=1 $(GO) test -count=1 -v ./internal/deploytest/

.PHONY: test-image-run
test-image-run: ## Run the image under podman and call it inside its network namespace (root; Debian's podman and runc)
	SENDGUARD_CONTAINER=1 SENDGUARD_REQUIRE_DEPLOY_TOOLS=1 $(GO) test -count=1 -v -run 'TestImageRuns' ./internal/deploytest/

.PHONY: test-browser
test-browser: ## Drive the console (/console/) in Debian's headless Chromium against the binary (chromedp; make browser-tools installs chromium)
	SENDGUARD_BROWSER=1 $(GO) test -count=1 -v -timeout 10m -run 'TestConsoleInBrowser' ./console/

.PHONY: console-screenshots
console-screenshots: ## Refresh the screenshots of the console in docs/console/ (runs test-browser)
	mkdir -p docs/console && SENDGUARD_BROWSER=1 SENDGUARD_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -timeout 10m -run 'TestConsoleInBrowser' ./console/

.PHONY: browser-tools
browser-tools: ## Install Debian's chromium when missing, for test-browser (root or sudo); never a downloaded browser
	@command -v chromium >/dev/null || { sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

.PHONY: deploy-tools
deploy-tools: ## Install from Debian, when missing, what test-deploy and test-image-run use: promtool (prometheus), podman, runc (root)
	@missing=""; for t in promtool:prometheus podman:podman runc:runc systemd-analyze:systemd; do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing:$$missing"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	@promtool --version 2>&1 | head -1; podman --version; runc --version | head -1; systemd-analyze --version | head -1
