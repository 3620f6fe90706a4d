#!/bin/bash
# Prints the Debian packages that hold the shared libraries the given binaries load, one per
# line: the runtime image installs exactly these (Dockerfile), and deploy_k8s_test checks the
# list against the binaries it built. Fails if a library belongs to no package.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
mapfile -t libs < <(for bin in "$@"; do
  ldd "$bin" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}'
done | sort -u)
# usrmerge: the loader may report /usr/lib/... for a file dpkg knows as /lib/..., or back.
candidates() {
  local real
  real=$(readlink -f "$1")
  printf '%s\n' "$1" "$real" "${1#/usr}" "${real#/usr}" "/usr$1" "/usr$real"
}
declare -A owner
# One dpkg-query for every candidate path (a query per library takes seconds each).
while IFS= read -r line; do
  owner["${line#*: }"]=${line%%:*}
done < <(for lib in "${libs[@]}"; do candidates "$lib"; done | sort -u |
         xargs dpkg-query -S 2>/dev/null || true)
for lib in "${libs[@]}"; do
  pkg=""
  while IFS= read -r path; do
    if [ -n "${owner[$path]:-}" ]; then pkg=${owner[$path]}; break; fi
  done < <(candidates "$lib")
  [ -n "$pkg" ] || { echo "runtime-packages: no package holds $lib" >&2; exit 1; }
  echo "$pkg"
done | sort -u
