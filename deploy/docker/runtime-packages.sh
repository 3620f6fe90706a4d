#!/bin/bash
# Prints the Debian packages that hold the shared libraries the given binaries load, one per
# line: the runtime image installs exactly these (Dockerfile), and the manifest test checks the
# list against the binaries it built. Fails if a library belongs to no package.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
for bin in "$@"; do
  ldd "$bin" | awk '/=> \//{print $3} /^\s*\/lib/{print $1}'
done | sort -u | while read -r lib; do
  # usrmerge: the loader may report /usr/lib/... for a file dpkg knows as /lib/... or back.
  real=$(readlink -f "$lib")
  pkg=""
  for path in "$lib" "$real" "${lib#/usr}" "${real#/usr}" "/usr$lib" "/usr$real"; do
    if pkg=$(dpkg-query -S "$path" 2>/dev/null); then break; fi
    pkg=""
  done
  [ -n "$pkg" ] || { echo "runtime-packages: no package holds $lib" >&2; exit 1; }
  echo "${pkg%%:*}"
done | sort -u
