# eventstream-operator — see README.md. `make help` lists the targets.

# Tool versions (installed into ./bin with `go install` from the Go module proxy).
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
NATS_SERVER_VERSION ?= v2.15.2
HELM_VERSION ?= v3.22.0
# Debian bookworm packages (hack/debian-tool.sh: apt-get download, unpacked
# into ~/.cache, linked into ./bin): Prometheus and promtool for the
# dashboard/alert checks, gnuplot for docs/img only.
PROMETHEUS_DEB_VERSION ?= 2.42.0+ds-5+b6
GNUPLOT_DEB_VERSION ?= 5.4.4+dfsg1-2+b2
LIBLUA_DEB_VERSION ?= 5.4.4-3+deb12u1
# Kubernetes version of envtest's kube-apiserver (built by hack/envtest/build.sh).
ENVTEST_K8S_VERSION ?= 1.37.2

IMG ?= ghcr.io/giia/eventstream-operator:dev

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
NATS_SERVER ?= $(LOCALBIN)/nats-server

# The repository's Go modules: the operator (the root) and the client library,
# which is its own module (pkg/events/go.mod; the root requires it through a
# replace to the directory). `go ... ./...` at the root does not enter a nested
# module, so every target that builds or checks Go runs once in each; a failure
# in one still lets the other run, and fails the target.
GO_MODULES ?= . pkg/events
in-modules = rc=0; for m in $(GO_MODULES); do echo "== module $$m: $(1)"; (cd "$$m" && $(1)) || rc=1; done; exit $$rc

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart-crds.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt (every module).
	@$(call in-modules,go fmt ./...)

