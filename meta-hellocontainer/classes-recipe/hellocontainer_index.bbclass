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

# The recipe whose layouts go in (it must inherit hellocontainer)
HELLOCONTAINER_INDEX_RECIPE ?= ""
# <multiconfig>:<MACHINE> words, one per further platform; the recipe's layout
# of this configuration (MACHINE) is always in
HELLOCONTAINER_INDEX_MULTICONFIGS ?= ""
# Deploy directory of a multiconfig, if not
# ${TOPDIR}/tmp-<multiconfig>${TCLIBCAPPEND}/deploy/images/<MACHINE>:
#   HELLOCONTAINER_INDEX_DEPLOY_DIR[arm] = "/path/to/deploy/images/qemuarm"
# The deployed link name of the recipe's layout; <machine> stands for each MACHINE
# (the default of hellocontainer.bbclass's HELLOCONTAINER_IMAGE_LINK_NAME)
HELLOCONTAINER_INDEX_LAYOUT_NAME ?= "${HELLOCONTAINER_INDEX_RECIPE}-<machine>.oci"
# Tags of the index
HELLOCONTAINER_INDEX_TAGS ?= "latest"
# Deployed names: versioned layout directory and the stable link to it
HELLOCONTAINER_INDEX_IMAGE_NAME ?= "${PN}-${PV}-${PR}"
HELLOCONTAINER_INDEX_IMAGE_LINK_NAME ?= "${PN}"

HELLOCONTAINER_INDEX_OUTDIR = "${WORKDIR}/hellocontainer-index"

def hellocontainer_index_configs(d):
    """(multiconfig, MACHINE) pairs of HELLOCONTAINER_INDEX_MULTICONFIGS."""
    pairs = []
    for word in (d.getVar("HELLOCONTAINER_INDEX_MULTICONFIGS") or "").split():
        multiconfig, sep, machine = word.partition(":")
        if not (sep and multiconfig and machine):
            bb.fatal("HELLOCONTAINER_INDEX_MULTICONFIGS: \"%s\" is not <multiconfig>:<MACHINE>; "
                     "write e.g. \"arm:qemuarm\"" % word)
        pairs.append((multiconfig, machine))
    return pairs

def hellocontainer_index_sources(d):
    """The deployed layouts that go into the index: this configuration's first."""
    name = d.getVar("HELLOCONTAINER_INDEX_LAYOUT_NAME")
    sources = [os.path.join(d.getVar("DEPLOY_DIR_IMAGE"),
                            name.replace("<machine>", d.getVar("MACHINE")))]
    for multiconfig, machine in hellocontainer_index_configs(d):
        # TCLIBCAPPEND: scarthgap's nodistro appends "-glibc" to every TMPDIR.
        tmpdir = "tmp-%s%s" % (multiconfig, d.getVar("TCLIBCAPPEND") or "")
        deploy = d.getVarFlag("HELLOCONTAINER_INDEX_DEPLOY_DIR", multiconfig) or \
            os.path.join(d.getVar("TOPDIR"), tmpdir, "deploy", "images", machine)
        sources.append(os.path.join(deploy, name.replace("<machine>", machine)))
    return sources

# nooelint: oelint.task.noanonpython
python __anonymous() {
    recipe = d.getVar("HELLOCONTAINER_INDEX_RECIPE")
    if not recipe:
        raise bb.parse.SkipRecipe("HELLOCONTAINER_INDEX_RECIPE is empty; name the recipe "
                                  "(inheriting hellocontainer) whose layouts go in")
    # A multiconfig this build does not have cannot be depended on; skipping
    # (rather than failing the parse) keeps such a recipe harmless until
    # BBMULTICONFIG lists them, and `bitbake` on it says why.
    multiconfigs = [mc for mc, _ in hellocontainer_index_configs(d)]
    configured = (d.getVar("BBMULTICONFIG") or "").split()
    missing = [mc for mc in multiconfigs if mc not in configured]
    if missing:
        raise bb.parse.SkipRecipe("needs the multiconfigs %s in BBMULTICONFIG"
                                  % " ".join(missing))
    d.appendVarFlag("do_hellocontainer_index", "depends", " %s:do_deploy" % recipe)
    # mcdepends name the default configuration "", where BB_CURRENT_MC says "default".
    here = d.getVar("BB_CURRENT_MC") or ""
    if here == "default":
        here = ""
    d.setVarFlag("do_hellocontainer_index", "mcdepends", " ".join(
        "mc:%s:%s:%s:do_deploy" % (here, mc, recipe) for mc in multiconfigs))
}

python do_hellocontainer_index() {
    import shlex
    import subprocess

    layout = os.path.join(d.getVar("HELLOCONTAINER_INDEX_OUTDIR"), "layout")
    argv = ["hellocontainer", "index", "--output", layout,
            "--tag", d.getVar("HELLOCONTAINER_INDEX_TAGS")] + hellocontainer_index_sources(d)
    env = dict(os.environ, PATH=d.getVar("PATH"))
    bb.note("Running: %s" % shlex.join(argv))
    try:
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError:
        bb.fatal("hellocontainer not found on PATH (%s)" % env["PATH"])
    if result.returncode != 0:
        bb.fatal("hellocontainer index exited %d: %s" % (result.returncode, result.stdout.strip()))
}
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
