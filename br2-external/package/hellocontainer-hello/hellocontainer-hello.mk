################################################################################
#
# hellocontainer-hello
#
################################################################################

# examples/hello of the repository that holds this br2-external tree.
HELLOCONTAINER_HELLO_SITE = $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/../examples/hello
HELLOCONTAINER_HELLO_SITE_METHOD = local
# The repository's version (external.mk), as for the packager.
HELLOCONTAINER_HELLO_VERSION = $(HELLOCONTAINER_VERSION)
HELLOCONTAINER_HELLO_LICENSE = MIT
# A copy of the repository's LICENSE, inside the package's source folder
# where legal-info looks for it.
HELLOCONTAINER_HELLO_LICENSE_FILES = LICENSE

# The checkout has configure.ac and Makefile.am, not configure.
HELLOCONTAINER_HELLO_AUTORECONF = YES

# Objects and programs of an in-tree build for the build machine (which
# the example's .gitignore lists) would look up to date after the copy,
# and a host binary would end up in the target image.
HELLOCONTAINER_HELLO_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --filter=':- .gitignore'

# configure links the program statically by default; the packager is run
# by the images step below, not by "make container".
HELLOCONTAINER_HELLO_CONF_OPTS = --disable-container
HELLOCONTAINER_HELLO_DEPENDENCIES = host-hellocontainer

# The program is only needed inside the image; the root filesystem gets
# the image itself when BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH is set.
# Autostart needs the target-install step, the only one in which Buildroot
# installs init scripts (_INSTALL_INIT_*, below); it still installs no
# program.
ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART),y)
HELLOCONTAINER_HELLO_INSTALL_TARGET = YES
else
HELLOCONTAINER_HELLO_INSTALL_TARGET = NO
endif
HELLOCONTAINER_HELLO_INSTALL_IMAGES = YES

# Each Kconfig string goes to the packager as ONE shell word, so values
# with spaces and quotes reach it unchanged; empty strings pass nothing
# and leave the packager's default.
HELLOCONTAINER_HELLO_PACKAGER_OPTS = \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--tag,BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--entrypoint,BR2_PACKAGE_HELLOCONTAINER_HELLO_ENTRYPOINT) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--cmd,BR2_PACKAGE_HELLOCONTAINER_HELLO_CMD) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--env,BR2_PACKAGE_HELLOCONTAINER_HELLO_ENV) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--user,BR2_PACKAGE_HELLOCONTAINER_HELLO_USER) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--workdir,BR2_PACKAGE_HELLOCONTAINER_HELLO_WORKDIR) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--port,BR2_PACKAGE_HELLOCONTAINER_HELLO_PORTS) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--label,BR2_PACKAGE_HELLOCONTAINER_HELLO_LABELS) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--compression,BR2_PACKAGE_HELLOCONTAINER_HELLO_COMPRESSION) \
	$(call HELLOCONTAINER_KCONFIG_FLAG,--gzip-level,BR2_PACKAGE_HELLOCONTAINER_HELLO_GZIP_LEVEL)

# The author is one value, not shell words: the packager splits the
# --annotation value into words, so the value is quoted for it first,
# then the whole option value for the shell.
ifneq ($(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTHOR)),)
HELLOCONTAINER_HELLO_AUTHOR_ANNOTATION = \
	org.opencontainers.image.authors=$(call HELLOCONTAINER_KCONFIG_WORD,BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTHOR)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	--annotation '$(subst ','\'',$(HELLOCONTAINER_HELLO_AUTHOR_ANNOTATION))'
endif

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_ARCHIVE),y)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += --archive $(BINARIES_DIR)/hello-oci.tar
endif

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM),y)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	$(call HELLOCONTAINER_SBOM_OPTS,HELLOCONTAINER_HELLO) \
	--sbom-copy $(BINARIES_DIR)/hello.spdx.json
endif

# Install into a private root inside the build directory, strip the
# program as Buildroot strips the target (honouring BR2_STRIP_none), and
# package it from there: the image holds exactly what "make install"
# installs. The old archive and bundle go first so that switching an
# option off leaves nothing stale behind; the helper removes the old
# layout itself.
define HELLOCONTAINER_HELLO_INSTALL_IMAGES_CMDS
	rm -rf $(@D)/oci-root $(BINARIES_DIR)/hello-oci.tar $(BINARIES_DIR)/hello-bundle \
		$(BINARIES_DIR)/hello.spdx.json
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) DESTDIR=$(@D)/oci-root install
	$(STRIPCMD) $(@D)/oci-root/usr/bin/hello
	$(call HELLOCONTAINER_PACKAGE,/usr/bin/hello,hello,--sysroot $(@D)/oci-root $(HELLOCONTAINER_HELLO_PACKAGER_OPTS))
endef

