# Dependency lookup: every library comes from a Debian 12 -dev package, found
# with pkg-config. A missing one stops the configure step with the package name
# to install (scripts/install-deps installs them all).
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run scripts/install-deps)")
endif()

# gdx_require_pkg(PREFIX module debian-package) -> imported target gdx::PREFIX
function(gdx_require_pkg prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "missing library '${module}': apt-get install ${debpkg} (or run scripts/install-deps)")
  endif()
  add_library(gdx::${prefix} ALIAS PkgConfig::${prefix})
  message(STATUS "found ${module} ${${prefix}_VERSION}")
endfunction()

# For libraries that ship no .pc file (http-parser): header + library.
function(gdx_require_header prefix header lib debpkg)
  find_path(${prefix}_INCLUDE_DIR ${header})
  find_library(${prefix}_LIBRARY ${lib})
  if(NOT ${prefix}_INCLUDE_DIR OR NOT ${prefix}_LIBRARY)
    message(FATAL_ERROR "missing library '${lib}' (${header}): apt-get install ${debpkg} (or run scripts/install-deps)")
  endif()
  add_library(gdx_${prefix} INTERFACE)
  target_include_directories(gdx_${prefix} INTERFACE ${${prefix}_INCLUDE_DIR})
  target_link_libraries(gdx_${prefix} INTERFACE ${${prefix}_LIBRARY})
  add_library(gdx::${prefix} ALIAS gdx_${prefix})
endfunction()
