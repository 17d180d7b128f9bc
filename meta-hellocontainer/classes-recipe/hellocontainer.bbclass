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
# target, ready for `podman run oci:<HELLOCONTAINER_INSTALL_DIR>`.
#
# Everything an image is made of is decided by the packager (hellocontainer-native):
# this class only turns BitBake variables into ONE `hellocontainer build` call.
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
HELLOCONTAINER_ANNOTATIONS ?= "${@hellocontainer_annotations(d)}"
# Signal that stops the container, e.g. SIGTERM
HELLOCONTAINER_STOP_SIGNAL ?= ""
# Tags written to index.json
HELLOCONTAINER_TAGS ?= "latest"
# Layer compression: gzip, none or zstd
HELLOCONTAINER_COMPRESSION ?= "gzip"
# Also deploy an oci-archive tar of the layout (1) or not (0)
HELLOCONTAINER_ARCHIVE ?= "0"
# Platform: the packager maps Yocto's TARGET_ARCH to the OCI architecture...
HELLOCONTAINER_ARCH ?= "${TARGET_ARCH}"
# ...and the first armvN word of the tune to the OCI variant (arm/v5, v6, v7)
HELLOCONTAINER_TUNE ?= "${TUNE_FEATURES}"
# Strip a copy of the program before packaging it (0 keeps it as installed)
HELLOCONTAINER_STRIP ?= "${@'0' if bb.utils.to_boolean(d.getVar('INHIBIT_PACKAGE_STRIP')) else '1'}"
# Further `hellocontainer build` options, as shell words (e.g. "--gzip-level 6")
HELLOCONTAINER_EXTRA_ARGS ?= ""
# Where ${PN}-oci installs the layout on the target
HELLOCONTAINER_INSTALL_DIR ?= "${datadir}/hellocontainer/${BPN}"
# Deployed names: versioned layout directory and the stable link to it
HELLOCONTAINER_IMAGE_NAME ?= "${PN}-${PV}-${PR}-${MACHINE}"
HELLOCONTAINER_IMAGE_LINK_NAME ?= "${PN}-${MACHINE}"

# Scratch space of do_hellocontainer; the task empties it first, so nothing
# left by an earlier run can end up in the layout.
HELLOCONTAINER_OUTDIR = "${WORKDIR}/hellocontainer"

def hellocontainer_annotations(d):
    """The recipe's metadata as org.opencontainers.image.* annotation words."""
    import re
    import shlex

    annotations = {
        "org.opencontainers.image.title": d.getVar("BPN"),
        "org.opencontainers.image.description": d.getVar("SUMMARY"),
        "org.opencontainers.image.version": d.getVar("PV"),
    }
    license = d.getVar("LICENSE") or ""
    if license and license != "CLOSED":
        # OCI asks for an SPDX expression; BitBake spells AND as "&" and OR as "|".
        spdx = license.replace("&", " AND ").replace("|", " OR ")
        annotations["org.opencontainers.image.licenses"] = " ".join(spdx.split())
    homepage = d.getVar("HOMEPAGE") or ""
    annotations["org.opencontainers.image.url"] = homepage
    annotations["org.opencontainers.image.source"] = homepage
    # Only a git commit id names a revision; SRCREV is "INVALID" or AUTOINC otherwise.
    srcrev = d.getVar("SRCREV") or ""
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", srcrev):
        annotations["org.opencontainers.image.revision"] = srcrev
    return " ".join(shlex.quote("%s=%s" % (key, value))
                    for key, value in annotations.items() if value)

