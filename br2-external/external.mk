################################################################################
#
# hellocontainer br2-external tree: its packages, and a make helper that
# packages any static binary as a reproducible OCI image layout.
#
################################################################################

# The packager as host-hellocontainer installs it. A package that calls
# HELLOCONTAINER_PACKAGE adds host-hellocontainer to its dependencies.
HELLOCONTAINER_CLI = $(HOST_DIR)/bin/hellocontainer

# $(call HELLOCONTAINER_KCONFIG_WORD,SYMBOL)
# The value of the Kconfig string SYMBOL as ONE single-quoted shell word,
# byte for byte. .config stores "..." with \" and \\ escapes; qstrip
# would delete the escaped quotes along with the outer ones and squeeze
# runs of blanks, breaking shell words like GREETING="hello  world".
# So: drop only the outer quotes (anchored on a marker glued to them),
# undo the two escapes (\\ first: the \ left behind is never followed
# by a quote, since a lone " cannot occur inside the value), then quote
# for the shell, where inside '...' only ' itself needs care.
HELLOCONTAINER_KCONFIG_WORD = '$(subst ','\'',$(subst \",",$(subst \\,\,$(subst @hc@,,$(subst "@hc@,,$(subst @hc@",,@hc@$($(1))@hc@))))))'

# $(call HELLOCONTAINER_KCONFIG_FLAG,--FLAG,SYMBOL)
# "--FLAG 'value'" for a non-empty Kconfig string, nothing for an empty
# one (the packager's default then applies).
HELLOCONTAINER_KCONFIG_FLAG = \
	$(if $(subst ",,$($(2))),$(1) $(call HELLOCONTAINER_KCONFIG_WORD,$(2)))

# The target platform, in the configuration's own words: BR2_ARCH (which
# also spells the endianness: armeb, aarch64_be, mips/mipsel, ...) and
# every ARM architecture level the selected core has. The packager maps
# them to the OCI architecture and variant (the highest armvN wins; it
# ignores levels on arm64), so no architecture table lives here.
HELLOCONTAINER_ARM_LEVELS = \
	$(strip $(foreach level,4 5 6 7A 7M 8A 9A,$(if $(BR2_ARM_CPU_ARMV$(level)),armv$(level))))
HELLOCONTAINER_PLATFORM_OPTS = \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--arch,BR2_ARCH) \
	$(if $(HELLOCONTAINER_ARM_LEVELS),--tune '$(HELLOCONTAINER_ARM_LEVELS)')

# $(call HELLOCONTAINER_PACKAGE,BINARY,NAME,FLAGS[,DIR])
# One shell command that packages the static program BINARY as the OCI
# image layout DIR/NAME-oci for the configured target.
#   BINARY: path of the program on the build machine; with --sysroot DIR
#           in FLAGS, its path inside DIR (e.g. /usr/bin/foo).
#   NAME:   image name; the layout is DIR/NAME-oci.
#   FLAGS:  more "hellocontainer build" options, already shell-quoted,
#           e.g. --env 'A=1 GREETING="hello world"' --tag '1.0 latest'.
#           They come last, so they override the platform options.
#   DIR:    where the layout goes; empty: $(BINARIES_DIR). A package that
#           builds its image in its build step and copies it in its
#           install steps (as hellocontainer-hello does) names a folder
#           of its build directory.
# The old layout is removed first: tags or blobs of an earlier run must
# not survive a rebuild with other settings. Timestamps in the image come
# from SOURCE_DATE_EPOCH, which Buildroot exports when BR2_REPRODUCIBLE=y
# (unset, the packager uses 0, 1970-01-01: never the wall clock).
# --jobs follows BR2_JLEVEL; the blobs do not depend on it.
HELLOCONTAINER_PACKAGE_OUTPUT = $(or $(strip $(4)),$(BINARIES_DIR))/$(strip $(2))-oci
HELLOCONTAINER_PACKAGE = \
	rm -rf $(HELLOCONTAINER_PACKAGE_OUTPUT) && \
	$(HELLOCONTAINER_CLI) build $(1) \
		--output $(HELLOCONTAINER_PACKAGE_OUTPUT) \
		$(HELLOCONTAINER_PLATFORM_OPTS) \
		$(if $(PARALLEL_JOBS),--jobs $(PARALLEL_JOBS)) \
		$(3)

# $(call HELLOCONTAINER_SBOM_OPTS,PKG)
# The packager's SBOM options for the program of package PKG (its make
# prefix, e.g. HELLOCONTAINER_HELLO), from Buildroot's own variables:
# PKG's _RAWNAME, _VERSION, _LICENSE (the packager reads Buildroot's
# "A (notes), B" lists), _SITE/_SOURCE (or git+SITE@VERSION) and
# _CPE_ID; and the toolchain's C library, with the version, license and
# CPE of its package when Buildroot builds the toolchain (an external
# toolchain's libc version is not known to Buildroot). Each value is a
# "double-quoted" word inside one single-quoted option value.
HELLOCONTAINER_SBOM_WORD = \
	$(if $(strip $(2)),$(1)="$(strip $(subst ",,$(subst ',,$(2))))")
HELLOCONTAINER_SBOM_SITE = \
	$(if $(filter git,$($(1)_SITE_METHOD)),git+$($(1)_SITE)@$($(1)_VERSION), \
		$(if $(filter http://% https://% ftp://%,$($(1)_SITE)),$($(1)_SITE)/$($(1)_SOURCE)))
HELLOCONTAINER_SBOM_COMPONENT = $(strip \
	$(call HELLOCONTAINER_SBOM_WORD,name,$(2)) \
	$(call HELLOCONTAINER_SBOM_WORD,version,$($(1)_VERSION)) \
	$(call HELLOCONTAINER_SBOM_WORD,license,$($(1)_LICENSE)) \
	$(call HELLOCONTAINER_SBOM_WORD,download_location,$(call HELLOCONTAINER_SBOM_SITE,$(1))) \
	$(if $(filter YES,$($(1)_CPE_ID_VALID)),$(call HELLOCONTAINER_SBOM_WORD,cpe,$($(1)_CPE_ID))))
# The libc package's make prefix and name, from the toolchain options.
HELLOCONTAINER_LIBC_PKG = \
	$(if $(BR2_TOOLCHAIN_USES_GLIBC),GLIBC,$(if $(BR2_TOOLCHAIN_USES_MUSL),MUSL,$(if $(BR2_TOOLCHAIN_USES_UCLIBC),UCLIBC)))
HELLOCONTAINER_LIBC_NAME = \
	$(if $(BR2_TOOLCHAIN_USES_GLIBC),glibc,$(if $(BR2_TOOLCHAIN_USES_MUSL),musl,$(if $(BR2_TOOLCHAIN_USES_UCLIBC),uclibc-ng)))
HELLOCONTAINER_SBOM_LIBC = \
	$(if $(BR2_TOOLCHAIN_BUILDROOT), \
		$(call HELLOCONTAINER_SBOM_COMPONENT,$(HELLOCONTAINER_LIBC_PKG),$(HELLOCONTAINER_LIBC_NAME)), \
		$(call HELLOCONTAINER_SBOM_WORD,name,$(HELLOCONTAINER_LIBC_NAME)))
HELLOCONTAINER_SBOM_OPTS = \
	--sbom-package '$(call HELLOCONTAINER_SBOM_COMPONENT,$(1),$($(1)_RAWNAME))' \
	$(if $(HELLOCONTAINER_LIBC_NAME),--sbom-library '$(strip $(HELLOCONTAINER_SBOM_LIBC))')

# The version of both packages (host-hellocontainer's own _VERSION, which
# hellocontainer-hello takes too): the packager's version in
# python/pyproject.toml, which a test keeps equal. legal-info needs a
# version; without one Buildroot counts a package as part of itself and
# lists it nowhere. Set here, before the packages are read, because
# hellocontainer-hello's .mk is read first.
HELLOCONTAINER_VERSION = 0.1.0

include $(sort $(wildcard $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/package/*/*.mk))
