# The Debian packages, made by CPack from the install rules of a static build
# (the default):
#   libclio-dev  headers, static libraries, the CMake package and clio.pc
#                (component dev); Depends: the -dev packages of
#                cmake/ClioDependencies.cmake
#   clio         the `clio` command (component cli); Depends: the runtime
#                libraries it links, found by dpkg-shlibdeps
#
#   cmake -S . -B build/package -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
#         -DCLIO_BUILD_TESTS=OFF -DCLIO_BUILD_EXAMPLES=OFF
#   cmake --build build/package && cpack --config build/package/CPackConfig.cmake -B build/package/deb
#
# A shared build would need a runtime library package as well; it is not
# packaged.
include_guard(GLOBAL)
if(NOT CLIO_INSTALL)
  return()
endif()
if(BUILD_SHARED_LIBS)
  message(STATUS "Debian packages are made from the static build only (BUILD_SHARED_LIBS is ON)")
  return()
endif()

set(CLIO_PACKAGE_MAINTAINER "Clio maintainers <maintainers@clio.invalid>" CACHE STRING
    "The Maintainer field of the Debian packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME clio)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${CLIO_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL dev cli)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libclio-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
list(JOIN CLIO_DEB_DEPENDS ", " CPACK_DEBIAN_DEV_PACKAGE_DEPENDS)
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "cmake, pkgconf")
# Each description's first line is the package's synopsis.
set(CPACK_DEBIAN_DEV_DESCRIPTION "Live traffic inspector for CivetWeb apps: development files
Clio captures every request of a CivetWeb app, matches it against the
queries admins subscribe to, and streams the matches to an admin console
served by the app itself. This package holds the headers, the static
libraries, the CMake package (find_package(clio)) and clio.pc.")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME clio)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_CLI_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_CLI_DESCRIPTION "Live traffic inspector for CivetWeb apps: the clio command
clio checks queries of Clio's query language (canonical form, or the
error with its position) and matches JSON-lines request records against
them.")

include(CPack)
