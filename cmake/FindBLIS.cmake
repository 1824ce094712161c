# FindBLIS
# --------
# Debian's BLIS ships neither blis.pc nor a CMake package; the header and
# library live behind the alternatives system
# (/usr/include/x86_64-linux-gnu/blis.h, libblis.so). Finds both and defines
#   BLIS_FOUND, BLIS_INCLUDE_DIR, BLIS_LIBRARY, and the imported target BLIS::BLIS.
# Set BLIS_ROOT to search a custom installation first.

find_path(BLIS_INCLUDE_DIR NAMES blis.h
  HINTS ${BLIS_ROOT} ENV BLIS_ROOT
  PATH_SUFFIXES include include/blis blis)
find_library(BLIS_LIBRARY NAMES blis blis-mt
  HINTS ${BLIS_ROOT} ENV BLIS_ROOT
  PATH_SUFFIXES lib lib64)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BLIS REQUIRED_VARS BLIS_LIBRARY BLIS_INCLUDE_DIR)

if(BLIS_FOUND AND NOT TARGET BLIS::BLIS)
  add_library(BLIS::BLIS UNKNOWN IMPORTED)
  set_target_properties(BLIS::BLIS PROPERTIES
    IMPORTED_LOCATION "${BLIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BLIS_INCLUDE_DIR}")
endif()
mark_as_advanced(BLIS_INCLUDE_DIR BLIS_LIBRARY)
