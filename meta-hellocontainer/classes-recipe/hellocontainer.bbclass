#
# SPDX-License-Identifier: MIT
#
# hellocontainer.bbclass: package the static program a recipe installs as a
# reproducible OCI image layout.
#
# A recipe whose do_install puts one statically linked program into ${D} adds
# `inherit hellocontainer`. do_hellocontainer then runs the packager on that
# program; do_deploy puts the layout (and, if asked, an oci-archive) into
# ${DEPLOY_DIR_IMAGE}, and the ${PN}-oci package installs the layout on the
# target, ready for `podman run oci:<HELLOCONTAINER_INSTALL_DIR>`. With
# HELLOCONTAINER_AUTOSTART set, ${PN}-oci also starts the container at boot:
# it holds an OCI runtime bundle (for crun and runc) and a systemd unit or a
# SysV init script, whichever DISTRO_FEATURES asks for.
#
# Everything an image is made of is decided by the packager (hellocontainer-native):
# this class only turns BitBake variables into ONE `hellocontainer build` call
# (and, to start it at boot, one `bundle` and one `autostart` call). Its Python
# is the layer's library, lib/hellocontainer_layer/image.py (addpylib).
# Each variable reaches the packager as a single argument, and the packager
# splits it into shell words, so quoting inside a value just works:
#   HELLOCONTAINER_ENV = "A=1 GREETING='hello world'"
#
# The variables and the names below are prefixed HELLOCONTAINER_ / hellocontainer
# so that this class and meta-virtualization's image-oci class (OCI_IMAGE_*)
# can be used in the same build.

inherit deploy

# Path of the program in ${D}, as do_install installs it
HELLOCONTAINER_BINARY ?= "${bindir}/${BPN}"
# Path of the program inside the image (empty: the packager's default, /<basename>)
HELLOCONTAINER_PATH ?= ""
# Entrypoint words (empty: the program itself)
HELLOCONTAINER_ENTRYPOINT ?= ""
# Default arguments (cmd) words
HELLOCONTAINER_CMD ?= ""
# Environment, KEY=VALUE words
HELLOCONTAINER_ENV ?= ""
# User the process runs as, UID[:GID]
HELLOCONTAINER_USER ?= ""
# Working directory of the process
HELLOCONTAINER_WORKDIR ?= ""
# Exposed ports, e.g. "80 53/udp"
HELLOCONTAINER_PORTS ?= ""
# Image config labels, KEY=VALUE words
HELLOCONTAINER_LABELS ?= ""
# Manifest annotations, KEY=VALUE words; the default is derived from the recipe's metadata
HELLOCONTAINER_ANNOTATIONS ?= "${@hellocontainer_layer.image.annotations(d)}"
# Signal that stops the container, e.g. SIGTERM
HELLOCONTAINER_STOP_SIGNAL ?= ""
# Tags written to index.json
HELLOCONTAINER_TAGS ?= "latest"
# Layer compression: gzip, none or zstd
HELLOCONTAINER_COMPRESSION ?= "gzip"
# gzip level: 1-9, or max (zopfli, whose Python module the native packager then needs); empty: by layer size
HELLOCONTAINER_GZIP_LEVEL ?= ""
# Also deploy an oci-archive tar of the layout (1) or not (0)
HELLOCONTAINER_ARCHIVE ?= "0"
# Platform: the packager maps Yocto's TARGET_ARCH to the OCI architecture...
HELLOCONTAINER_ARCH ?= "${TARGET_ARCH}"
# ...and the first armvN word of the tune to the OCI variant (arm/v5, v6, v7)
HELLOCONTAINER_TUNE ?= "${TUNE_FEATURES}"
# Strip a copy of the program before packaging it (0 keeps it as installed)
HELLOCONTAINER_STRIP ?= "${@'0' if bb.utils.to_boolean(d.getVar('INHIBIT_PACKAGE_STRIP')) else '1'}"
# Package a dynamically linked program (1; warns: the image has no loader or libraries
# unless HELLOCONTAINER_EXTRA_ARGS adds them) or refuse it (0)
HELLOCONTAINER_ALLOW_DYNAMIC ?= "0"
# Further `hellocontainer build` options, as shell words (e.g. "--gzip-level 6")
HELLOCONTAINER_EXTRA_ARGS ?= ""
# Attach an SBOM of the program and its C library to the image and deploy a copy,
# <image name>.spdx.json (1), or neither (0); more libraries: --sbom-library in EXTRA_ARGS
HELLOCONTAINER_SBOM ?= "1"
# Who supplies the image and its packages, e.g. "Organization: ACME Inc." (empty: oe-core's
# SPDX_SUPPLIER or SPDX_PACKAGE_SUPPLIER; none at all: the SBOM is written without one)
HELLOCONTAINER_SBOM_SUPPLIER ?= ""
# The organization that creates the SBOM, named beside the packager (empty: none)
HELLOCONTAINER_SBOM_CREATOR_ORGANIZATION ?= ""
# SBOM formats, each its own referrer and deployed copy: spdx2 (.spdx.json), spdx3
# (.spdx3.json), cyclonedx (.cdx.json); empty: the SPDX version create-spdx writes
HELLOCONTAINER_SBOM_FORMATS ?= ""
# Where ${PN}-oci installs the layout on the target
HELLOCONTAINER_INSTALL_DIR ?= "${datadir}/hellocontainer/${BPN}"
# Deployed name of the versioned layout directory
HELLOCONTAINER_IMAGE_NAME ?= "${PN}-${PV}-${PR}${IMAGE_MACHINE_SUFFIX}"
# Deployed name of the stable link to it
HELLOCONTAINER_IMAGE_LINK_NAME ?= "${PN}${IMAGE_MACHINE_SUFFIX}"
# A second link, by the name meta-virtualization's image-oci class gives its
# layouts, where its container-bundle class (CONTAINER_BUNDLES = "${PN}")
# looks for them; it depends on do_image_complete, which this class adds.
# Empty: no such link.
HELLOCONTAINER_IMAGE_LATEST_NAME ?= "${PN}-latest-oci"

