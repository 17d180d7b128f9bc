# nooelint: oelint.var.mandatoryvar.HOMEPAGE
# The project has no public home page yet, so HOMEPAGE is left unset.
SUMMARY = "Package one static binary as a small, reproducible OCI image layout"
DESCRIPTION = "The hellocontainer packager, run by hellocontainer.bbclass: it \
               puts one statically linked program into a validated OCI image \
               layout whose digests depend only on the program, the settings \
               and SOURCE_DATE_EPOCH."
SECTION = "devel"
LICENSE = "MIT"
# The sources carry no license text of their own; oe-core ships MIT's.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

DEPENDS = "\
    python3-jsonschema-native \
    python3-pyelftools-native \
    python3-pyyaml-native \
"

# The packager is this repository's python/ directory, next to the layer:
# building it needs no network, the tool always matches the class calling it,
# and the fetcher checksums every file in it, so an edit rebuilds the tool.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://python"

S = "${UNPACKDIR}/python"

inherit python_setuptools_build_meta
inherit_defer native
