#
# SPDX-License-Identifier: MIT
#
# hellocontainer_index.bbclass: one multi-platform image index from the
# layouts that a hellocontainer recipe deploys in several configurations.
#
# A build for several MACHINEs sets them up as multiconfigs, each with its own
# TMPDIR, as the Yocto manual does (conf/multiconfig/arm.conf:
# MACHINE = "qemuarm", TMPDIR = "${TOPDIR}/tmp-arm"). A recipe of its own then
# joins the layouts of one recipe (one that inherits hellocontainer) into one
# image index, deployed as ${PN}.oci:
#
#   inherit hellocontainer_index
#   HELLOCONTAINER_INDEX_RECIPE = "hello-container"
#   HELLOCONTAINER_INDEX_MULTICONFIGS = "arm:qemuarm arm64:qemuarm64"
#
# `bitbake hello-container-multiarch` builds the recipe in this configuration
# and in each multiconfig (mcdepends on their do_deploy) and runs ONE
# `hellocontainer index` call on the deployed layouts. `podman run --platform`
# and `skopeo copy --all` then pick the image of each platform.

inherit deploy nopackages

# Nothing is compiled: no toolchain or C library to build first, and nothing
# for other recipes' sysroots (whose task would wait for a target binutils).
INHIBIT_DEFAULT_DEPS = "1"
deltask do_populate_sysroot
# The index is deployed into the machine's DEPLOY_DIR_IMAGE, so it is
# machine-specific, as images are: see hellocontainer.bbclass.
PACKAGE_ARCH = "${MACHINE_ARCH}"

# The recipe whose layouts go in (it must inherit hellocontainer)
HELLOCONTAINER_INDEX_RECIPE ?= ""
# <multiconfig>:<MACHINE> words, one per further platform; the recipe's layout
# of this configuration (MACHINE) is always in
HELLOCONTAINER_INDEX_MULTICONFIGS ?= ""
# Deploy directory of a multiconfig, if not
# ${TOPDIR}/tmp-<multiconfig>${TCLIBCAPPEND}/deploy/images/<MACHINE>:
#   HELLOCONTAINER_INDEX_DEPLOY_DIR[arm] = "/path/to/deploy/images/qemuarm"
# (a flag per multiconfig, each in the task's signature)
# The deployed link name of the recipe's layout; <machine> stands for each MACHINE
# (the default of hellocontainer.bbclass's HELLOCONTAINER_IMAGE_LINK_NAME)
HELLOCONTAINER_INDEX_LAYOUT_NAME ?= "${HELLOCONTAINER_INDEX_RECIPE}-<machine>.oci"
# Tags of the index
HELLOCONTAINER_INDEX_TAGS ?= "latest"
# Deployed name of the versioned layout directory
HELLOCONTAINER_INDEX_IMAGE_NAME ?= "${PN}-${PV}-${PR}"
# Deployed name of the stable link to it
HELLOCONTAINER_INDEX_IMAGE_LINK_NAME ?= "${PN}"

HELLOCONTAINER_INDEX_OUTDIR = "${WORKDIR}/hellocontainer-index"

# nooelint: oelint.task.noanonpython
python __anonymous() {
    hellocontainer_layer.index.set_dependencies(d)
}

python do_hellocontainer_index() {
    hellocontainer_layer.index.index(d)
}
# The flags of HELLOCONTAINER_INDEX_DEPLOY_DIR that the task reads are named at
# run time, out of sight of the code parser: declared here, so a changed deploy
# directory reruns the task.
do_hellocontainer_index[vardeps] += "${@hellocontainer_layer.index.deploy_dir_vardeps(d)}"
do_hellocontainer_index[doc] = "Joins the layouts of HELLOCONTAINER_INDEX_RECIPE from every configuration into one image index"
do_hellocontainer_index[cleandirs] = "${HELLOCONTAINER_INDEX_OUTDIR}"
do_hellocontainer_index[depends] += "hellocontainer-native:do_populate_sysroot"
addtask hellocontainer_index before do_deploy

do_deploy() {
    cp -R --no-preserve=ownership ${HELLOCONTAINER_INDEX_OUTDIR}/layout \
        ${DEPLOYDIR}/${HELLOCONTAINER_INDEX_IMAGE_NAME}.oci
    if [ "${HELLOCONTAINER_INDEX_IMAGE_LINK_NAME}" != "${HELLOCONTAINER_INDEX_IMAGE_NAME}" ]; then
        ln -sfn ${HELLOCONTAINER_INDEX_IMAGE_NAME}.oci \
            ${DEPLOYDIR}/${HELLOCONTAINER_INDEX_IMAGE_LINK_NAME}.oci
    fi
}
do_deploy[doc] = "Copies the image index layout to DEPLOY_DIR_IMAGE"
addtask deploy after do_hellocontainer_index before do_build
