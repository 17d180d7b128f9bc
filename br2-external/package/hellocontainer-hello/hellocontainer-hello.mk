################################################################################
#
# hellocontainer-hello
#
################################################################################

# examples/hello of the repository that holds this br2-external tree.
HELLOCONTAINER_HELLO_SITE = $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/../examples/hello
HELLOCONTAINER_HELLO_SITE_METHOD = local
# The repository's version, as for the packager (a test keeps both equal to
# python/pyproject.toml).
HELLOCONTAINER_HELLO_VERSION = 0.1.0
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
# by the build step's hook below, not by "make container".
HELLOCONTAINER_HELLO_CONF_OPTS = --disable-container
HELLOCONTAINER_HELLO_DEPENDENCIES = host-hellocontainer

# The program is only needed inside the image; the image is built in the
# build step, so that both install steps, which Buildroot runs in no fixed
# order after it, can copy it.
HELLOCONTAINER_HELLO_INSTALL_IMAGES = YES

# Each Kconfig string goes to the packager as ONE shell word, so values
# with spaces and quotes reach it unchanged; empty strings pass nothing
# and leave the packager's default.
HELLOCONTAINER_HELLO_PACKAGER_OPTS = \
	$(call HCTR_KCONFIG_FLAG,--tag,BR2_PACKAGE_HELLOCONTAINER_HELLO_TAG) \
	$(call HCTR_KCONFIG_FLAG,--entrypoint,BR2_PACKAGE_HELLOCONTAINER_HELLO_ENTRYPOINT) \
	$(call HCTR_KCONFIG_FLAG,--cmd,BR2_PACKAGE_HELLOCONTAINER_HELLO_CMD) \
	$(call HCTR_KCONFIG_FLAG,--env,BR2_PACKAGE_HELLOCONTAINER_HELLO_ENV) \
	$(call HCTR_KCONFIG_FLAG,--user,BR2_PACKAGE_HELLOCONTAINER_HELLO_USER) \
	$(call HCTR_KCONFIG_FLAG,--workdir,BR2_PACKAGE_HELLOCONTAINER_HELLO_WORKDIR) \
	$(call HCTR_KCONFIG_FLAG,--port,BR2_PACKAGE_HELLOCONTAINER_HELLO_PORTS) \
	$(call HCTR_KCONFIG_FLAG,--label,BR2_PACKAGE_HELLOCONTAINER_HELLO_LABELS) \
	$(call HCTR_KCONFIG_FLAG,--compression,BR2_PACKAGE_HELLOCONTAINER_HELLO_COMPRESSION) \
	$(call HCTR_KCONFIG_FLAG,--gzip-level,BR2_PACKAGE_HELLOCONTAINER_HELLO_GZIP_LEVEL) \
	$(HELLOCONTAINER_HELLO_SIGN_OPTS)

# A user name is looked up at build time in the target's user database,
# since the image has none: the skeleton's /etc/passwd and /etc/group are
# in TARGET_DIR (the package's own one with per-package directories) from
# the skeleton dependency on. Users that _USERS or BR2_ROOTFS_USERS_TABLES
# add are only created with the filesystem images, later: those need
# numbers. The packager reads the files only for a name.
ifneq ($(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_USER)),)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	--passwd-file $(TARGET_DIR)/etc/passwd \
	--group-file $(TARGET_DIR)/etc/group
endif

# The author is one value, not shell words: the packager splits the
# --annotation value into words, so the value is quoted for it first,
# then the whole option value for the shell.
ifneq ($(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTHOR)),)
HELLOCONTAINER_HELLO_AUTHOR_ANNOTATION = \
	org.opencontainers.image.authors=$(call HCTR_KCONFIG_WORD,BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTHOR)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	--annotation '$(subst ','\'',$(HELLOCONTAINER_HELLO_AUTHOR_ANNOTATION))'