# Start the container at boot with this runtime: crun, runc or podman (empty: not at all)
HELLOCONTAINER_AUTOSTART ?= ""
# Install an OCI runtime bundle (1) or not (0); crun and runc run the bundle
HELLOCONTAINER_BUNDLE ?= "${@'1' if d.getVar('HELLOCONTAINER_AUTOSTART') in ('crun', 'runc') else '0'}"
# Where ${PN}-oci installs the bundle; only read at run time, so it may be read-only
HELLOCONTAINER_BUNDLE_DIR ?= "${datadir}/hellocontainer/${BPN}-bundle"
# Restart the container when it exits: no, on-failure or always (1 s later, doubling)
HELLOCONTAINER_RESTART ?= "on-failure"
# Longest wait before a restart, seconds; a run this long brings the wait back to 1 s
HELLOCONTAINER_RESTART_MAX_DELAY ?= "300"
# Stop restarting after this many exits in a row (0: never)
HELLOCONTAINER_GIVE_UP_AFTER ?= "0"
# Count only the exits of the last this many seconds (0: all since the last long run)
HELLOCONTAINER_GIVE_UP_WINDOW ?= "0"
# podman with systemd: install a Quadlet .container file for podman's generator (1, podman
# >= 4.8) instead of the service unit (0)
HELLOCONTAINER_QUADLET ?= "0"
# podman: its image store on the target, a writable folder (under /run: copied in at each boot)
HELLOCONTAINER_PODMAN_ROOT ?= "/run/hellocontainer/podman"
# Network of the container: none (loopback only) or host (the board's)
HELLOCONTAINER_NETWORK ?= "none"
# Where the autostart finds the bundle on the target: the installed one, or a folder on a
# writable data partition that an update tool fills (then HELLOCONTAINER_BUNDLE may be "0")
HELLOCONTAINER_AUTOSTART_BUNDLE_DIR ?= "${HELLOCONTAINER_BUNDLE_DIR}"
# Private key (PEM file on the build machine) that signs the image and its bundle (empty:
# unsigned); a passphrase comes from the environment variable HELLOCONTAINER_SIGN_PASSWORD
HELLOCONTAINER_SIGN_KEY ?= ""
# Public key (PEM file on the build machine) the target checks the bundle with before each
# start, with openssl (empty: no check); crun and runc only
HELLOCONTAINER_VERIFY_KEY ?= ""
# Where ${PN}-oci installs that public key on the target (keep it on the read-only root)
HELLOCONTAINER_VERIFY_KEY_PATH ?= "${sysconfdir}/hellocontainer/keys/${BPN}.pub"
# Name of the container
HELLOCONTAINER_NAME ?= "${BPN}"
# Name of the systemd service (without .service) or of the SysV init script
HELLOCONTAINER_SERVICE ?= "hellocontainer-${BPN}"
# Package that puts the runtime on the target (meta-virtualization's names)
HELLOCONTAINER_RUNTIME_PACKAGE ?= "${@hellocontainer_layer.image.runtime_package(d)}"
# Collections (BBFILE_COLLECTIONS) of which one must provide that package; empty: no check
HELLOCONTAINER_RUNTIME_LAYERS ?= "virtualization-layer"

