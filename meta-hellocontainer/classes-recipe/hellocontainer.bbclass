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
# (and, to start it at boot, one `bundle` and one `autostart` call).
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
# Attach an SPDX SBOM of the program and its C library to the image and deploy a copy,
# <image name>.spdx.json (1), or neither (0); more libraries: --sbom-library in EXTRA_ARGS
HELLOCONTAINER_SBOM ?= "1"
# The SBOM's supplier of the program, e.g. "Organization: ACME Inc." (empty: not stated)
HELLOCONTAINER_SBOM_SUPPLIER ?= ""
# Where ${PN}-oci installs the layout on the target
HELLOCONTAINER_INSTALL_DIR ?= "${datadir}/hellocontainer/${BPN}"
# Deployed names: versioned layout directory and the stable link to it
HELLOCONTAINER_IMAGE_NAME ?= "${PN}-${PV}-${PR}-${MACHINE}"
HELLOCONTAINER_IMAGE_LINK_NAME ?= "${PN}-${MACHINE}"
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
# Network of the container: none (loopback only) or host (the board's)
HELLOCONTAINER_NETWORK ?= "none"
# Name of the container
HELLOCONTAINER_NAME ?= "${BPN}"
# Name of the systemd service (without .service) or of the SysV init script
HELLOCONTAINER_SERVICE ?= "hellocontainer-${BPN}"
# Package that puts the runtime on the target (meta-virtualization's names)
HELLOCONTAINER_RUNTIME_PACKAGE ?= "${@hellocontainer_runtime_package(d)}"
# Collections (BBFILE_COLLECTIONS) of which one must provide that package; empty: no check
HELLOCONTAINER_RUNTIME_LAYERS ?= "virtualization-layer"

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

def hellocontainer_build_argv(d, program, layout):
    """The `hellocontainer build` call that packages `program` into `layout`."""
    import shlex

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
        ("--gzip-level", d.getVar("HELLOCONTAINER_GZIP_LEVEL")),
    )
    for flag, value in options:
        # An unset variable leaves the choice to the packager's default.
        if value and value.strip():
            argv += [flag, value]
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_ALLOW_DYNAMIC")):
        argv.append("--allow-dynamic")
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_ARCHIVE")):
        argv += ["--archive", os.path.join(os.path.dirname(layout), "oci-archive.tar")]
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_SBOM")):
        argv += hellocontainer_sbom_argv(d)
        argv += ["--sbom-copy", os.path.join(os.path.dirname(layout), "sbom.spdx.json")]
    argv += shlex.split(d.getVar("HELLOCONTAINER_EXTRA_ARGS") or "")
    return argv

def hellocontainer_cpe_ids(products, version):
    """CPE 2.3 names from CVE_PRODUCT words ([vendor:]product) and CVE_VERSION, as oe-core's
    cve_check.get_cpe_ids makes them (a "+git..." suffix is not part of the version)."""
    import re

    def escape(value):
        return re.sub(r"([^A-Za-z0-9._-])", r"\\\1", value)

    version = escape(version.split("+git")[0]) if version else "*"
    cpes = []
    for product in products.split():
        vendor, _, name = product.rpartition(":")
        cpes.append("cpe:2.3:a:%s:%s:%s:*:*:*:*:*:*:*"
                    % (escape(vendor) if vendor else "*", escape(name), version))
    return cpes

def hellocontainer_spdx_license(d, license):
    """LICENSE with oe-core's SPDXLICENSEMAP applied (GPLv2 -> GPL-2.0-only); the packager
    turns BitBake's & and | into AND and OR. CLOSED has no SPDX name: NOASSERTION."""
    import re

    if not license or license.strip() == "CLOSED":
        return "NOASSERTION"
    mapped = getattr(d, "getVarFlag", lambda name, flag: None)
    return re.sub(r"[^\s&|()]+",
                  lambda m: mapped("SPDXLICENSEMAP", m.group(0)) or m.group(0), license)