endif

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_ARCHIVE),y)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += --archive $(HELLOCONTAINER_HELLO_OCI_DIR)/hello-oci.tar
endif

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM),y)
HELLOCONTAINER_HELLO_SBOM_SUPPLIER = \
	$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_SUPPLIER))
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	$(call HCTR_SBOM_OPTS,HELLOCONTAINER_HELLO,$(HELLOCONTAINER_HELLO_SBOM_SUPPLIER),$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_CREATOR_ORGANIZATION))) \
	--sbom-format spdx2 --sbom-copy $(HELLOCONTAINER_HELLO_OCI_DIR)/hello.spdx.json
ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_CYCLONEDX),y)
HELLOCONTAINER_HELLO_PACKAGER_OPTS += \
	--sbom-format cyclonedx --sbom-copy $(HELLOCONTAINER_HELLO_OCI_DIR)/hello.cdx.json
endif
# NTIA's minimum elements name a supplier; checked only when building,
# like the root filesystem path below.
ifeq ($(BR_BUILDING)$(BR2_PACKAGE_HELLOCONTAINER_HELLO),yy)
ifeq ($(HELLOCONTAINER_HELLO_SBOM_SUPPLIER),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM is set, but BR2_PACKAGE_HELLOCONTAINER_HELLO_SBOM_SUPPLIER is empty; set it to who supplies the image, e.g. "ACME Inc.")
endif
endif
endif

# Where the build step writes the layout and its companions (archive,
# SBOM copy, runtime bundle), inside the build directory; the install
# steps copy from there. Not hellocontainer/, which the example's own
# "make container" uses.
HELLOCONTAINER_HELLO_OCI_DIR = $(@D)/oci-out

# Install into a private root inside the build directory, strip the
# program as Buildroot strips the target (honouring BR2_STRIP_none), and
# package it from there: the image holds exactly what "make install"
# installs. The old output goes first so that switching an option off
# leaves nothing stale behind.
define HELLOCONTAINER_HELLO_BUILD_IMAGE
	rm -rf $(@D)/oci-root $(HELLOCONTAINER_HELLO_OCI_DIR)
	mkdir -p $(HELLOCONTAINER_HELLO_OCI_DIR)
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) DESTDIR=$(@D)/oci-root install
	$(STRIPCMD) $(@D)/oci-root/usr/bin/hello
	$(call HCTR_PACKAGE,/usr/bin/hello,hello,--sysroot $(@D)/oci-root $(HELLOCONTAINER_HELLO_PACKAGER_OPTS),$(HELLOCONTAINER_HELLO_OCI_DIR))
endef
HELLOCONTAINER_HELLO_POST_BUILD_HOOKS += HELLOCONTAINER_HELLO_BUILD_IMAGE

# The images step only copies what the build step wrote. The old files
# go first, as above: an option switched off leaves nothing behind.
define HELLOCONTAINER_HELLO_INSTALL_IMAGES_CMDS
	rm -rf $(BINARIES_DIR)/hello-oci $(BINARIES_DIR)/hello-oci.tar \
		$(BINARIES_DIR)/hello-bundle $(BINARIES_DIR)/hello.spdx.json \
		$(BINARIES_DIR)/hello.cdx.json
	cp -R $(HELLOCONTAINER_HELLO_OCI_DIR)/. $(BINARIES_DIR)/
endef

HELLOCONTAINER_HELLO_ROOTFS_PATH = \
	$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_ROOTFS_PATH))
# The same directory spelled one way only (no doubled or trailing
# slashes).
HELLOCONTAINER_HELLO_ROOTFS_DIR = \
	$(if $(HELLOCONTAINER_HELLO_ROOTFS_PATH),/$(subst $() ,/,$(strip $(subst /, ,$(HELLOCONTAINER_HELLO_ROOTFS_PATH)))))

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
endif
endif

# Start at boot: the packager writes the init script or the unit, and for
# crun and runc a runtime bundle of the image.
HELLOCONTAINER_HELLO_RUNTIME = $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_RUNTIME))
# Where the bundle goes on the target; only read at run time, so a
# read-only root filesystem is fine, and so is a data partition.
HELLOCONTAINER_HELLO_BUNDLE_DIR = \
	$(or $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH)),/usr/share/hellocontainer/hello-bundle)

