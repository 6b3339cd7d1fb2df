#!/usr/bin/env bash
# Clio as users get it. Each check builds examples/consumer against Clio,
# starts it on port 0, requests /hello and waits (bounded) until that request
# is in the consumer's api/records.
#
#   package_test.sh install       `cmake --install` of the Release build into a
#                                 temporary prefix; the consumer built with
#                                 find_package(clio), and with pkg-config (Makefile)
#   package_test.sh deb           cpack's .deb files: metadata and contents
#                                 (dpkg-deb), then `dpkg -x` into a scratch root,
#                                 its `clio` command run and the consumer built
#                                 against it with CMake and with pkg-config
#   package_test.sh subdirectory  the consumer adding this checkout with
#                                 add_subdirectory, as shared libraries: no
#                                 tests, examples, benchmarks or install rules
#                                 are configured; each library has its SONAME
#                                 and exports no internals; the consumer works
#
# Environment: CLIO_SOURCE_DIR (this checkout), CLIO_PACKAGE_BUILD_DIR (a
# Release build configured with CMAKE_INSTALL_PREFIX=/usr, as scripts/test
# makes), CLIO_WORK_DIR (scratch space, emptied first). Consumers are compiled
# without optimisation: they are checked, not measured.
set -euo pipefail

: "${CLIO_SOURCE_DIR:?}" "${CLIO_PACKAGE_BUILD_DIR:?}" "${CLIO_WORK_DIR:?}"
CONSUMER="$CLIO_SOURCE_DIR/examples/consumer"
VERSION="$(sed -n 's/^project(clio VERSION \([0-9.]*\).*/\1/p' "$CLIO_SOURCE_DIR/CMakeLists.txt")"
ADMIN_KEY="package-test-admin-key"
WORK="$CLIO_WORK_DIR/$1"
rm -rf "$WORK"
mkdir -p "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# run_quiet LOG CMD...: runs CMD with its output in LOG, shown if it fails.
run_quiet() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$* (log above)"
  fi
}

# build_with_cmake DIR [cmake args...]: configures and builds the consumer in DIR.
build_with_cmake() {
  local dir="$1"; shift
  run_quiet "$dir.configure.log" cmake -S "$CONSUMER" -B "$dir" -G Ninja "$@"
  run_quiet "$dir.build.log" cmake --build "$dir" -j 2
  [ -x "$dir/consumer" ] || fail "no consumer built in $dir"
}

# build_with_pkg_config DIR [PKG_CONFIG command]: builds the consumer with its Makefile.
build_with_pkg_config() {
  local dir="$1" pkg_config="${2:-pkg-config}"
  mkdir -p "$dir"
  run_quiet "$dir.build.log" make -C "$CONSUMER" OUT="$dir" CXXFLAGS=-O0 PKG_CONFIG="$pkg_config"
  [ -x "$dir/consumer" ] || fail "no consumer built in $dir"
}

# The consumer being checked; stopped on exit, whatever happened.
CONSUMER_PID=""
stop_consumer() {
  [ -n "$CONSUMER_PID" ] || return 0
  kill -TERM "$CONSUMER_PID" 2>/dev/null || true
  wait "$CONSUMER_PID" 2>/dev/null || true
}
trap stop_consumer EXIT

# check_consumer BINARY: the request to /hello appears in api/records, and
# SIGTERM stops the consumer with status 0.
check_consumer() {
  local bin="$1" out="$1.out" port="" records="" hello i
  : >"$out"
  CLIO_ADMIN_KEY="$ADMIN_KEY" "$bin" 0 :memory: >"$out" 2>&1 &
  CONSUMER_PID=$!
  for i in $(seq 200); do   # up to 20 s for the first line
    port="$(sed -n 's|^listening on http://127.0.0.1:\([0-9][0-9]*\)/$|\1|p' "$out")"
    [ -n "$port" ] && break
    kill -0 "$CONSUMER_PID" 2>/dev/null || { cat "$out" >&2; fail "$bin exited before listening"; }
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$out" >&2; fail "$bin printed no port"; }
  hello="$(curl -fsS --max-time 10 "http://127.0.0.1:$port/hello?from=package-test")" || fail "GET /hello failed"
  [ "$hello" = '{"hello":"world"}' ] || fail "GET /hello answered '$hello'"
  for i in $(seq 100); do   # up to 10 s for the dispatcher to take it in
    records="$(curl -fsS --max-time 10 -H "Authorization: Bearer $ADMIN_KEY" \
      "http://127.0.0.1:$port/_clio/api/records?q=path:/hello&limit=10")" || fail "GET api/records failed"
    if jq -e '.records | any(.method == "GET" and .path == "/hello" and .query == "from=package-test"
                             and .status_code == 200)' >/dev/null <<<"$records"; then
      break
    fi
    records=""
    sleep 0.1
  done
  [ -n "$records" ] || fail "the request never appeared in api/records"
  kill -TERM "$CONSUMER_PID"
  local status=0
  wait "$CONSUMER_PID" || status=$?
  CONSUMER_PID=""
  [ "$status" -eq 0 ] || { cat "$out" >&2; fail "$bin exited with status $status after SIGTERM"; }
  echo "ok: $bin served /hello on port $port and listed it in api/records"
}