.PHONY: vet
vet: ## go vet (every module).
	@$(call in-modules,go vet ./...)

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (every module, the root's .golangci.yml).
	@$(call in-modules,$(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...)

.PHONY: test
test: manifests generate fmt vet envtest nats-server helm prometheus ## Run every unit and controller test in every module (envtest, embedded NATS, bin/nats-server).
	export KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" NATS_SERVER="$(NATS_SERVER)"; \
	$(call in-modules,go test ./... -count=1 -timeout 20m)

.PHONY: check-generated
check-generated: manifests generate ## Fail when generated files differ from what is committed, or a go.mod/go.sum is not tidy.
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }
	@($(call in-modules,go mod tidy -diff)) || { echo "a go.mod or go.sum is not tidy: run 'go mod tidy' in that module and commit"; exit 1; }

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/manager.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(LOCALBIN)/manager ./cmd

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the current kubeconfig (NATS_URL, default nats://127.0.0.1:4222).
	go run ./cmd --nats-url "$${NATS_URL:-nats://127.0.0.1:4222}"

##@ Dependencies

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest from the Go module proxy (reused when present).
	@hack/envtest/build.sh >/dev/null

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: nats-server
nats-server: $(NATS_SERVER) ## Install the nats-server binary (end-to-end tests, local stack).
$(NATS_SERVER): $(LOCALBIN)
	$(call go-install-tool,$(NATS_SERVER),github.com/nats-io/nats-server/v2,$(NATS_SERVER_VERSION))

.PHONY: prometheus
prometheus: $(LOCALBIN) ## Install prometheus and promtool (Debian package, pinned; cached outside the repository).
	@hack/debian-tool.sh prometheus $(PROMETHEUS_DEB_VERSION) $(LOCALBIN) prometheus promtool

.PHONY: gnuplot
gnuplot: $(LOCALBIN) ## Install gnuplot (Debian gnuplot-nox, pinned) for the pictures in docs/img; not used by the tests.
	@LIBS="liblua5.4-0=$(LIBLUA_DEB_VERSION)" hack/debian-tool.sh gnuplot-nox $(GNUPLOT_DEB_VERSION) $(LOCALBIN) gnuplot-nox=gnuplot

# go-install-tool installs a versioned binary ($1-$3) and links $1 to it, so
# that changing a version above reinstalls the tool.
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$$(basename "$(1)-$(3)")" ] || { \
set -e; \
package=$(2)@$(3) ; \
echo "Installing $${package}" ; \
rm -f "$(1)" ; \
GOBIN="$(LOCALBIN)" go install $${package} ; \
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ; \
ln -sf "$$(basename "$(1)-$(3)")" "$(1)" ; \
}
endef

##@ Packaging and local stack

HELM ?= $(LOCALBIN)/helm
CHART_DIR ?= charts/eventstream-operator

.PHONY: helm
helm: $(HELM) ## Install helm into bin/.
$(HELM): $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

.PHONY: chart-crds
chart-crds: ## Copy the CRDs and the manager RBAC rules from config/ into the Helm chart.
	hack/sync-chart-crds.sh

.PHONY: helm-lint
helm-lint: helm chart-crds ## Lint the Helm charts (operator: defaults and the optional features; default streams).
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) lint --strict $(CHART_DIR) --set 'watchNamespaces={a,b}' \
		--set metrics.serviceMonitor.enabled=true --set metrics.certSecret=metrics-cert --set networkPolicy.enabled=true \
		--set nats.credentialsSecret.name=nats-creds --set nats.tls.secret=nats-tls
	$(HELM) lint --strict $(CHART_DIR) --set metrics.secure=false --set replicaCount=1
	$(HELM) lint --strict $(CHART_DIR) --set grafanaDashboard.enabled=true --set prometheusRule.enabled=true
	$(HELM) lint --strict charts/eventstream-streams
	$(HELM) lint --strict charts/eventstream-streams --set deletionPolicy=Delete --set namespace=apps

.PHONY: build-installer
build-installer: ## Write dist/install.yaml (CRDs, RBAC, manager) with the image set to IMG.
	@rm -rf dist/.kustomize && mkdir -p dist/.kustomize
	@img='$(IMG)'; \
	case "$$img" in \
	*@*) name=$${img%@*}; ref="digest: $${img#*@}" ;; \
	*) last=$${img##*/}; \
	   if [[ "$$last" == *:* ]]; then name=$${img%:*}; ref="newTag: $${img##*:}"; else name=$$img; ref="newTag: latest"; fi ;; \
	esac; \
	printf 'resources:\n- ../../config/default\nimages:\n- name: ghcr.io/giia/eventstream-operator\n  newName: %s\n  %s\n' "$$name" "$$ref" \
		> dist/.kustomize/kustomization.yaml
	kubectl kustomize dist/.kustomize > dist/install.yaml
	@rm -rf dist/.kustomize
	@echo "wrote dist/install.yaml (image $(IMG))"

.PHONY: docker-build
docker-build: ## Build the manager image IMG with docker.
	docker build -t $(IMG) .

.PHONY: run-local
run-local: ## Run the whole stack locally: API server + etcd (envtest), nats-server, the manager, the sample streams.
	hack/run-local.sh

##@ Benchmarks

BENCH_ARGS ?=

.PHONY: bench
bench: build nats-server envtest ## Benchmark the operator (envtest API server, bin/nats-server, bin/manager) and the library; e.g. BENCH_ARGS="-quick -runs 1".
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" go run ./test/bench/operator $(BENCH_ARGS)

##@ Fuzzing

# Each fuzz target runs for a fixed number of executions (-fuzztime=Nx), sized
# to about 20 s on an idle 2-core machine (docs/reliability.md row 8), not for a
# fixed time: Go 1.26's fuzz coordinator can race its own -fuzztime deadline on
# a loaded machine and fail with "context deadline exceeded" and no failing
# input. With a count, a loaded machine only takes longer; a real finding (a
# panic, a failing input written to testdata/fuzz) still fails.
# FUZZTIME=30s fuzzes every target for a fixed time instead (local runs).
FUZZTIME ?=
# $(1) is the package directory; packages under pkg/events are in the
# library's own module, so go test runs there.
fuzz = $(if $(filter pkg/events pkg/events/%,$(1)),cd pkg/events && go test $(patsubst pkg/events%,.%,$(1))/,go test ./$(1)/) -run '^$$' -fuzz '^$(2)$$' -fuzztime $(or $(FUZZTIME),$(3))

.PHONY: test-fuzz
test-fuzz: ## Run every fuzz target for its execution budget (event decoder, spec → JetStream translation).
	$(call fuzz,pkg/events,FuzzDecode,170000x)
	$(call fuzz,internal/controller,FuzzStreamConfig,8000x)
	$(call fuzz,internal/controller,FuzzConsumerConfig,7500x)
	$(call fuzz,internal/controller,FuzzKeyValueConfig,5000x)
	$(call fuzz,internal/controller,FuzzObjectStoreConfig,4000x)

##@ Chaos

.PHONY: test-chaos
test-chaos: build nats-server envtest ## Fault-injection tests: nats-server, the manager, the leader and a consumer killed mid-work, NATS and the API server down (test/chaos).
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" NATS_SERVER="$(NATS_SERVER)" go test -tags chaos ./test/chaos/ -count=1 -v -timeout 20m

##@ End-to-end

.PHONY: test-e2e
test-e2e: build nats-server helm prometheus envtest build-installer ## End-to-end: helm install the chart into envtest's API server, run bin/manager with the chart's RBAC against bin/nats-server, apply config/samples.
	KUBEBUILDER_ASSETS="$$(hack/envtest/build.sh)" go test -tags e2e ./test/e2e/ -count=1 -v -timeout 20m
