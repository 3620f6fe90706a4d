#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of EMS from Debian 12 packages.
# Idempotent: packages already present are skipped. As root it runs apt-get; otherwise it
# prints the command to run.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ninja-build git ca-certificates
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  libabsl-dev libjemalloc-dev libnuma-dev liburing-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libxxhash-dev xxhash libspdlog-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libsqlite3-dev
  libssl-dev
  redis-server libhiredis-dev memcached libmemcached-dev
  python3 python3-dev python3-pybind11 python3-pytest python3-numpy
  gnuplot-nox clang-14 libclang-rt-14-dev procps curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

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
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The package starts redis-server and memcached as services; tests start their own on
# loopback ports, so the system ones are stopped to free memory and the default ports.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop redis-server memcached >/dev/null 2>&1 || true
fi
