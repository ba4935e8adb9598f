#!/usr/bin/env bash
# A real kube-apiserver + etcd on 127.0.0.1 for the Kubernetes-mode tests, built from source with the
# machine's Go (nothing prebuilt is downloaded) into a cache outside the repository, as
# controller-runtime's envtest runs them: static token, RBAC, serving certs, a service-account key.
#
#   scripts/kube-test-env.sh build            build (once; later calls reuse the cache)
#   scripts/kube-test-env.sh start DIR [--gc] start etcd + apiserver; writes DIR/kubeconfig, DIR/env;
#                                             --gc: also kube-controller-manager's garbage collector
#   scripts/kube-test-env.sh stop DIR         stop what start DIR started
#   scripts/kube-test-env.sh restart-apiserver DIR
#                                             stop the API server and start it again on its port (its
#                                             watch cache starts empty: a watch from before is 410 Gone)
#
# GRAYLANE_KUBE_CACHE (default ~/.cache/graylane-kube) holds the binaries and Go's module cache.
set -euo pipefail

KUBE_VERSION=v1.34.2
STAGING_VERSION=v0.34.2
ETCD_VERSION=v3.6.5
CACHE="${GRAYLANE_KUBE_CACHE:-$HOME/.cache/graylane-kube}"
BIN="$CACHE/bin"

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "kube-test-env: $1 is missing; $2" >&2
    exit 1
  }
}

# Builds k8s.io/kubernetes/cmd/$1 in a module directory of its own.
build_kube_command() {
  local command="$1"
  [[ -x "$BIN/$command" ]] && return 0
  local dir="$CACHE/src/$command"
  mkdir -p "$dir"
  (
    cd "$dir"
    [[ -f go.mod ]] || go mod init "graylane.local/$command" >/dev/null 2>&1
    # k8s.io/kubernetes points its staging modules at ./staging; as a dependency each needs a version.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk '{print $1}' | sort -u | while read -r module; do
      go mod edit -replace "$module=$module@$STAGING_VERSION"
    done
    go get "k8s.io/kubernetes/cmd/$command@$KUBE_VERSION"
    go build -o "$BIN/$command.tmp" "k8s.io/kubernetes/cmd/$command" && mv "$BIN/$command.tmp" "$BIN/$command"
  )
}

build() {
  need go "install Go (Debian: apt-get install -y golang, or the machine's Go toolchain)"
  need openssl "apt-get install -y openssl"
  mkdir -p "$BIN"
  if [[ ! -x "$BIN/etcd" ]]; then
    local dir="$CACHE/src/etcd"
    mkdir -p "$dir" && cd "$dir"
    [[ -f go.mod ]] || go mod init graylane.local/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$BIN/etcd.tmp" "$BIN/etcd"
  fi
  build_kube_command kube-apiserver
  # Only its garbage collector runs (start --gc): what deletes a Release's canaries in a cluster.
  build_kube_command kube-controller-manager
  echo "kube-test-env: $BIN/etcd $BIN/kube-apiserver $BIN/kube-controller-manager"
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

start() {
  local dir="$1" gc="${2:-}"
  [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/etcd" ]] || build >&2
  mkdir -p "$dir/etcd" "$dir/certs"
  local etcd_port etcd_peer api_port token
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  token=$(openssl rand -hex 16)
  openssl genrsa -out "$dir/certs/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/certs/sa.key" -pubout -out "$dir/certs/sa.pub" 2>/dev/null
  echo "$token,admin,admin,system:masters" >"$dir/tokens.csv"
  "$BIN/etcd" --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  echo "ETCD_PORT=$etcd_port API_PORT=$api_port" >"$dir/ports"
  launch_apiserver "$dir"
  cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster: { server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true }
users:
  - name: admin
    user: { token: "$token" }
contexts:
  - name: test
    context: { cluster: test, user: admin, namespace: default }
current-context: test
KUBECONFIG
  if wait_ready "$dir"; then
    if [[ "$gc" == "--gc" ]]; then
      # Only the garbage collector: with no kubelet, the other controllers (Deployments, ReplicaSets)
      # would fight the tests that stand in for them.
      "$BIN/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --controllers garbagecollector \
        --leader-elect=false --secure-port 0 --use-service-account-credentials=false \
        >"$dir/controller-manager.log" 2>&1 &
      echo $! >"$dir/controller-manager.pid"
    fi
    echo "KUBE_SERVER=https://127.0.0.1:$api_port" >"$dir/env"
    echo "KUBE_TOKEN=$token" >>"$dir/env"
    echo "ETCD_URL=http://127.0.0.1:$etcd_port" >>"$dir/env"
    echo "kube-test-env: ready at https://127.0.0.1:$api_port ($dir/kubeconfig)"
    return 0
  fi
  echo "kube-test-env: the API server did not become ready; see $dir/apiserver.log" >&2
  stop "$dir"
  return 1
}

# The API server on the ports start chose (in DIR/ports), logging to DIR/apiserver.log.
launch_apiserver() {
  local dir="$1" ETCD_PORT API_PORT
  eval "$(cat "$dir/ports")"
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --cert-dir "$dir/certs" \
    --secure-port "$API_PORT" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --token-auth-file "$dir/tokens.csv" --authorization-mode RBAC \
    --service-account-key-file "$dir/certs/sa.pub" --service-account-signing-key-file "$dir/certs/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount --allow-privileged=true >>"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"
}

wait_ready() {
  local dir="$1" token ETCD_PORT API_PORT
  eval "$(cat "$dir/ports")"
  token=$(cut -d, -f1 "$dir/tokens.csv")
  for _ in $(seq 1 300); do
    if curl -sk -H "Authorization: Bearer $token" "https://127.0.0.1:$API_PORT/readyz" 2>/dev/null | grep -q '^ok$'; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

restart_apiserver() {
  local dir="$1" pid
  pid=$(cat "$dir/apiserver.pid")
  kill "$pid" 2>/dev/null || true
  # The port must be free before the new one binds it.
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  launch_apiserver "$dir"
  wait_ready "$dir" || {
    echo "kube-test-env: the API server did not become ready again; see $dir/apiserver.log" >&2
    return 1
  }
  echo "kube-test-env: the API server is back"
}

stop() {
  local dir="$1"
  for name in controller-manager apiserver etcd; do
    if [[ -f "$dir/$name.pid" ]]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
}

case "${1:-}" in
  build) build ;;
  start) start "${2:?start DIR}" "${3:-}" ;;
  stop) stop "${2:?stop DIR}" ;;
  restart-apiserver) restart_apiserver "${2:?restart-apiserver DIR}" ;;
  *)
    echo "usage: $0 build | start DIR | stop DIR | restart-apiserver DIR" >&2
    exit 2
    ;;
esac
