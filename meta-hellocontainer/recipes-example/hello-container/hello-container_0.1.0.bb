# nooelint: oelint.var.mandatoryvar.HOMEPAGE
# The project has no public home page yet, so HOMEPAGE is left unset.
SUMMARY = "Hello container: one static program, shipped as an OCI image"
DESCRIPTION = "The repository's examples/hello program, linked statically and \
               packaged by hellocontainer.bbclass. The image is deployed to \
               DEPLOY_DIR_IMAGE; the hello-container-oci package puts it on \
               the target for podman run."
SECTION = "examples"
LICENSE = "MIT"
# The license text is the repository's LICENSE, fetched next to hello/.
LIC_FILES_CHKSUM = "file://../LICENSE;md5=e297d9b73328c9e87597c156f140ef08"

# The sources are this repository's examples/hello, next to the layer: the
# recipe builds what is checked out there, and the fetcher checksums every
# file in it, so an edit rebuilds the program and its image. LICENSE comes
# from the repository's root.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${THISDIR}/../../../examples:${THISDIR}/../../..:"
SRC_URI = "file://hello file://LICENSE"

# scarthgap has no UNPACKDIR: it unpacks into WORKDIR.
S = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}/hello"

inherit autotools hellocontainer

# configure links statically by default; it must not look for the packager,
# because hellocontainer.bbclass runs the native one itself.
EXTRA_OECONF = "--disable-container"

HELLOCONTAINER_BINARY = "${bindir}/hello"

# The sources come from a working tree, whose file times differ in every
# checkout, so oe-core's fallback (the youngest file) is not reproducible.
# A fixed epoch makes every checkout of one revision build the same image.
SOURCE_DATE_EPOCH = "${SOURCE_DATE_EPOCH_FALLBACK}"