# The package names in a .deb's Depends, one a line.
depends_of() {
  dpkg-deb -f "$1" Depends | tr ',|' '\n\n' | sed 's/^ *//; s/[ (].*//' | grep -v '^$'
}

# The Debian packages libclio-dev must depend on, from ClioDependencies.cmake.
expected_dev_depends() {
  sed -n 's/^clio_dependency(.* DEB "\{0,1\}\([a-z0-9.+-]*\).*/\1/p' "$CLIO_SOURCE_DIR/cmake/ClioDependencies.cmake"
}

check_install() {
  local prefix="$WORK/prefix"
  step "cmake --install into $prefix"
  run_quiet "$WORK/install.log" cmake --install "$CLIO_PACKAGE_BUILD_DIR" --prefix "$prefix"
  local pc
  pc="$(find "$prefix" -name clio.pc)"
  [ -n "$pc" ] || fail "no clio.pc installed"
  grep -qx "prefix=$prefix" "$pc" || fail "clio.pc does not name the prefix installed to: $(head -1 "$pc")"
  [ -z "$(find "$prefix/include" -name '*_impl.h' -o -name 'ast.h' -o -name 'token.h')" ] ||
    fail "private headers were installed"

  step "consumer with find_package(clio)"
  build_with_cmake "$WORK/cmake" -DCMAKE_PREFIX_PATH="$prefix"
  check_consumer "$WORK/cmake/consumer"

  step "consumer with pkg-config"
  PKG_CONFIG_PATH="$(dirname "$pc")" build_with_pkg_config "$WORK/pkg-config"
  check_consumer "$WORK/pkg-config/consumer"

  step "find_package(clio 1.0) is refused (same-major compatibility)"
  mkdir -p "$WORK/major"
  printf 'cmake_minimum_required(VERSION 3.25)\nproject(p LANGUAGES CXX)\nfind_package(clio 1.0 CONFIG REQUIRED)\n' \
    >"$WORK/major/CMakeLists.txt"
  if cmake -S "$WORK/major" -B "$WORK/major/build" -DCMAKE_PREFIX_PATH="$prefix" >"$WORK/major.log" 2>&1; then
    fail "find_package(clio 1.0) accepted version $VERSION"
  fi
  grep -q "version: $VERSION" "$WORK/major.log" || { cat "$WORK/major.log" >&2; fail "find_package(clio 1.0) failed for another reason"; }
}