def hellocontainer_download_location(d):
    """The first remote SRC_URI entry in SPDX's form (git+https://host/path@SRCREV); local
    file:// sources have none."""
    import re

    for uri in (d.getVar("SRC_URI") or "").split():
        scheme, _, rest = uri.partition("://")
        location, *params = rest.split(";")
        options = dict(p.split("=", 1) for p in params if "=" in p)
        if scheme in ("http", "https", "ftp"):
            return "%s://%s" % (scheme, location)
        if scheme in ("git", "gitsm"):
            url = "git+%s://%s" % (options.get("protocol", "git"), location)
            srcrev = d.getVar("SRCREV") or ""
            return url + ("@" + srcrev if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", srcrev) else "")
    return ""

def hellocontainer_libc_pkgdata(d):
    """PV and LICENSE of the C library recipe this build used, from its pkgdata (the task
    depends on virtual/libc:do_packagedata). TCLIBC names the library; GLIBCVERSION and
    PREFERRED_VERSION are only patterns ("2.43%") and say nothing for musl."""
    pn = d.getVar("PREFERRED_PROVIDER_virtual/libc") or d.getVar("TCLIBC") or ""
    values = {}
    path = os.path.join(d.getVar("PKGDATA_DIR") or "", "runtime", pn)
    if pn and os.path.isfile(path):
        with open(path) as stream:
            for line in stream:
                key, sep, value = line.partition(": ")
                if sep:
                    # write_if_exists writes "PV:glibc: 2.43" or "PV: 2.43"
                    values.setdefault(key.split(":")[0], value.strip())
    return pn, values

# The C library's CPE vendor and product, as the NVD names them.
HELLOCONTAINER_LIBC_CPE = "glibc=gnu:glibc musl=musl-libc:musl newlib=redhat:newlib"

def hellocontainer_sbom_argv(d):
    """--sbom-package and --sbom-library: the recipe's metadata and the C library the program
    is statically linked with, for the packager's SPDX SBOM."""
    import shlex

    def words(fields):
        return " ".join(shlex.quote("%s=%s" % (key, value)) for key, value in fields if value)

    version = d.getVar("CVE_VERSION") or d.getVar("PV")
    package = [
        ("name", d.getVar("BPN")),
        ("version", d.getVar("PV")),
        ("license", hellocontainer_spdx_license(d, d.getVar("LICENSE"))),
        ("supplier", d.getVar("HELLOCONTAINER_SBOM_SUPPLIER")),
        ("homepage", d.getVar("HOMEPAGE")),
        ("download_location", hellocontainer_download_location(d)),
    ]
    package += [("cpe", cpe) for cpe in
                hellocontainer_cpe_ids(d.getVar("CVE_PRODUCT") or d.getVar("BPN"), version)]
    layer = (d.getVar("FILE_LAYERNAME") or "").lower()
    package.append(("purl", "pkg:yocto/%s%s@%s" % (layer + "/" if layer else "", d.getVar("BPN").lower(),
                                                   d.getVar("PV"))))
    argv = ["--sbom-package", words(package)]
    tclibc = d.getVar("TCLIBC") or ""
    # INHIBIT_DEFAULT_DEPS: the program was not linked against the target's C library.
    if tclibc in ("glibc", "musl", "newlib") and \
            not bb.utils.to_boolean(d.getVar("INHIBIT_DEFAULT_DEPS")):
        pn, data = hellocontainer_libc_pkgdata(d)
        libc_version = data.get("PV", "")
        products = dict(item.split("=", 1) for item in d.getVar("HELLOCONTAINER_LIBC_CPE").split())
        library = [("name", tclibc), ("version", libc_version),
                   ("license", hellocontainer_spdx_license(d, data.get("LICENSE", "")))]
        if libc_version and tclibc in products:
            library += [("cpe", cpe) for cpe in hellocontainer_cpe_ids(products[tclibc], libc_version)]
        argv += ["--sbom-library", words(library)]
    return argv

def hellocontainer_init_system(d):
    """systemd or sysvinit, as DISTRO_FEATURES has them (systemd first, as oe-core's
    systemd.bbclass inhibits update-rc.d when both are there); empty for neither."""
    features = (d.getVar("DISTRO_FEATURES") or "").split()
    return next((name for name in ("systemd", "sysvinit") if name in features), "")

def hellocontainer_init_class(d):
    """The class that registers the service, or nothing when the container does not start
    at boot: never both systemd and update-rc.d."""
    if not d.getVar("HELLOCONTAINER_AUTOSTART"):
        return ""
    return {"systemd": "systemd", "sysvinit": "update-rc.d"}.get(hellocontainer_init_system(d), "")

def hellocontainer_runtime_package(d):
    """meta-virtualization's package for the runtime; for runc, what its runc recipe (and crun,
    which also installs a runc) RPROVIDES."""
    runtime = d.getVar("HELLOCONTAINER_AUTOSTART") or ""
    return {"crun": "crun", "runc": "virtual-runc", "podman": "podman"}.get(runtime, "")

def hellocontainer_check_autostart(d):
    """Parse-time checks of the start at boot, for what only BitBake knows (layers, init
    system, install paths); the packager checks the values themselves."""
    runtime = d.getVar("HELLOCONTAINER_AUTOSTART") or ""
    bundle = bb.utils.to_boolean(d.getVar("HELLOCONTAINER_BUNDLE"))
    if bundle and not d.getVar("HELLOCONTAINER_BUNDLE_DIR"):
        bb.fatal("HELLOCONTAINER_BUNDLE = \"1\" needs HELLOCONTAINER_BUNDLE_DIR, the bundle's "
                 "path on the target")
    if not runtime:
        return
    if runtime not in ("crun", "runc", "podman"):
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"%s\" is not a container runtime; set crun, "
                 "runc or podman, or leave it empty" % runtime)
    layers = (d.getVar("HELLOCONTAINER_RUNTIME_LAYERS") or "").split()
    collections = (d.getVar("BBFILE_COLLECTIONS") or "").split()
    if layers and not any(layer in collections for layer in layers):
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"%s\" needs %s on the target, and no layer of this "
                 "build provides it: add meta-virtualization (collection %s) to bblayers.conf, "
                 "or set HELLOCONTAINER_RUNTIME_LAYERS to the collection of the layer that does"
                 % (runtime, d.getVar("HELLOCONTAINER_RUNTIME_PACKAGE"), " ".join(layers)))
    if not hellocontainer_init_system(d):
        bb.fatal("HELLOCONTAINER_AUTOSTART needs \"systemd\" or \"sysvinit\" in DISTRO_FEATURES "
                 "to install a service (BusyBox init runs the same rc5.d links as sysvinit); "
                 "add one, or leave HELLOCONTAINER_AUTOSTART empty")
    if runtime in ("crun", "runc") and not bundle:
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"%s\" runs the runtime bundle, and "
                 "HELLOCONTAINER_BUNDLE = \"0\" installs none; set it to \"1\"" % runtime)
    if runtime == "podman" and not d.getVar("HELLOCONTAINER_INSTALL_DIR"):
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"podman\" runs the image layout, and "
                 "HELLOCONTAINER_INSTALL_DIR is empty; set the layout's path on the target")

