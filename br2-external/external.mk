################################################################################
#
# hellocontainer br2-external tree: its packages, and make helpers that
# package any static binary as a reproducible OCI image layout.
#
################################################################################

# The helpers are named HCTR_*, not HELLOCONTAINER_*: Buildroot derives the
# variables of the host-hellocontainer package from the HELLOCONTAINER_
# prefix (HELLOCONTAINER_VERSION, HELLOCONTAINER_KCONFIG_FILE, ...), and
# HELLOCONTAINER_HELLO_ is the hellocontainer-hello package's. HCTR_ is no
# package's prefix, so the helpers cannot meet a variable Buildroot reads.

# The packager as host-hellocontainer installs it. A package that calls
# HCTR_PACKAGE adds host-hellocontainer to its dependencies.
HCTR_CLI = $(HOST_DIR)/bin/hellocontainer

# $(call HCTR_KCONFIG_WORD,SYMBOL)
# The value of the Kconfig string SYMBOL as ONE single-quoted shell word,
# byte for byte. .config stores "..." with \" and \\ escapes; qstrip
# would delete the escaped quotes along with the outer ones and squeeze
# runs of blanks, breaking shell words like GREETING="hello  world".
# So: drop only the outer quotes (anchored on a marker glued to them),
# undo the two escapes (\\ first: the \ left behind is never followed
# by a quote, since a lone " cannot occur inside the value), then quote
# for the shell, where inside '...' only ' itself needs care.
HCTR_KCONFIG_WORD = '$(subst ','\'',$(subst \",",$(subst \\,\,$(subst @hc@,,$(subst "@hc@,,$(subst @hc@",,@hc@$($(1))@hc@))))))'

# $(call HCTR_KCONFIG_FLAG,--FLAG,SYMBOL)
# "--FLAG 'value'" for a non-empty Kconfig string, nothing for an empty
# one (the packager's default then applies).
HCTR_KCONFIG_FLAG = \
	$(if $(subst ",,$($(2))),$(1) $(call HCTR_KCONFIG_WORD,$(2)))

# The target platform, in the configuration's own words: BR2_ARCH (which
# also spells the endianness: armeb, aarch64_be, mips/mipsel, ...) and
# every ARM architecture level the selected core has. The packager maps
# them to the OCI architecture and variant (the highest armvN wins; it
# ignores levels on arm64), so no architecture table lives here.
HCTR_ARM_LEVELS = \
	$(strip $(foreach level,4 5 6 7A 7M 8A 9A,$(if $(BR2_ARM_CPU_ARMV$(level)),armv$(level))))
HCTR_PLATFORM_OPTS = \
	$(call HCTR_KCONFIG_FLAG,--arch,BR2_ARCH) \
	$(if $(HCTR_ARM_LEVELS),--tune '$(HCTR_ARM_LEVELS)')

# $(call HCTR_PACKAGE,BINARY,NAME,FLAGS[,DIR])
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
HCTR_PACKAGE_OUTPUT = $(or $(strip $(4)),$(BINARIES_DIR))/$(strip $(2))-oci
HCTR_PACKAGE = \
	rm -rf $(HCTR_PACKAGE_OUTPUT) && \
	$(HCTR_CLI) build $(1) \
		--output $(HCTR_PACKAGE_OUTPUT) \
		$(HCTR_PLATFORM_OPTS) \
		$(if $(PARALLEL_JOBS),--jobs $(PARALLEL_JOBS)) \
		$(3)

# $(call HCTR_SBOM_OPTS,PKG[,SUPPLIER[,CREATOR_ORGANIZATION]])
# The packager's SBOM options for the program of package PKG (its make
# prefix, e.g. HELLOCONTAINER_HELLO), from Buildroot's own variables:
# PKG's _RAWNAME, _VERSION, _LICENSE (the packager reads Buildroot's
# "A (notes), B" lists), _SITE/_SOURCE (or git+SITE@VERSION) and
# _CPE_ID; and the toolchain's C library, with the version, license and
# CPE of its package when Buildroot builds the toolchain (an external
# toolchain's libc version is not known to Buildroot, so its SBOM is
# written with --sbom-incomplete). Each value is a "double-quoted" word
# inside one single-quoted option value. The names are Buildroot's
# package names, which CycloneDX's bom-ref then is, as in
# utils/generate-cyclonedx.
HCTR_SBOM_WORD = \
	$(if $(strip $(2)),$(1)="$(strip $(subst ",,$(subst ',,$(2))))")
HCTR_SBOM_SITE = \
	$(if $(filter git,$($(1)_SITE_METHOD)),git+$($(1)_SITE)@$($(1)_VERSION), \
		$(if $(filter http://% https://% ftp://%,$($(1)_SITE)),$($(1)_SITE)/$($(1)_SOURCE)))
HCTR_SBOM_COMPONENT = $(strip \
	$(call HCTR_SBOM_WORD,name,$(2)) \
	$(call HCTR_SBOM_WORD,version,$($(1)_VERSION)) \
	$(call HCTR_SBOM_WORD,license,$($(1)_LICENSE)) \
	$(call HCTR_SBOM_WORD,download_location,$(call HCTR_SBOM_SITE,$(1))) \
	$(if $(filter YES,$($(1)_CPE_ID_VALID)),$(call HCTR_SBOM_WORD,cpe,$($(1)_CPE_ID))))
# The libc package's make prefix and name, from the toolchain options.
HCTR_LIBC_PKG = \
	$(if $(BR2_TOOLCHAIN_USES_GLIBC),GLIBC,$(if $(BR2_TOOLCHAIN_USES_MUSL),MUSL,$(if $(BR2_TOOLCHAIN_USES_UCLIBC),UCLIBC)))
HCTR_LIBC_NAME = \
	$(if $(BR2_TOOLCHAIN_USES_GLIBC),glibc,$(if $(BR2_TOOLCHAIN_USES_MUSL),musl,$(if $(BR2_TOOLCHAIN_USES_UCLIBC),uclibc-ng)))
HCTR_SBOM_LIBC = \
	$(if $(BR2_TOOLCHAIN_BUILDROOT), \
		$(call HCTR_SBOM_COMPONENT,$(HCTR_LIBC_PKG),$(HCTR_LIBC_NAME)), \
		$(call HCTR_SBOM_WORD,name,$(HCTR_LIBC_NAME)))
HCTR_SBOM_OPTS = \
	--sbom-package '$(call HCTR_SBOM_COMPONENT,$(1),$($(1)_RAWNAME))' \
	$(if $(HCTR_LIBC_NAME),--sbom-library '$(strip $(HCTR_SBOM_LIBC))') \
	$(if $(strip $(2)),--sbom-supplier '$(subst ','\'',$(strip $(2)))') \
	$(if $(strip $(3)),--sbom-creator-organization '$(subst ','\'',$(strip $(3)))') \
	$(if $(HCTR_LIBC_NAME),$(if $(BR2_TOOLCHAIN_BUILDROOT),,--sbom-incomplete))

include $(sort $(wildcard $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/package/*/*.mk))