fakeroot python do_hellocontainer() {
    import shlex
    import shutil
    import subprocess

    outdir = d.getVar("HELLOCONTAINER_OUTDIR")
    program = d.getVar("D") + d.getVar("HELLOCONTAINER_BINARY")
    if not os.path.isfile(program):
        bb.fatal("hellocontainer: %s is not installed by do_install; set HELLOCONTAINER_BINARY "
                 "to the program's path below ${D}" % d.getVar("HELLOCONTAINER_BINARY"))

    env = dict(os.environ)
    env["PATH"] = d.getVar("PATH")
    # The image's timestamps come from the recipe's SOURCE_DATE_EPOCH, which
    # oe-core derives from the sources, never from the clock of this build.
    env["SOURCE_DATE_EPOCH"] = d.getVar("SOURCE_DATE_EPOCH")

    def run(argv):
        bb.note("Running: SOURCE_DATE_EPOCH=%s %s" % (env["SOURCE_DATE_EPOCH"], shlex.join(argv)))
        try:
            result = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            bb.fatal("%s not found on PATH (%s)" % (argv[0], env["PATH"]))
        if result.stdout:
            bb.note(result.stdout.rstrip())
        if result.returncode != 0:
            bb.fatal("%s exited %d: %s" % (argv[0], result.returncode, result.stdout.strip()))

    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_STRIP")):
        # ${D} holds the program with its debug info (do_package strips later,
        # into another tree); the image gets a stripped copy, made with the
        # target's strip.
        stripped = os.path.join(outdir, "stripped", os.path.basename(program))
        bb.utils.mkdirhier(os.path.dirname(stripped))
        run(shlex.split(d.getVar("STRIP")) + ["--strip-all", "--remove-section=.comment",
                                               "-o", stripped, program])
        program = stripped

    layout = os.path.join(outdir, "layout")
    argv = ["hellocontainer", "build", program, "--output", layout]
    options = (
        ("--path", d.getVar("HELLOCONTAINER_PATH")),
        ("--arch", d.getVar("HELLOCONTAINER_ARCH")),
        ("--tune", d.getVar("HELLOCONTAINER_TUNE")),
        ("--entrypoint", d.getVar("HELLOCONTAINER_ENTRYPOINT")),
        ("--cmd", d.getVar("HELLOCONTAINER_CMD")),
        ("--env", d.getVar("HELLOCONTAINER_ENV")),
        ("--user", d.getVar("HELLOCONTAINER_USER")),
        ("--workdir", d.getVar("HELLOCONTAINER_WORKDIR")),
        ("--port", d.getVar("HELLOCONTAINER_PORTS")),
        ("--label", d.getVar("HELLOCONTAINER_LABELS")),
        ("--annotation", d.getVar("HELLOCONTAINER_ANNOTATIONS")),
        ("--stop-signal", d.getVar("HELLOCONTAINER_STOP_SIGNAL")),
        ("--tag", d.getVar("HELLOCONTAINER_TAGS")),
        ("--compression", d.getVar("HELLOCONTAINER_COMPRESSION")),
    )
    for flag, value in options:
        # An unset variable leaves the choice to the packager's default.
        if value and value.strip():
            argv += [flag, value]
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_ARCHIVE")):
        argv += ["--archive", os.path.join(outdir, "oci-archive.tar")]
    argv += shlex.split(d.getVar("HELLOCONTAINER_EXTRA_ARGS") or "")
    run(argv)

    installdir = d.getVar("HELLOCONTAINER_INSTALL_DIR")
    if installdir:
        # This task may rerun without do_install (a changed HELLOCONTAINER_*
        # value): replace the copy, never add to it.
        target = d.getVar("D") + installdir
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(layout, target, symlinks=True)
}
do_hellocontainer[doc] = "Packages the installed program as an OCI image layout with the hellocontainer packager"
do_hellocontainer[cleandirs] = "${HELLOCONTAINER_OUTDIR}"
do_hellocontainer[depends] += "hellocontainer-native:do_populate_sysroot"
# Before do_populate_sysroot too: that task copies ${datadir} out of ${D}, and
# must not read it while the layout is being written there.
addtask hellocontainer after do_install before do_package do_populate_sysroot do_deploy

hellocontainer_deploy() {
    cp -R --no-preserve=ownership ${HELLOCONTAINER_OUTDIR}/layout \
        ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.oci
    if [ -f ${HELLOCONTAINER_OUTDIR}/oci-archive.tar ]; then
        install -m 0644 ${HELLOCONTAINER_OUTDIR}/oci-archive.tar \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.oci-archive.tar
    fi
    if [ "${HELLOCONTAINER_IMAGE_LINK_NAME}" != "${HELLOCONTAINER_IMAGE_NAME}" ]; then
        ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.oci
        if [ -f ${HELLOCONTAINER_OUTDIR}/oci-archive.tar ]; then
            ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci-archive.tar \
                ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.oci-archive.tar
        fi
    fi
}

do_deploy() {
    hellocontainer_deploy
}
do_deploy[doc] = "Copies the OCI image layout (and oci-archive) to DEPLOY_DIR_IMAGE"
addtask deploy after do_hellocontainer before do_build

# The layout on the target is data for a container engine, not for other
# recipes: keep it out of the sysroot.
SYSROOT_DIRS_IGNORE += "${HELLOCONTAINER_INSTALL_DIR}"

SUMMARY:${PN}-oci = "${SUMMARY} (OCI image layout for podman run oci:${HELLOCONTAINER_INSTALL_DIR})"
PACKAGES =+ "${PN}-oci"
FILES:${PN}-oci += "${HELLOCONTAINER_INSTALL_DIR}"
