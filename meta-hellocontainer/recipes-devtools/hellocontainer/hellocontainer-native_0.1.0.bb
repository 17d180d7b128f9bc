# nooelint: oelint.var.mandatoryvar.HOMEPAGE
# The project has no public home page yet, so HOMEPAGE is left unset.
SUMMARY = "Package one static binary as a small, reproducible OCI image layout"
DESCRIPTION = "The hellocontainer packager, run by hellocontainer.bbclass: it \
               puts one statically linked program into a validated OCI image \
               layout whose digests depend only on the program, the settings \
               and SOURCE_DATE_EPOCH."
SECTION = "devel"
LICENSE = "MIT"
# The license text is the repository's LICENSE, fetched next to python/.
LIC_FILES_CHKSUM = "file://../LICENSE;md5=e297d9b73328c9e87597c156f140ef08"

DEPENDS = "\
    python3-jsonschema-native \
    python3-pyelftools-native \
    python3-pyyaml-native \
    python3-referencing-native \
"

# The packager is this repository's python/ directory, next to the layer
# (and its LICENSE, in the repository's root):
# building it needs no network, the tool always matches the class calling it,
# and the fetcher checksums every file in it, so an edit rebuilds the tool.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"

# A git URL of the hellocontainer repository, with branch= and rev=, for a layer
# copied out of it alone; empty: the repository around the layer (file://)
HELLOCONTAINER_NATIVE_SRC_URI ?= ""

# scarthgap has no UNPACKDIR: it unpacks into WORKDIR.
HELLOCONTAINER_UNPACKDIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"
SRC_URI = "${@'file://python file://LICENSE' if not d.getVar('HELLOCONTAINER_NATIVE_SRC_URI') else '${HELLOCONTAINER_NATIVE_SRC_URI};destsuffix=hellocontainer'}"
S = "${HELLOCONTAINER_UNPACKDIR}/${@'hellocontainer/' if d.getVar('HELLOCONTAINER_NATIVE_SRC_URI') else ''}python"

inherit python_setuptools_build_meta
inherit_defer native

# Shell completion and the manual page, generated from the packager's own
# parser at build time, in oe-core's places for them. Note that oe-core's
# staging (SYSROOT_DIRS_IGNORE) leaves ${mandir} and
# ${datadir}/bash-completion out of native sysroots: they stay in this
# recipe's image directory and sstate.
do_install:append() {
    install -d ${D}${datadir}/bash-completion/completions \
        ${D}${datadir}/zsh/site-functions ${D}${mandir}/man1
    PYTHONPATH="${S}/src" ${PYTHON} -m hellocontainer completion bash \
        > ${D}${datadir}/bash-completion/completions/hellocontainer
    PYTHONPATH="${S}/src" ${PYTHON} -m hellocontainer completion zsh \
        > ${D}${datadir}/zsh/site-functions/_hellocontainer
    PYTHONPATH="${S}/src" ${PYTHON} -m hellocontainer manpage \
        > ${D}${mandir}/man1/hellocontainer.1
}