# The C library's CPE vendor and product, as the NVD names them, by TCLIBC
HELLOCONTAINER_LIBC_CPE ?= "glibc=gnu:glibc musl=musl-libc:musl newlib=redhat:newlib"

# Scratch space of do_hellocontainer; the task empties it first, so nothing
# left by an earlier run can end up in the layout.
HELLOCONTAINER_OUTDIR = "${WORKDIR}/hellocontainer"
# What do_hellocontainer put into ${D}, for its next run to remove first;
# do_install empties it with ${D}.
HELLOCONTAINER_INSTALLED_DIR = "${WORKDIR}/hellocontainer-installed"
do_install[cleandirs] += "${HELLOCONTAINER_INSTALLED_DIR}"

# The machine's name is in the deployed names (HELLOCONTAINER_IMAGE_NAME),
# which image-artifact-names.bbclass spells this way for images.
IMAGE_MACHINE_SUFFIX ??= "-${MACHINE}"

fakeroot python do_hellocontainer() {
    hellocontainer_layer.image.package(d)
}
do_hellocontainer[doc] = "Packages the installed program as an OCI image layout with the hellocontainer packager"
do_hellocontainer[cleandirs] = "${HELLOCONTAINER_OUTDIR}"
do_hellocontainer[depends] += "hellocontainer-native:do_populate_sysroot"
# The SBOM names the C library's version as its recipe packaged it.
# A recipe that links no target C library (INHIBIT_DEFAULT_DEPS) must not pull one in for it.
do_hellocontainer[depends] += "${@'virtual/libc:do_packagedata' if bb.utils.to_boolean(d.getVar('HELLOCONTAINER_SBOM')) and not bb.utils.to_boolean(d.getVar('INHIBIT_DEFAULT_DEPS')) else ''}"
# With create-spdx-3.0 the SPDX 3 SBOM names the recipe's own package element, which
# do_create_recipe_spdx writes (hellocontainer_layer.image.recipe_spdx3_id).
do_hellocontainer[depends] += "${@'${PN}:do_create_recipe_spdx' if bb.utils.to_boolean(d.getVar('HELLOCONTAINER_SBOM')) and (d.getVar('SPDX_VERSION') or '').startswith('3') and 'spdx3' in hellocontainer_layer.image.sbom_formats(d) else ''}"
# With create-spdx-2.2 (scarthgap) the package document of ${PN}-oci refers to our SPDX 2
# document, by its SHA1 (lib/hellocontainer_layer/spdx2.py says why not the other way), so the
# image's SBOM archive carries it; our deployed copy is what the layout holds.
python hellocontainer_spdx2_link() {
    hellocontainer_layer.spdx2.link_package_document(d)
}
do_create_spdx[postfuncs] += "${@'hellocontainer_spdx2_link' if hellocontainer_layer.spdx2.linking(d) else ''}"
do_create_spdx[depends] += "${@'${PN}:do_deploy' if hellocontainer_layer.spdx2.linking(d) else ''}"
# Signing: the keys' contents are in the signature, never their paths or bytes in a variable
# (lib/hellocontainer_layer/image.py, "Signing"); the packager needs cryptography then.
do_hellocontainer[file-checksums] += "${@hellocontainer_layer.image.key_file_checksums(d)}"
do_hellocontainer[vardepsexclude] += "HELLOCONTAINER_SIGN_KEY HELLOCONTAINER_VERIFY_KEY"
do_hellocontainer[depends] += "${@'python3-cryptography-native:do_populate_sysroot' if d.getVar('HELLOCONTAINER_SIGN_KEY') else ''}"
# Before do_populate_sysroot too: that task copies ${datadir} out of ${D}, and
# must not read it while the layout is being written there.
addtask hellocontainer after do_install before do_package do_populate_sysroot do_deploy
# The SPDXLICENSEMAP flags of the recipe's licenses, which the code parser cannot see.
do_hellocontainer[vardeps] += "${@hellocontainer_layer.image.license_vardeps(d)}"

