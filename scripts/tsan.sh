#!/bin/bash
# Builds EMS with ThreadSanitizer into BUILD_DIR (default build-tsan) and runs the test suite
# under it. Not part of `make test`: it adds about 8 minutes on two cores (the first time).
#
# absl::Mutex lives in Debian's libabsl_synchronization, built without TSan, so TSan would
# not see its locks and would report every access they guard. The script fetches that
# library's Debian source (same version as libabsl-dev, through a private apt list, leaving
# the system's apt configuration alone), builds it with TSan, and puts it first on the
# library path. Debian's gRPC stays uninstrumented: tests/tsan.supp says what that hides.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${1:-build-tsan}
JOBS=${JOBS:-2}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
ABSL_LIB="$BUILD/absl-tsan"

if [[ ! -e "$ABSL_LIB/libabsl_synchronization.so.20220623" ]]; then
  version=$(dpkg-query -W -f='${Version}' libabsl-dev)
  apt_dir="$BUILD/apt"
  mkdir -p "$apt_dir/lists/partial" "$BUILD/absl-src"
  # The system's Debian sources, as deb-src.
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > "$apt_dir/src.sources"
  apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir"
            -o "Dir::State::Lists=$apt_dir/lists" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$BUILD/absl-src" && apt-get "${apt_opts[@]}" source -qq "abseil=$version")
  src=$(find "$BUILD/absl-src" -maxdepth 1 -mindepth 1 -type d -name 'abseil-*' | head -1)
  cmake -S "$src" -B "$BUILD/absl-build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON -DCMAKE_CXX_FLAGS=-fsanitize=thread \
    -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
  cmake --build "$BUILD/absl-build" -j "$JOBS" --target libabsl_synchronization.so
  mkdir -p "$ABSL_LIB"
  cp -a "$BUILD"/absl-build/absl/synchronization/libabsl_{synchronization,graphcycles_internal}.so* \
    "$ABSL_LIB/"
fi

# -Wno-tsan: the directory's seqlock uses atomic_thread_fence, which TSan does not model
# (its readers are suppressed in tests/tsan.supp).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMS_BUILD_BENCHMARKS=OFF \
  -DEMS_BUILD_PYTHON=OFF -DCMAKE_C_FLAGS=-fsanitize=thread \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  >/dev/null
cmake --build "$BUILD" -j "$JOBS"

# A report fails its test (exit code 66). Left out: the RSS bound (TSan's shadow memory
# counts as the process's own) and the Python and kubectl suites (not built, or no C++).
cd "$BUILD"
LD_LIBRARY_PATH="$ABSL_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp report_signal_unsafe=0 second_deadlock_stack=1" \
  ctest --output-on-failure -j "$JOBS" \
  -E 'RssStaysWithinCapacity|deploy_k8s_test|admission_bound_test'
