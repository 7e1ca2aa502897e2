# The FAISS C API as a static library.
#
# Debian's libfaiss-dev ships the C API headers and FAISS itself (static libfaiss.a) but not
# the compiled C API. Unless the system has a libfaiss_c, we fetch the matching FAISS source
# release from Debian's package archive (checked against the checksum in Debian's .dsc) and
# compile its c_api/ folder. Nothing of it is kept in this repository.

find_package(OpenMP REQUIRED)
find_package(faiss CONFIG REQUIRED)
find_package(BLAS REQUIRED)

set(CP_FAISS_VERSION 1.7.3)
set(CP_FAISS_SHA256 3e4fac26d8c9e9008ecea4ae5fc414c658998fce4ba75835058b1a71d3516002)
set(CP_FAISS_URL
    "http://deb.debian.org/debian/pool/main/f/faiss/faiss_${CP_FAISS_VERSION}.orig.tar.gz"
    CACHE STRING "Where the FAISS source release is fetched from")

find_library(CP_SYSTEM_FAISS_C NAMES faiss_c)
if(CP_SYSTEM_FAISS_C)
  message(STATUS "FAISS C API: system library ${CP_SYSTEM_FAISS_C}")
  add_library(cp_faiss_c INTERFACE)
  target_link_libraries(cp_faiss_c INTERFACE ${CP_SYSTEM_FAISS_C} faiss OpenMP::OpenMP_CXX ${BLAS_LIBRARIES})
  return()
endif()

# A shared cache outside the build tree so that several build folders fetch it once.
if(DEFINED ENV{CP_CACHE_DIR})
  set(cp_cache "$ENV{CP_CACHE_DIR}")
elseif(DEFINED ENV{HOME})
  set(cp_cache "$ENV{HOME}/.cache/colplaid")
else()
  set(cp_cache "${CMAKE_BINARY_DIR}/_deps")
endif()
set(cp_tarball "${cp_cache}/faiss_${CP_FAISS_VERSION}.orig.tar.gz")
if(NOT EXISTS "${cp_tarball}")
  message(STATUS "Fetching the FAISS ${CP_FAISS_VERSION} source release from ${CP_FAISS_URL}")
  file(DOWNLOAD "${CP_FAISS_URL}" "${cp_tarball}.part"
       EXPECTED_HASH SHA256=${CP_FAISS_SHA256} STATUS cp_dl_status TLS_VERIFY ON)
  list(GET cp_dl_status 0 cp_dl_code)
  if(NOT cp_dl_code EQUAL 0)
    file(REMOVE "${cp_tarball}.part")
    message(FATAL_ERROR "Could not fetch ${CP_FAISS_URL}: ${cp_dl_status}. "
                        "Place the file at ${cp_tarball} to build offline.")
  endif()
  file(RENAME "${cp_tarball}.part" "${cp_tarball}")
endif()
file(SHA256 "${cp_tarball}" cp_actual_sha)
if(NOT cp_actual_sha STREQUAL CP_FAISS_SHA256)
  message(FATAL_ERROR "${cp_tarball} has checksum ${cp_actual_sha}, expected ${CP_FAISS_SHA256}")
endif()

set(cp_faiss_src "${CMAKE_BINARY_DIR}/_deps/faiss-${CP_FAISS_VERSION}")
if(NOT EXISTS "${cp_faiss_src}/c_api/Clustering_c.cpp")
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/_deps")
  file(ARCHIVE_EXTRACT INPUT "${cp_tarball}" DESTINATION "${CMAKE_BINARY_DIR}/_deps"
       PATTERNS "faiss-${CP_FAISS_VERSION}/c_api/*")
endif()

file(GLOB_RECURSE cp_faiss_c_sources "${cp_faiss_src}/c_api/*.cpp")
list(FILTER cp_faiss_c_sources EXCLUDE REGEX "/gpu/")
add_library(cp_faiss_c STATIC ${cp_faiss_c_sources})
# Third-party code: compiled with its own defaults, never with our -Werror or sanitizers.
set_target_properties(cp_faiss_c PROPERTIES CXX_STANDARD 11 POSITION_INDEPENDENT_CODE ON)
target_compile_options(cp_faiss_c PRIVATE -w)
target_include_directories(cp_faiss_c PRIVATE "${cp_faiss_src}/c_api")
target_link_libraries(cp_faiss_c PUBLIC faiss OpenMP::OpenMP_CXX ${BLAS_LIBRARIES} stdc++ m)