# Signing: the private key's path (the option, else HCTR_SIGN_KEY from the
# command line or the environment, so that no defconfig need hold it),
# read by the packager where it is and never copied; the public key the
# board checks the bundle with, on its root.
HELLOCONTAINER_HELLO_SIGN_KEY = \
	$(or $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_SIGN_KEY)),$(HCTR_SIGN_KEY))
HELLOCONTAINER_HELLO_VERIFY_KEY = \
	$(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY_KEY))
HELLOCONTAINER_HELLO_VERIFY_KEY_PATH = /etc/hellocontainer/keys/hello.pub
ifneq ($(HELLOCONTAINER_HELLO_SIGN_KEY),)
HELLOCONTAINER_HELLO_DEPENDENCIES += host-python-cryptography
HELLOCONTAINER_HELLO_SIGN_OPTS = --sign-key '$(HELLOCONTAINER_HELLO_SIGN_KEY)'
endif

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO)$(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART),yy)
ifeq ($(BR_BUILDING),y)
# The bundle path is removed before the copy, so it must name one
# directory strictly inside the target, as the root filesystem path.
ifneq ($(filter-out /%,$(HELLOCONTAINER_HELLO_BUNDLE_DIR))$(filter-out 1,$(words $(HELLOCONTAINER_HELLO_BUNDLE_DIR)))$(filter . ..,$(subst /, ,$(HELLOCONTAINER_HELLO_BUNDLE_DIR))),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH="$(HELLOCONTAINER_HELLO_BUNDLE_DIR)" is not a directory inside the root filesystem; set an absolute path such as /data/hello-bundle)
endif
ifeq ($(subst /,,$(HELLOCONTAINER_HELLO_BUNDLE_DIR)),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_BUNDLE_PATH="$(HELLOCONTAINER_HELLO_BUNDLE_DIR)" is not a directory inside the root filesystem; set an absolute path such as /data/hello-bundle)
endif
ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY),y)
ifeq ($(HELLOCONTAINER_HELLO_VERIFY_KEY),)
$(error BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY is set, but BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY_KEY names no public key; set the path of the signing key's public half)
endif
endif
endif
endif
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
	--network $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_NETWORK)) \
	$(if $(BR2_PACKAGE_HELLOCONTAINER_HELLO_RESTART_MAX_DELAY),--restart-max-delay $(BR2_PACKAGE_HELLOCONTAINER_HELLO_RESTART_MAX_DELAY)) \
	$(if $(BR2_PACKAGE_HELLOCONTAINER_HELLO_GIVE_UP_AFTER),--give-up-after $(BR2_PACKAGE_HELLOCONTAINER_HELLO_GIVE_UP_AFTER)) \
	$(if $(BR2_PACKAGE_HELLOCONTAINER_HELLO_GIVE_UP_WINDOW),--give-up-window $(BR2_PACKAGE_HELLOCONTAINER_HELLO_GIVE_UP_WINDOW))

ifeq ($(HELLOCONTAINER_HELLO_RUNTIME),podman)
HELLOCONTAINER_HELLO_AUTOSTART_OPTS += \
	--layout $(HELLOCONTAINER_HELLO_ROOTFS_DIR):$(HELLOCONTAINER_HELLO_FIRST_TAG) \
	--podman-root $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_PODMAN_ROOT))
else
HELLOCONTAINER_HELLO_AUTOSTART_OPTS += --bundle $(HELLOCONTAINER_HELLO_BUNDLE_DIR)
HELLOCONTAINER_HELLO_INSTALLS_BUNDLE = y

define HELLOCONTAINER_HELLO_BUILD_BUNDLE
	$(HCTR_CLI) bundle \
		$(HELLOCONTAINER_HELLO_OCI_DIR)/hello-oci:$(HELLOCONTAINER_HELLO_FIRST_TAG) \
		--output $(HELLOCONTAINER_HELLO_OCI_DIR)/hello-bundle \
		--network $(call qstrip,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_NETWORK)) \
		$(HELLOCONTAINER_HELLO_SIGN_OPTS)