check_deb() {
  step "cpack"
  run_quiet "$WORK/cpack.log" cpack --config "$CLIO_PACKAGE_BUILD_DIR/CPackConfig.cmake" -B "$WORK/deb"
  local dev cli
  dev="$(ls "$WORK"/deb/libclio-dev_*.deb)" || fail "no libclio-dev package"
  cli="$(ls "$WORK"/deb/clio_*.deb)" || fail "no clio package"

  step "metadata"
  [ "$(dpkg-deb -f "$dev" Package)" = libclio-dev ] || fail "dev package name"
  [ "$(dpkg-deb -f "$cli" Package)" = clio ] || fail "command package name"
  [ "$(dpkg-deb -f "$dev" Architecture)" = "$(dpkg --print-architecture)" ] || fail "dev architecture"
  [ "$(dpkg-deb -f "$dev" Version)" = "$VERSION" ] || fail "dev version is not $VERSION"
  local p dev_depends cli_depends
  dev_depends="$(depends_of "$dev")"
  cli_depends="$(depends_of "$cli")"
  for p in $(expected_dev_depends); do
    grep -qxF "$p" <<<"$dev_depends" || fail "libclio-dev does not depend on $p"
  done
  for p in libc6 libstdc++6 libre2-9; do
    grep -qxF "$p" <<<"$cli_depends" || fail "clio does not depend on $p"
  done
  echo "libclio-dev Depends: $(dpkg-deb -f "$dev" Depends)"
  echo "clio Depends: $(dpkg-deb -f "$cli" Depends)"

  step "contents"
  local dev_files cli_files libdir f
  dev_files="$(dpkg-deb -c "$dev" | awk '{print $6}')"
  cli_files="$(dpkg-deb -c "$cli" | awk '{print $6}')"
  libdir="usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
  for f in usr/include/clio/base/status.h usr/include/clio/console/inspector.h \
           usr/include/clio/middleware/capture.h usr/include/clio/channel/channel.h \
           usr/include/clio/matcher/matcher.h usr/include/clio/templates/assets.h \
           "$libdir/libclio_console.a" "$libdir/libclio_middleware.a" "$libdir/libclio_matcher.a" \
           "$libdir/libclio_channel.a" "$libdir/libclio_templates.a" \
           "$libdir/cmake/clio/clioConfig.cmake" "$libdir/cmake/clio/clioConfigVersion.cmake" \
           "$libdir/cmake/clio/clioTargets.cmake" "$libdir/cmake/clio/FindCivetWeb.cmake" \
           "$libdir/cmake/clio/ClioDependencies.cmake" "$libdir/pkgconfig/clio.pc"; do
    grep -qx "./$f" <<<"$dev_files" || fail "libclio-dev lacks /$f"
  done
  ! printf '%s\n%s\n' "$dev_files" "$cli_files" | grep -vx -e '\./' -e '\./usr/.*' || fail "files outside /usr"
  ! grep -E '(_impl|/ast|/token)\.h$|/bin/' <<<"$dev_files" || fail "libclio-dev holds private headers or programs"
  [ "$(grep -v '/$' <<<"$cli_files")" = "./usr/bin/clio" ] || fail "clio holds more than usr/bin/clio: $cli_files"

  step "dpkg -x into a scratch root"
  local root="$WORK/root"
  dpkg -x "$dev" "$root"
  dpkg -x "$cli" "$root"
  local canonical
  canonical="$("$root/usr/bin/clio" check 'status:5xx wall > 1s')" || fail "clio check failed"
  [ "$canonical" = "status_code:5xx and wall_time > 1000" ] || fail "clio check printed '$canonical'"
  grep -qx "prefix=/usr" "$root/$libdir/pkgconfig/clio.pc" || fail "clio.pc in the package is not for /usr"

  step "consumer against the scratch root, with find_package(clio)"
  build_with_cmake "$WORK/cmake" -DCMAKE_PREFIX_PATH="$root/usr"
  grep -q "$root/$libdir/libclio_console.a" "$WORK/cmake/build.ninja" || fail "not linked with the scratch root's libraries"
  check_consumer "$WORK/cmake/consumer"

  step "consumer against the scratch root, with pkg-config"
  PKG_CONFIG_PATH="$root/$libdir/pkgconfig" \
    build_with_pkg_config "$WORK/pkg-config" "pkg-config --define-variable=prefix=$root/usr"
  check_consumer "$WORK/pkg-config/consumer"
}

check_subdirectory() {
  step "consumer with add_subdirectory($CLIO_SOURCE_DIR), shared libraries"
  local dir="$WORK/cmake"
  build_with_cmake "$dir" -DCLIO_SOURCE_DIR="$CLIO_SOURCE_DIR" -DBUILD_SHARED_LIBS=ON
  local targets
  targets="$(cmake --build "$dir" --target help)"
  ! grep -E '_tests|clio_demo|clio_chat|_bench|fuzzer|capture_overhead|e2e_latency' <<<"$targets" ||
    fail "a subproject build configured tests, examples or benchmarks"
  ! grep -qx 'install: phony' <<<"$targets" || fail "a subproject build has install rules"

  step "shared libraries: SONAMEs and exported symbols"
  local module lib soname exported
  for module in matcher templates middleware channel console; do
    lib="$dir/clio/$module/libclio_$module.so"
    soname="$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')"
    [ "$soname" = "libclio_$module.so.0" ] || fail "$lib has SONAME '$soname'"
    # Clio's own symbols (instantiations of std templates are the compiler's business).
    exported="$(nm -D --defined-only -C "$lib" | cut -d' ' -f3- | grep '^clio::')" ||
      fail "$lib exports nothing of Clio"
    ! grep -E '^clio::.*(::Impl::|Matcher::State::|::internal::|::text::|TokenSigner|AdminAuth|Parser::|base64url|hmac_sha256)' <<<"$exported" ||
      fail "$lib exports internals (above)"
  done
  # (grep -q on a variable: on a pipe it would stop the writer early, and pipefail would see that)
  exported="$(nm -D --defined-only -C "$dir/clio/console/libclio_console.so")"
  grep -q ' clio::console::Inspector::create(' <<<"$exported" || fail "libclio_console.so does not export Inspector::create"
  local needed
  needed="$(readelf -d "$dir/consumer")"
  grep -q 'NEEDED.*\[libclio_console.so.0\]' <<<"$needed" || fail "the consumer is not linked to libclio_console.so.0"
  check_consumer "$dir/consumer"
}

case "$1" in
  install) check_install ;;
  deb) check_deb ;;
  subdirectory) check_subdirectory ;;
  *) fail "unknown check '$1' (install, deb, subdirectory)" ;;
esac
echo "PASS: $1"