HELLOCONTAINER_HELLO_ROOTFS_PATH = \
	$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH))

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO),y)
ifneq ($(HELLOCONTAINER_HELLO_ROOTFS_PATH),)
# The path is removed before the copy, so it must name one directory
# strictly inside the target: one word, absolute, not "/", no "." or "..".
# Checked only when building (BR_BUILDING, as Buildroot's own sanity
# checks), so that savedefconfig, printvars, legal-info, source and
# graph-* still work to repair or inspect such a configuration.
HELLOCONTAINER_HELLO_ROOTFS_PATH_ERRORS = \
	$(if $(filter 1,$(words $(HELLOCONTAINER_HELLO_ROOTFS_PATH))),,spaces) \
	$(if $(filter /%,$(HELLOCONTAINER_HELLO_ROOTFS_PATH)),,relative) \
	$(if $(subst /,,$(HELLOCONTAINER_HELLO_ROOTFS_PATH)),,root) \
	$(filter . ..,$(subst /, ,$(HELLOCONTAINER_HELLO_ROOTFS_PATH)))
ifeq ($(BR_BUILDING),y)
ifneq ($(strip $(HELLOCONTAINER_HELLO_ROOTFS_PATH_ERRORS)),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH="$(HELLOCONTAINER_HELLO_ROOTFS_PATH)" is not a directory inside the root filesystem; set an absolute path such as /usr/share/hellocontainer/hello-oci)
endif
endif

# A target-finalize hook: it runs after every package's images step and
# before the filesystem images are made. The images step itself must not
# write to the target directory (with per-package directories it is not
# the final one), and post-image scripts run after the root filesystem
# image already exists.
define HELLOCONTAINER_HELLO_INSTALL_ROOTFS
	rm -rf '$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_PATH)'
	mkdir -p '$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_PATH)'
	cp -R $(BINARIES_DIR)/hello-oci/. '$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_PATH)'
endef
HELLOCONTAINER_HELLO_TARGET_FINALIZE_HOOKS += HELLOCONTAINER_HELLO_INSTALL_ROOTFS
endif
endif

# Start at boot: the packager writes the init script or the unit, and for
# crun and runc a runtime bundle of the image.
HELLOCONTAINER_HELLO_RUNTIME = $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME))
# Where the bundle goes on the target; only read at run time, so a
# read-only root filesystem is fine.
HELLOCONTAINER_HELLO_BUNDLE_DIR = /usr/share/hellocontainer/hello-bundle
# The image the board runs: the first tag's (all tags name one image).
# Tags hold no quotes or blanks, so the first word of the string is it.
HELLOCONTAINER_HELLO_FIRST_TAG = \
	$(or $(firstword $(subst ',,$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG)))),latest)

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO)$(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART),yy)
# Checked only when building, like the path above.
ifeq ($(BR_BUILDING),y)
ifeq ($(HELLOCONTAINER_HELLO_RUNTIME),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART is set, but no container runtime is available for this toolchain; see the comments under "container runtime" in menuconfig)
endif
endif

HELLOCONTAINER_HELLO_AUTOSTART_OPTS = \
	--runtime $(HELLOCONTAINER_HELLO_RUNTIME) \
	--name hello \
	--restart $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_RESTART)) \
	--network $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_NETWORK))

ifeq ($(HELLOCONTAINER_HELLO_RUNTIME),podman)
HELLOCONTAINER_HELLO_AUTOSTART_OPTS += \
	--layout $(patsubst %/,%,$(HELLOCONTAINER_HELLO_ROOTFS_PATH)):$(HELLOCONTAINER_HELLO_FIRST_TAG)
else
HELLOCONTAINER_HELLO_AUTOSTART_OPTS += --bundle $(HELLOCONTAINER_HELLO_BUNDLE_DIR)

define HELLOCONTAINER_HELLO_WRITE_BUNDLE
	$(HELLOCONTAINER_CLI) bundle \
		$(BINARIES_DIR)/hello-oci:$(HELLOCONTAINER_HELLO_FIRST_TAG) \
		--output $(BINARIES_DIR)/hello-bundle \
		--network $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_NETWORK))
endef
HELLOCONTAINER_HELLO_POST_INSTALL_IMAGES_HOOKS += HELLOCONTAINER_HELLO_WRITE_BUNDLE

# Into the target at target-finalize, like the layout above.
define HELLOCONTAINER_HELLO_INSTALL_BUNDLE
	rm -rf $(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR)
	mkdir -p $(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR)
	cp -R $(BINARIES_DIR)/hello-bundle/. $(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR)
endef
HELLOCONTAINER_HELLO_TARGET_FINALIZE_HOOKS += HELLOCONTAINER_HELLO_INSTALL_BUNDLE
endif

# The target-install step's own commands: none, autotools' "make install"
# would put the program there.
define HELLOCONTAINER_HELLO_INSTALL_TARGET_CMDS
	@: the init files come from the _INSTALL_INIT_* commands below
endef

define HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV
	$(HELLOCONTAINER_CLI) autostart $(HELLOCONTAINER_HELLO_AUTOSTART_OPTS) \
		--sysv $(TARGET_DIR)/etc/init.d/S95hellocontainer-hello
endef

define HELLOCONTAINER_HELLO_INSTALL_INIT_SYSTEMD
	$(HELLOCONTAINER_CLI) autostart $(HELLOCONTAINER_HELLO_AUTOSTART_OPTS) \
		--systemd $(TARGET_DIR)/usr/lib/systemd/system/hellocontainer-hello.service
endef
endif

$(eval $(autotools-package))