endef
HELLOCONTAINER_HELLO_POST_BUILD_HOOKS += HELLOCONTAINER_HELLO_BUILD_BUNDLE
endif

# crun and runc: the signed bundle; podman: the signed image in the layout
# (build --sign-key), each checked with the public key before every start.
ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY),y)
HELLOCONTAINER_HELLO_AUTOSTART_OPTS += \
	--verify-key $(HELLOCONTAINER_HELLO_VERIFY_KEY_PATH)
endif

define HELLOCONTAINER_HELLO_INSTALL_INIT_SYSV
	$(HCTR_CLI) autostart $(HELLOCONTAINER_HELLO_AUTOSTART_OPTS) \
		--sysv $(TARGET_DIR)/etc/init.d/S95hellocontainer-hello
endef

ifeq ($(BR2_PACKAGE_HELLOCONTAINER_HELLO_QUADLET),y)
# podman's Quadlet generator makes and enables the unit at boot.
define HELLOCONTAINER_HELLO_INSTALL_INIT_SYSTEMD
	$(HCTR_CLI) autostart $(HELLOCONTAINER_HELLO_AUTOSTART_OPTS) \
		--quadlet $(TARGET_DIR)/etc/containers/systemd/hellocontainer-hello.container
endef
else
define HELLOCONTAINER_HELLO_INSTALL_INIT_SYSTEMD
	$(HCTR_CLI) autostart $(HELLOCONTAINER_HELLO_AUTOSTART_OPTS) \
		--systemd $(TARGET_DIR)/usr/lib/systemd/system/hellocontainer-hello.service
endef
endif
endif

# The target gets the layout (with a root filesystem path) and the runtime
# bundle (with autostart by crun or runc); without either, the image is in
# BINARIES_DIR only and the target-install step has nothing to do.
ifeq ($(HELLOCONTAINER_HELLO_ROOTFS_DIR)$(BR2_PACKAGE_HELLOCONTAINER_HELLO_AUTOSTART),)
HELLOCONTAINER_HELLO_INSTALL_TARGET = NO
endif

# Each copy replaces the directory whole, so that a -rebuild with other
# settings (tags, compression...) leaves no stale blob at the same path.
# The bundle keeps its modes (cp -p): plain cp would apply the umask and
# drop setuid bits, and the board would run files other than the image's
# (and a signed bundle would fail its check).
# A path the package no longer installs to (the setting changed, autostart
# was switched off) keeps its copy, as for any Buildroot package: that
# takes a full rebuild (make clean all).
define HELLOCONTAINER_HELLO_INSTALL_TARGET_CMDS
	$(if $(HELLOCONTAINER_HELLO_ROOTFS_DIR), \
		rm -rf '$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_DIR)' && \
		mkdir -p '$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_DIR)' && \
		cp -R $(HELLOCONTAINER_HELLO_OCI_DIR)/hello-oci/. \
			'$(TARGET_DIR)$(HELLOCONTAINER_HELLO_ROOTFS_DIR)')
	$(if $(HELLOCONTAINER_HELLO_INSTALLS_BUNDLE), \
		rm -rf $(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR) && \
		mkdir -p $(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR) && \
		cp -R -p $(HELLOCONTAINER_HELLO_OCI_DIR)/hello-bundle/. \
			$(TARGET_DIR)$(HELLOCONTAINER_HELLO_BUNDLE_DIR))
	$(if $(filter y,$(BR2_PACKAGE_HELLOCONTAINER_HELLO_VERIFY)), \
		$(INSTALL) -D -m 0644 '$(HELLOCONTAINER_HELLO_VERIFY_KEY)' \
			$(TARGET_DIR)$(HELLOCONTAINER_HELLO_VERIFY_KEY_PATH))
endef

$(eval $(autotools-package))