hellocontainer_deploy() {
    cp -R --no-preserve=ownership ${HELLOCONTAINER_OUTDIR}/layout \
        ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.oci
    if [ -f ${HELLOCONTAINER_OUTDIR}/oci-archive.tar ]; then
        install -m 0644 ${HELLOCONTAINER_OUTDIR}/oci-archive.tar \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.oci-archive.tar
    fi
    # The SBOMs beside the layout, where compliance tooling looks for them
    for suffix in spdx.json spdx3.json cdx.json; do
        if [ -f ${HELLOCONTAINER_OUTDIR}/sbom.$suffix ]; then
            install -m 0644 ${HELLOCONTAINER_OUTDIR}/sbom.$suffix \
                ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.$suffix
        fi
    done
    if [ "${HELLOCONTAINER_IMAGE_LINK_NAME}" != "${HELLOCONTAINER_IMAGE_NAME}" ]; then
        ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.oci
        for suffix in spdx.json spdx3.json cdx.json; do
            if [ -f ${HELLOCONTAINER_OUTDIR}/sbom.$suffix ]; then
                ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.$suffix \
                    ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.$suffix
            fi
        done
        if [ -f ${HELLOCONTAINER_OUTDIR}/oci-archive.tar ]; then
            ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci-archive.tar \
                ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.oci-archive.tar
        fi
    fi
    if [ -n "${HELLOCONTAINER_IMAGE_LATEST_NAME}" ]; then
        ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LATEST_NAME}
    fi
}

do_deploy() {
    hellocontainer_deploy
}
do_deploy[doc] = "Copies the OCI image layout (and oci-archive) to DEPLOY_DIR_IMAGE"
addtask deploy after do_hellocontainer before do_build

# The task that container-bundle.bbclass (meta-virtualization) waits for: the
# layout is complete once it is deployed.
do_image_complete() {
    :
}
do_image_complete[doc] = "The deployed layout is complete (the task other layers' container classes depend on)"
addtask image_complete after do_deploy before do_build

# The layout and the bundle on the target are data for a container engine,
# not for other recipes: keep them out of the sysroot.
SYSROOT_DIRS_IGNORE += "${HELLOCONTAINER_INSTALL_DIR} ${HELLOCONTAINER_BUNDLE_DIR}"

