# hellocontainer.m4 -- configure side of `make container` (the make side is container.am).
#
# Copy this file into your project's m4/ directory and container.am next to your top-level
# Makefile.am; README.md of the hello example lists the lines to add.
#
# serial 3

# HELLOCONTAINER_INIT([BINARY])
# -----------------------------
# BINARY: the program's installed path, as a make expression (default: $(bindir)/$(PACKAGE)).
# `make container` installs into a staging root and packages BINARY from there, so the image holds
# exactly what `make install` installs.
#
# Substitutes:
#   HELLOCONTAINER          the packager (found on PATH; HELLOCONTAINER=/path overrides)
#   HELLOCONTAINER_FLAGS    extra `hellocontainer build' flags (precious, e.g. "--tag 1.0")
#   HELLOCONTAINER_CFLAGS   prefix maps that keep build directories out of objects, and
#                           -ffunction-sections -fdata-sections (unless --disable-size-flags)
#   HELLOCONTAINER_LDFLAGS  -static (unless --disable-static-binary), -Wl,--gc-sections and
#                           -Wl,-z,noseparate-code (unless --disable-size-flags)
#   HELLOCONTAINER_BINARY, HELLOCONTAINER_OUTPUT (hellocontainer), HELLOCONTAINER_TAGS (latest)
#   HELLOCONTAINER_DISTCHECK_CONFIGURE_FLAGS  for AM_DISTCHECK_CONFIGURE_FLAGS
#   host_cpu (via AC_CANONICAL_HOST): container.am passes it as --arch; the packager alone maps
#   it to an OCI platform, so nothing here knows about architectures.
# Makefile.am may override any of them by assigning the variable.
AC_DEFUN([HELLOCONTAINER_INIT],
[AC_REQUIRE([AC_CANONICAL_HOST])dnl
AC_REQUIRE([AC_PROG_CC])dnl
AC_ARG_VAR([HELLOCONTAINER], [OCI image packager run by `make container'])
AC_ARG_VAR([HELLOCONTAINER_FLAGS], [extra flags for `hellocontainer build'])
AC_ARG_ENABLE([static-binary],
  [AS_HELP_STRING([--disable-static-binary],
    [link dynamically (the image then lacks the C library the program needs)])],
  [], [enable_static_binary=yes])
AC_ARG_ENABLE([size-flags],
  [AS_HELP_STRING([--disable-size-flags],
    [keep unused code and the linker's page-aligned code segment (larger binary)])],
  [], [enable_size_flags=yes])
AC_ARG_ENABLE([container],
  [AS_HELP_STRING([--disable-container],
    [do not look for the packager (for builds that package the program themselves)])],
  [], [enable_container=yes])
AC_LANG_PUSH([C])

# Without a prefix map, DWARF's DW_AT_comp_dir (and __FILE__) hold the absolute build directory.
# Stripping drops the DWARF but not the GNU build-id, which the linker hashes over the unstripped
# output: two checkouts in different directories would give different binaries, so different
# image digests.  Both directories map to "."; the build directory is given last because GCC
# tries the most recently given map first, and it is the longer prefix when it lies inside the
# source tree (mkdir build && cd build && ../configure).
# Make expands these into shell command lines, so each flag is single-quoted there: a directory
# may hold spaces (a checkout in "My Work"), and automake refuses the characters that would
# need more than that (quotes, $, #, backslash) in either directory.
HELLOCONTAINER_CFLAGS=
_HELLOCONTAINER_CHECK_CFLAG([-ffile-prefix-map=/old=/new],
  [HELLOCONTAINER_CFLAGS=_HELLOCONTAINER_PREFIX_MAPS([-ffile-prefix-map])],
  [dnl GCC < 8 and clang < 10 split the option in two; take whichever half exists.
   _HELLOCONTAINER_CHECK_CFLAG([-fdebug-prefix-map=/old=/new],
     [HELLOCONTAINER_CFLAGS=_HELLOCONTAINER_PREFIX_MAPS([-fdebug-prefix-map])])
   _HELLOCONTAINER_CHECK_CFLAG([-fmacro-prefix-map=/old=/new],
     [HELLOCONTAINER_CFLAGS="$HELLOCONTAINER_CFLAGS "_HELLOCONTAINER_PREFIX_MAPS([-fmacro-prefix-map])])])

# Static: the image holds the one binary and no C library to load.
HELLOCONTAINER_LDFLAGS=
AS_IF([test "x$enable_static_binary" != xno],
  [AC_CACHE_CHECK([whether $CC links static programs], [hellocontainer_cv_static_link],
    [hellocontainer_save_LDFLAGS=$LDFLAGS
     LDFLAGS="$LDFLAGS -static"
     AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <stdio.h>]], [[puts("");]])],
       [hellocontainer_cv_static_link=yes], [hellocontainer_cv_static_link=no])
     LDFLAGS=$hellocontainer_save_LDFLAGS])
   AS_IF([test "x$hellocontainer_cv_static_link" = xyes],
     [HELLOCONTAINER_LDFLAGS=-static],
     [AC_MSG_ERROR([$CC cannot link a static program; install the C library's static archive (libc6-dev; or musl-tools and CC=musl-gcc) or configure with --disable-static-binary])])])

# Size: on a board's flash every kilobyte counts.  Each function and object in its own section
# lets the linker drop what nothing calls; -z noseparate-code puts code and read-only data in one
# segment instead of page-aligning each (about 8 KiB of padding on x86_64, at the price of the
# separate-code hardening).  Each flag is link-tested, since not every linker knows it.
AS_IF([test "x$enable_size_flags" != xno],
  [_HELLOCONTAINER_CHECK_CFLAG([-ffunction-sections -fdata-sections],
     [HELLOCONTAINER_CFLAGS="$HELLOCONTAINER_CFLAGS -ffunction-sections -fdata-sections"])
   for hellocontainer_flag in -Wl,--gc-sections -Wl,-z,noseparate-code; do
     _HELLOCONTAINER_CHECK_LDFLAG([$hellocontainer_flag],
       [HELLOCONTAINER_LDFLAGS="$HELLOCONTAINER_LDFLAGS $hellocontainer_flag"])
   done])
AC_LANG_POP([C])

AS_IF([test "x$enable_container" != xno],
  [AC_PATH_PROG([HELLOCONTAINER], [hellocontainer])
   AS_IF([test -z "$HELLOCONTAINER"],
     [AC_MSG_ERROR([the OCI image packager 'hellocontainer' is not on PATH; install it with 'pipx install ./python' in the hellocontainer repository (Yocto: hellocontainer-native; Buildroot: host-hellocontainer), set HELLOCONTAINER=/path/to/hellocontainer (scripts/hello leaves one in the repository's .venv/bin), or configure with --disable-container])],
     [test -x "$HELLOCONTAINER"],
     [],
     [AC_MSG_ERROR([HELLOCONTAINER=$HELLOCONTAINER is not an executable; point it at the installed 'hellocontainer' program])])
   # container.am and distcheck single-quote the path on the shell command lines make runs:
   # spaces are fine; a quote, a dollar sign (make's), a hash (a comment in the Makefile) or a
   # newline are not (the dollar sign and the hash are written as quadrigraphs here).
   case $HELLOCONTAINER in
     *\'* | *\@S|@* | *\@%:@* | *"$as_nl"*)
       AC_MSG_ERROR([HELLOCONTAINER=$HELLOCONTAINER: make cannot hand a path with a single quote, a dollar sign, a hash or a newline to the shell; install the packager elsewhere]);;
   esac],
  [HELLOCONTAINER=])
# `make distcheck' configures the unpacked tarball afresh; hand it this configure's choice, as
# one shell word of the command line make runs.
AS_IF([test -n "$HELLOCONTAINER"],
  [HELLOCONTAINER_DISTCHECK_CONFIGURE_FLAGS="'HELLOCONTAINER=$HELLOCONTAINER'"],
  [HELLOCONTAINER_DISTCHECK_CONFIGURE_FLAGS=--disable-container])

HELLOCONTAINER_BINARY='m4_default([$1], [$(bindir)/$(PACKAGE)])'
HELLOCONTAINER_OUTPUT=hellocontainer
HELLOCONTAINER_TAGS=latest
AC_SUBST([HELLOCONTAINER_CFLAGS])
AC_SUBST([HELLOCONTAINER_LDFLAGS])
AC_SUBST([HELLOCONTAINER_BINARY])
AC_SUBST([HELLOCONTAINER_OUTPUT])
AC_SUBST([HELLOCONTAINER_TAGS])
AC_SUBST([HELLOCONTAINER_DISTCHECK_CONFIGURE_FLAGS])
])

# _HELLOCONTAINER_PREFIX_MAPS(OPTION)
# -----------------------------------
# A shell word (for an assignment) whose value maps both top directories to "." with OPTION,
# each map single-quoted for the shell that make hands the compile command to; the build
# directory last (see above).
m4_define([_HELLOCONTAINER_PREFIX_MAPS],
[["'$1=\$(abs_top_srcdir)=.' '$1=\$(abs_top_builddir)=.'"]])

# _HELLOCONTAINER_CHECK_CFLAG(FLAG, [ACTION-IF-ACCEPTED], [ACTION-IF-REJECTED])
# ------------------------------------------------------------------------------
# Compile an empty program with FLAG.  -Werror because clang merely warns about options it
# ignores, and an ignored prefix map would silently leave paths in the binary.
AC_DEFUN([_HELLOCONTAINER_CHECK_CFLAG],
[AS_VAR_PUSHDEF([hellocontainer_cache], [hellocontainer_cv_cflag_$1])dnl
AC_CACHE_CHECK([whether $CC accepts $1], [hellocontainer_cache],
  [hellocontainer_save_CFLAGS=$CFLAGS
   CFLAGS="$CFLAGS -Werror $1"
   AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
     [AS_VAR_SET([hellocontainer_cache], [yes])],
     [AS_VAR_SET([hellocontainer_cache], [no])])
   CFLAGS=$hellocontainer_save_CFLAGS])
AS_VAR_IF([hellocontainer_cache], [yes], [$2], [$3])
AS_VAR_POPDEF([hellocontainer_cache])dnl
])

# _HELLOCONTAINER_CHECK_LDFLAG(FLAG, [ACTION-IF-ACCEPTED], [ACTION-IF-REJECTED])
# -------------------------------------------------------------------------------
# Link a program with FLAG; FLAG may be a shell variable (the result is cached per value).
AC_DEFUN([_HELLOCONTAINER_CHECK_LDFLAG],
[AS_VAR_PUSHDEF([hellocontainer_cache], [hellocontainer_cv_ldflag_$1])dnl
AC_CACHE_CHECK([whether $CC links with $1], [hellocontainer_cache],
  [hellocontainer_save_LDFLAGS=$LDFLAGS
   LDFLAGS="$LDFLAGS $HELLOCONTAINER_LDFLAGS -Werror $1"
   AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
     [AS_VAR_SET([hellocontainer_cache], [yes])],
     [AS_VAR_SET([hellocontainer_cache], [no])])
   LDFLAGS=$hellocontainer_save_LDFLAGS])
AS_VAR_IF([hellocontainer_cache], [yes], [$2], [$3])
AS_VAR_POPDEF([hellocontainer_cache])dnl
])