def hellocontainer_target_argvs(d, layout):
    """The packager calls that write the bundle and the service into ${D}, next to the
    layout: `hellocontainer bundle` and `hellocontainer autostart`, each when asked for."""
    import shlex

    dest = d.getVar("D")
    network = d.getVar("HELLOCONTAINER_NETWORK")
    # The image the board runs is the first tag's (all tags name the same image).
    tags = shlex.split(d.getVar("HELLOCONTAINER_TAGS") or "") or ["latest"]
    argvs = []
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_BUNDLE")):
        argvs.append(["hellocontainer", "bundle", "%s:%s" % (layout, tags[0]),
                      "--output", dest + d.getVar("HELLOCONTAINER_BUNDLE_DIR"),
                      "--network", network])
    runtime = d.getVar("HELLOCONTAINER_AUTOSTART")
    if runtime:
        argv = ["hellocontainer", "autostart", "--runtime", runtime,
                "--name", d.getVar("HELLOCONTAINER_NAME"),
                "--restart", d.getVar("HELLOCONTAINER_RESTART"), "--network", network]
        restarts = (
            ("--restart-max-delay", d.getVar("HELLOCONTAINER_RESTART_MAX_DELAY")),
            ("--give-up-after", d.getVar("HELLOCONTAINER_GIVE_UP_AFTER")),
            ("--give-up-window", d.getVar("HELLOCONTAINER_GIVE_UP_WINDOW")),
        )
        for flag, value in restarts:
            # Empty: the packager's default; the packager checks the value.
            if value and value.strip():
                argv += [flag, value.strip()]
        if runtime == "podman":
            argv += ["--layout", "%s:%s" % (d.getVar("HELLOCONTAINER_INSTALL_DIR"), tags[0])]
        else:
            argv += ["--bundle", d.getVar("HELLOCONTAINER_BUNDLE_DIR")]
        service = d.getVar("HELLOCONTAINER_SERVICE")
        if hellocontainer_init_system(d) == "systemd":
            argv += ["--systemd", "%s%s/%s.service" % (dest, d.getVar("systemd_system_unitdir"),
                                                       service)]
        else:
            argv += ["--sysv", "%s%s/init.d/%s" % (dest, d.getVar("sysconfdir"), service)]
        argvs.append(argv)
    return argvs

