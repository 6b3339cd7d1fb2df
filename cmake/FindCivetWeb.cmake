# Finds Debian's libcivetweb-dev (1.15) without its CMake config, whose
# civetweb::server target points at /usr/bin/civetweb from another package.
# Defines CivetWeb::civetweb (C API) and CivetWeb::civetweb-cpp (CivetServer).
find_path(CivetWeb_INCLUDE_DIR civetweb.h)
find_library(CivetWeb_LIBRARY civetweb)
find_library(CivetWeb_CPP_LIBRARY civetweb-cpp)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CivetWeb
  REQUIRED_VARS CivetWeb_LIBRARY CivetWeb_CPP_LIBRARY CivetWeb_INCLUDE_DIR)

if(CivetWeb_FOUND AND NOT TARGET CivetWeb::civetweb)
  add_library(CivetWeb::civetweb UNKNOWN IMPORTED)
  set_target_properties(CivetWeb::civetweb PROPERTIES
    IMPORTED_LOCATION "${CivetWeb_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CivetWeb_INCLUDE_DIR}")
  add_library(CivetWeb::civetweb-cpp UNKNOWN IMPORTED)
  set_target_properties(CivetWeb::civetweb-cpp PROPERTIES
    IMPORTED_LOCATION "${CivetWeb_CPP_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CivetWeb_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES CivetWeb::civetweb)
endif()
mark_as_advanced(CivetWeb_INCLUDE_DIR CivetWeb_LIBRARY CivetWeb_CPP_LIBRARY)