SUMMARY:${PN}-oci = "${SUMMARY} (OCI image layout for podman run oci:${HELLOCONTAINER_INSTALL_DIR})"
# Machine-named output (HELLOCONTAINER_IMAGE_NAME), so machine-specific, as
# images are: two MACHINEs of one tune must not share a work folder, stamps or
# do_deploy's shared-state manifest.
PACKAGE_ARCH = "${MACHINE_ARCH}"
PACKAGES =+ "${PN}-oci"
FILES:${PN}-oci += "\
    ${HELLOCONTAINER_INSTALL_DIR} \
    ${HELLOCONTAINER_BUNDLE_DIR} \
    ${sysconfdir}/init.d/${HELLOCONTAINER_SERVICE} \
    ${systemd_system_unitdir}/${HELLOCONTAINER_SERVICE}.service \
    ${HELLOCONTAINER_VERIFY_KEY_PATH} \
    ${sysconfdir}/containers/systemd/${HELLOCONTAINER_SERVICE}.container \
"
RDEPENDS:${PN}-oci += "${HELLOCONTAINER_RUNTIME_PACKAGE}"
# The check of a signed bundle at boot runs the openssl command. Whether there is one, not
# where the public key is on the build machine, is in do_package's signature.
HELLOCONTAINER_VERIFYING = "${@'1' if d.getVar('HELLOCONTAINER_VERIFY_KEY') else '0'}"
HELLOCONTAINER_VERIFYING[vardepvalue] = "${HELLOCONTAINER_VERIFYING}"
RDEPENDS:${PN}-oci += "${@hellocontainer_layer.image.openssl_package(d)}"

# Start at boot. The deferred inherit picks systemd.bbclass or
# update-rc.d.bbclass (or neither) by DISTRO_FEATURES once the recipe is
# parsed, so it sees the recipe's own values; the checks below run then too,
# so that a mistake stops the parse rather than a build hours later.
inherit_defer ${@hellocontainer_layer.image.init_class(d)}

# nooelint: oelint.task.noanonpython
python __anonymous() {
    hellocontainer_layer.image.check_autostart(d)
    hellocontainer_layer.image.check_keys(d)
    init_class = hellocontainer_layer.image.init_class(d)
    if init_class == "systemd":
        d.appendVar("SYSTEMD_PACKAGES", " ${PN}-oci")
    elif init_class == "update-rc.d":
        # update-rc.d.bbclass registers ${UPDATERCPN} only while
        # INITSCRIPT_PACKAGES is unset: a recipe's own init script stays.
        packages = d.getVar("INITSCRIPT_PACKAGES", False)
        if packages is None:
            packages = "${UPDATERCPN}" if d.getVar("INITSCRIPT_NAME", False) is not None else ""
        d.setVar("INITSCRIPT_PACKAGES", packages + " ${PN}-oci")
}

# The bundle's rootfs holds the image's files byte for byte (the program is
# stripped already, see HELLOCONTAINER_STRIP): do_package must neither strip
# them again nor split debug files into the bundle.
python hellocontainer_keep_bundle_files() {
    if not bb.utils.to_boolean(d.getVar("HELLOCONTAINER_BUNDLE")):
        return
    for root, _, files in os.walk(d.getVar("PKGD") + d.getVar("HELLOCONTAINER_BUNDLE_DIR")):
        for name in sorted(files):
            d.appendVar("INHIBIT_PACKAGE_STRIP_FILES", " " + os.path.join(root, name))
}
PACKAGE_PREPROCESS_FUNCS += "hellocontainer_keep_bundle_files"

# Read by systemd.bbclass and update-rc.d.bbclass, whichever is inherited.
SYSTEMD_SERVICE:${PN}-oci = "${HELLOCONTAINER_SERVICE}.service"
INITSCRIPT_NAME:${PN}-oci = "${HELLOCONTAINER_SERVICE}"
INITSCRIPT_PARAMS:${PN}-oci ?= "defaults 95 5"