def hellocontainer_package(d):
    """do_hellocontainer: package the installed program, deploy-ready in
    HELLOCONTAINER_OUTDIR, and put the layout (and the bundle and service) into ${D}."""
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
            # The packager names its own flag; a recipe sets the class variable instead.
            message = result.stdout.strip().replace(
                "pass --allow-dynamic", 'set HELLOCONTAINER_ALLOW_DYNAMIC = "1"')
            bb.fatal("%s exited %d: %s" % (argv[0], result.returncode, message))

    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_STRIP")):
        # ${D} holds the program with its debug info (do_package strips later,
        # into another tree); the image gets a stripped copy, made with the
        # target's strip.
        stripped = os.path.join(outdir, "stripped", os.path.basename(program))
        bb.utils.mkdirhier(os.path.dirname(stripped))
        run(shlex.split(d.getVar("STRIP")) + ["--strip-all", "--remove-section=.comment",
                                               "-o", stripped, program])
        program = stripped

    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_ALLOW_DYNAMIC")):
        # It packages, then the container fails at start ("exec /hello: no
        # such file") unless its loader and libraries are in the image too.
        bb.warn("HELLOCONTAINER_ALLOW_DYNAMIC = \"1\": %s may be dynamically linked, and "
                "the image holds no dynamic loader or libraries unless HELLOCONTAINER_EXTRA_ARGS "
                "adds them (--file); link it statically if you can"
                % d.getVar("HELLOCONTAINER_BINARY"))
    layout = os.path.join(outdir, "layout")
    run(hellocontainer_build_argv(d, program, layout))

    installdir = d.getVar("HELLOCONTAINER_INSTALL_DIR")
    if installdir:
        # This task may rerun without do_install (a changed HELLOCONTAINER_*
        # value): replace the copy, never add to it.
        target = d.getVar("D") + installdir
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(layout, target, symlinks=True)
    # The packager replaces a bundle or service file of an earlier run itself.
    for argv in hellocontainer_target_argvs(d, layout):
        run(argv)

fakeroot python do_hellocontainer() {
    hellocontainer_package(d)
}
do_hellocontainer[doc] = "Packages the installed program as an OCI image layout with the hellocontainer packager"
do_hellocontainer[cleandirs] = "${HELLOCONTAINER_OUTDIR}"
do_hellocontainer[depends] += "hellocontainer-native:do_populate_sysroot"
# The SBOM names the C library's version as its recipe packaged it.
# A recipe that links no target C library (INHIBIT_DEFAULT_DEPS) must not pull one in for it.
do_hellocontainer[depends] += "${@'virtual/libc:do_packagedata' if bb.utils.to_boolean(d.getVar('HELLOCONTAINER_SBOM')) and not bb.utils.to_boolean(d.getVar('INHIBIT_DEFAULT_DEPS')) else ''}"
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
    # The SBOM beside the layout, where compliance tooling looks for it
    if [ -f ${HELLOCONTAINER_OUTDIR}/sbom.spdx.json ]; then
        install -m 0644 ${HELLOCONTAINER_OUTDIR}/sbom.spdx.json \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_NAME}.spdx.json
    fi
    if [ "${HELLOCONTAINER_IMAGE_LINK_NAME}" != "${HELLOCONTAINER_IMAGE_NAME}" ]; then
        ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.oci \
            ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.oci
        if [ -f ${HELLOCONTAINER_OUTDIR}/sbom.spdx.json ]; then
            ln -sfn ${HELLOCONTAINER_IMAGE_NAME}.spdx.json \
                ${DEPLOYDIR}/${HELLOCONTAINER_IMAGE_LINK_NAME}.spdx.json
        fi
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

# The layout on the target is data for a container engine, not for other
# recipes: keep it out of the sysroot.
SYSROOT_DIRS_IGNORE += "${HELLOCONTAINER_INSTALL_DIR}"

SUMMARY:${PN}-oci = "${SUMMARY} (OCI image layout for podman run oci:${HELLOCONTAINER_INSTALL_DIR})"
PACKAGES =+ "${PN}-oci"
FILES:${PN}-oci += "${HELLOCONTAINER_INSTALL_DIR}"

# Start at boot. The deferred inherit picks systemd.bbclass or
# update-rc.d.bbclass (or neither) by DISTRO_FEATURES once the recipe is
# parsed, so it sees the recipe's own values; the checks below run then too,
# so that a mistake stops the parse rather than a build hours later.
inherit_defer ${@hellocontainer_init_class(d)}

# nooelint: oelint.task.noanonpython
python __anonymous() {
    hellocontainer_check_autostart(d)
    init_class = hellocontainer_init_class(d)
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

SYSROOT_DIRS_IGNORE += "${HELLOCONTAINER_BUNDLE_DIR}"
FILES:${PN}-oci += "\
    ${HELLOCONTAINER_BUNDLE_DIR} \
    ${sysconfdir}/init.d/${HELLOCONTAINER_SERVICE} \
    ${systemd_system_unitdir}/${HELLOCONTAINER_SERVICE}.service \
"
RDEPENDS:${PN}-oci += "${HELLOCONTAINER_RUNTIME_PACKAGE}"

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
