# Shared by scripts/demo and scripts/test: install missing Debian packages,
# then configure and build with CMake. Source it; do not run it.
set -euo pipefail

CLIO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="$(nproc 2>/dev/null || echo 2)"

# Packages every build needs.
CLIO_BUILD_PACKAGES=(cmake ninja-build g++ pkg-config libcivetweb-dev libsqlite3-dev
  nlohmann-json3-dev libre2-dev doctest-dev libssl-dev libhiredis-dev)

log() { printf '\033[1m[clio]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[clio] error:\033[0m %s\n' "$*" >&2; exit 1; }

# ensure_packages PKG...: apt-get installs the ones not installed yet.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "packages missing (${missing[*]}) and not root; run as root or install them: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get update -qq >/tmp/clio-apt.log 2>&1; then
    tail -n 20 /tmp/clio-apt.log >&2
    die "apt-get update failed (see above); cannot install: ${missing[*]}"
  fi
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/clio-apt.log 2>&1; then
    tail -n 20 /tmp/clio-apt.log >&2
    die "apt-get install failed (see above) for: ${missing[*]}"
  fi
}

# configure_and_build BUILD_DIR [cmake args...] -- [targets...]
# Quiet: a "[clio]" line per step and, on a terminal, one progress line
# rewritten in place. CMake's and the compiler's full output go to
# BUILD_DIR.configure.log and BUILD_DIR.build.log; a failed step shows its log
# (a failed build shows the compiler's messages, without the progress lines).
configure_and_build() {
  local dir="$1"; shift
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targets=("$@")
  log "configuring ${dir#"$CLIO_ROOT"/}"
  cmake -S "$CLIO_ROOT" -B "$dir" -G Ninja "${args[@]}" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2; die "cmake configure failed for $dir (log: $dir.configure.log)"; }
  log "building ${dir#"$CLIO_ROOT"/} ${targets[*]:-(all)}"
  local t=()
  [ ${#targets[@]} -gt 0 ] && t=(--target "${targets[@]}")
  build_quietly "$dir" "${t[@]}"
}

# build_quietly BUILD_DIR [cmake --build args...]: see configure_and_build.
build_quietly() {
  local dir="$1"; shift
  local build_log="$dir.build.log" line status=0 warnings
  : >"$build_log"
  cmake --build "$dir" -j "$JOBS" "$@" 2>&1 | while IFS= read -r line; do
    printf '%s\n' "$line" >>"$build_log"
    if [ -t 2 ] && [[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]]; then
      printf '\r\033[K[clio] %s/%s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" >&2
    fi
  done || status=$?
  if [ -t 2 ]; then printf '\r\033[K' >&2; fi
  if [ "$status" -ne 0 ]; then
    grep -v '^\[[0-9]*/[0-9]*\] ' "$build_log" >&2 || true
    die "build failed in $dir (full log: $build_log)"
  fi
  warnings="$(grep -c 'warning:' "$build_log" || true)"
  [ "$warnings" -eq 0 ] || log "$warnings compiler warning(s): see $build_log"
}
