# Every third-party library a Clio module links, one clio_dependency() line
# each: how CMake finds it, what clio.pc says about it (a pkg-config module,
# or link flags for a library that ships no .pc file) and the Debian 12
# package with its headers. Included by the build (CMakeLists.txt, which
# finds each with REQUIRED and fills clio.pc and the -dev package's Depends
# from these lines) and by the installed clioConfig.cmake (which finds each
# again on the user's machine). A new dependency is one more line here.
#
#   clio_dependency(<name> FIND_PACKAGE <find_package arguments...> | PKG_CONFIG <module>
#                   [PC <pkg-config module>] [PC_LIBS <flags>...] [DEB <package>])
#
# A PKG_CONFIG dependency becomes the imported target PkgConfig::<name>.
clio_dependency(Threads FIND_PACKAGE Threads PC_LIBS -pthread)
clio_dependency(CivetWeb FIND_PACKAGE CivetWeb PC_LIBS -lcivetweb DEB "libcivetweb-dev (>= 1.15)")
clio_dependency(RE2 PKG_CONFIG re2 PC re2 DEB libre2-dev)
clio_dependency(nlohmann_json FIND_PACKAGE nlohmann_json 3.10 DEB "nlohmann-json3-dev (>= 3.10)")
clio_dependency(SQLite3 FIND_PACKAGE SQLite3 PC sqlite3 DEB libsqlite3-dev)
clio_dependency(OpenSSL FIND_PACKAGE OpenSSL PC libcrypto DEB libssl-dev)
clio_dependency(HIREDIS PKG_CONFIG hiredis PC hiredis DEB libhiredis-dev)
