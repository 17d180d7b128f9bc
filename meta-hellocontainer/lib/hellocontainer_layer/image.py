#
# SPDX-License-Identifier: MIT
#
"""hellocontainer.bbclass's Python: BitBake variables in, packager calls out.

Every function takes the recipe's datastore `d` and reads it with literal variable names, so
BitBake's code parser sees each one and puts its value in the signature of the task that calls
the function. A name it cannot see (a flag named at run time) is declared in the class with
[vardeps].
"""

import json
import os
import re
import shlex
import shutil
import subprocess

import bb

# `hellocontainer build` exits with this status when it refuses a dynamically linked program
# (python/src/hellocontainer/errors.py, DynamicBinaryError).
DYNAMIC_EXIT_STATUS = 3

# A git commit id: only such a SRCREV names a revision ("INVALID" and AUTOINC do not).
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def annotations(d):
    """The recipe's metadata as org.opencontainers.image.* annotation words."""
    values = {
        "org.opencontainers.image.title": d.getVar("BPN"),
        "org.opencontainers.image.description": d.getVar("SUMMARY"),
        "org.opencontainers.image.version": d.getVar("PV"),
    }
    license = d.getVar("LICENSE") or ""
    if license and license != "CLOSED":
        # OCI asks for an SPDX expression; BitBake spells AND as "&" and OR as "|".
        spdx = license.replace("&", " AND ").replace("|", " OR ")
        values["org.opencontainers.image.licenses"] = " ".join(spdx.split())
    homepage = d.getVar("HOMEPAGE") or ""
    values["org.opencontainers.image.url"] = homepage
    values["org.opencontainers.image.source"] = homepage
    srcrev = d.getVar("SRCREV") or ""
    if _COMMIT.fullmatch(srcrev):
        values["org.opencontainers.image.revision"] = srcrev
    return " ".join(shlex.quote(f"{key}={value}")
                    for key, value in values.items() if value)


def build_argv(d, program, layout):
    """The `hellocontainer build` call that packages `program` into `layout`."""
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
        argv += sbom_argv(d)
        for name in sbom_formats(d):
            argv += ["--sbom-format", name, "--sbom-copy",
                     os.path.join(os.path.dirname(layout), SBOM_COPIES[name])]
    argv += sign_key_argv(d)
    argv += shlex.split(d.getVar("HELLOCONTAINER_EXTRA_ARGS") or "")
    return argv


# ---------------------------------------------------------------------------------------------
# Signing: the image and its bundle with HELLOCONTAINER_SIGN_KEY on the build machine; the
# bundle checked at boot with the public key HELLOCONTAINER_VERIFY_KEY on the target's root.
# The packager reads the private key where it is: it is never copied into WORKDIR, sstate,
# the deploy folder or a log. Its CONTENT, not its path, is in the task signature
# ([file-checksums] in the class; the path is in [vardepsexclude]): a new key reruns the task,
# and the same key at another path on another machine keeps sstate valid.

# The environment variable the packager reads a private key's passphrase from
# (python/src/hellocontainer/provenance/signing.py).
PASSPHRASE_ENV = "HELLOCONTAINER_SIGN_PASSWORD"


def sign_key_argv(d):
    """--sign-key for `build` and `bundle`, when HELLOCONTAINER_SIGN_KEY names a key."""
    key = d.getVar("HELLOCONTAINER_SIGN_KEY")
    return ["--sign-key", key] if key else []


def key_file_checksums(d):
    """[file-checksums] of do_hellocontainer: the private key and the public key it installs,
    by content. BitBake puts a checksummed file's path into the task hash too, all of it, or
    only what follows "/./" in it: "DIR/./NAME:True" keeps the folder out, so the same key in
    another folder (another machine, another checkout) keeps sstate valid."""
    keys = (d.getVar("HELLOCONTAINER_SIGN_KEY"), d.getVar("HELLOCONTAINER_VERIFY_KEY"))
    return " ".join(f"{os.path.dirname(key)}/./{os.path.basename(key)}:True"
                    for key in keys if key)


def passphrase_env(d):
    """The private key's passphrase, from the environment bitbake was started in (BitBake
    cleans its tasks' environment; BB_ORIGENV keeps the original, which conf/layer.conf keeps
    out of the task signature), as an environment for the packager; empty when there is none."""
    origenv = d.getVar("BB_ORIGENV", False)
    secret = origenv.getVar(PASSPHRASE_ENV) if origenv is not None else None
    return {PASSPHRASE_ENV: secret} if secret else {}


def check_keys(d):
    """Parse-time checks of the key settings: the files exist, verification has something to
    check before a start (the bundle of crun or runc, the layout of podman), and podman's store
    is rebuilt from the checked layout at every boot."""
    for name in ("HELLOCONTAINER_SIGN_KEY", "HELLOCONTAINER_VERIFY_KEY"):
        path = d.getVar(name)
        if path and not (os.path.isabs(path) and os.path.isfile(path)):
            bb.fatal(f"{name} = \"{path}\" is not a file on this machine; give the absolute "
                     "path of the PEM key (see meta-hellocontainer/README.md, Signing)")
    if not d.getVar("HELLOCONTAINER_VERIFY_KEY"):
        return
    runtime = d.getVar("HELLOCONTAINER_AUTOSTART")
    if runtime not in ("crun", "runc", "podman"):
        bb.fatal("HELLOCONTAINER_VERIFY_KEY checks the signed image before the autostart starts "
                 "it: set HELLOCONTAINER_AUTOSTART to crun, runc or podman, or leave it empty")
    root = os.path.normpath(d.getVar("HELLOCONTAINER_PODMAN_ROOT") or "")
    if runtime == "podman" and not root.startswith("/run/"):
        # A store kept across boots would be started from as it is, unchecked.
        bb.fatal(f"HELLOCONTAINER_PODMAN_ROOT = \"{root}\" outlives a reboot, so podman would "
                 "start what it holds without the signature check: keep it under /run with "
                 "HELLOCONTAINER_VERIFY_KEY")


def openssl_package(d):
    """The package that puts the openssl command on the target, when the bundle or layout is
    checked at boot (oe-core's openssl recipe ships the program in ${PN}-bin)."""
    return "openssl-bin" if d.getVar("HELLOCONTAINER_VERIFYING") == "1" else ""


def cpe_ids(products, version):
    """CPE 2.3 names from CVE_PRODUCT words ([vendor:]product) and CVE_VERSION, with the
    vendor, product and version of oe-core's cve_check.get_cpe_ids (a "+git..." suffix is not
    part of the version). Not that function itself: it writes the part as "*", a pattern that
    matches any part, and scarthgap's escapes nothing; an SBOM names one product, an
    application ("a"), as the NVD does."""
    def escape(value):
        return re.sub(r"([^A-Za-z0-9._-])", r"\\\1", value)

    version = escape(version.split("+git")[0]) if version else "*"
    cpes = []
    for product in products.split():
        vendor, _, name = product.rpartition(":")
        vendor = escape(vendor) if vendor else "*"
        cpes.append(f"cpe:2.3:a:{vendor}:{escape(name)}:{version}:*:*:*:*:*:*:*")
    return cpes


def spdx_license(d, license):
    """LICENSE with oe-core's SPDXLICENSEMAP applied (GPLv2 -> GPL-2.0-only); the packager
    turns BitBake's & and | into AND and OR. CLOSED has no SPDX name: NOASSERTION."""
    if not license or license.strip() == "CLOSED":
        return "NOASSERTION"
    return re.sub(r"[^\s&|()]+",
                  lambda m: d.getVarFlag("SPDXLICENSEMAP", m.group(0)) or m.group(0), license)


def license_vardeps(d):
    """The SPDXLICENSEMAP flags that spdx_license reads for the recipe's LICENSE, named for
    [vardeps]: the code parser cannot see a flag named at run time."""
    words = re.findall(r"[^\s&|()]+", d.getVar("LICENSE") or "")
    return " ".join(f"SPDXLICENSEMAP[{word}]" for word in sorted(set(words)))


def download_location(d):
    """The first remote SRC_URI entry in SPDX's form (git+https://host/path@SRCREV); local
    file:// sources have none."""
    for uri in (d.getVar("SRC_URI") or "").split():
        scheme, _, rest = uri.partition("://")
        location, *params = rest.split(";")
        options = dict(p.split("=", 1) for p in params if "=" in p)
        if scheme in ("http", "https", "ftp"):
            return f"{scheme}://{location}"
        if scheme in ("git", "gitsm"):
            url = "git+{}://{}".format(options.get("protocol", "git"), location)
            srcrev = d.getVar("SRCREV") or ""
            return url + ("@" + srcrev if _COMMIT.fullmatch(srcrev) else "")
    return ""


def libc_pkgdata(d):
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


# The copy of each SBOM format beside the layout (and deployed as <image name> + suffix).
SBOM_COPIES = {"spdx2": "sbom.spdx.json", "spdx3": "sbom.spdx3.json", "cyclonedx": "sbom.cdx.json"}


def sbom_formats(d):
    """HELLOCONTAINER_SBOM_FORMATS, or the SPDX version create-spdx writes in this build:
    SPDX 3 where create-spdx-3.0 is inherited (SPDX_VERSION 3.0.1, the default from styhead
    on and the only one from wrynose), else SPDX 2 as scarthgap's create-spdx-2.2."""
    formats = (d.getVar("HELLOCONTAINER_SBOM_FORMATS") or "").split()
    if not formats:
        formats = ["spdx3" if (d.getVar("SPDX_VERSION") or "").startswith("3") else "spdx2"]
    unknown = [name for name in formats if name not in SBOM_COPIES]
    if unknown:
        bb.fatal(f"HELLOCONTAINER_SBOM_FORMATS: unknown format {unknown[0]!r}; choose from "
                 f"{' '.join(SBOM_COPIES)}")
    return list(dict.fromkeys(formats))


def sbom_supplier(d):
    """HELLOCONTAINER_SBOM_SUPPLIER, else the supplier oe-core's own SBOM names: SPDX_SUPPLIER
    of create-spdx-2.2, or the agent SPDX_PACKAGE_SUPPLIER of create-spdx-3.0 points at."""
    supplier = (d.getVar("HELLOCONTAINER_SBOM_SUPPLIER") or "").strip()
    if supplier:
        return supplier
    if (d.getVar("SPDX_VERSION") or "").startswith("2"):
        return (d.getVar("SPDX_SUPPLIER") or "").strip()
    base = d.getVar("SPDX_PACKAGE_SUPPLIER") or ""
    if base:
        base = d.getVar(base + "_ref") or base  # an alias names another agent's variables
        name = (d.getVar(base + "_name") or "").strip()
        if name:
            kind = "Person" if d.getVar(base + "_type") == "person" else "Organization"
            return f"{kind}: {name}"
    return ""


def recipe_spdx3_id(d):
    """The spdxId of the recipe's own package element, which create-spdx-3.0's
    do_create_recipe_spdx writes to ${DEPLOY_DIR_SPDX}/${SSTATE_PKGARCH}/static/static-${PN}
    .spdx.json (oe/sbom30.py, jsonld_arch_path) before do_hellocontainer runs (the class
    orders the two): our image package is then `generated` by it. Empty without that
    document (create-spdx-3.0 not inherited)."""
    if not (d.getVar("SPDX_VERSION") or "").startswith("3"):
        return ""
    pn = d.getVar("PN")
    path = os.path.join(d.getVar("DEPLOY_DIR_SPDX") or "", d.getVar("SSTATE_PKGARCH") or "",
                        "static", f"static-{pn}.spdx.json")
    try:
        with open(path) as stream:
            graph = json.load(stream).get("@graph", [])
    except FileNotFoundError:
        bb.fatal(f"{path} is missing: create-spdx-3.0's do_create_recipe_spdx writes it before "
                 "do_hellocontainer; set HELLOCONTAINER_SBOM_FORMATS = \"spdx2\" to build without")
    # oe-core names it <namespace>/<unihash>/recipe/<PN with [^a-zA-Z0-9_-] as _>
    # (oe/sbom30.py, new_spdxid("recipe", pn)).
    suffix = "/recipe/" + re.sub(r"[^a-zA-Z0-9_-]", "_", pn)
    for element in graph:
        spdx_id = element.get("spdxId") or element.get("@id") or ""
        if element.get("type") == "software_Package" and spdx_id.endswith(suffix):
            return spdx_id
    bb.fatal(f"{path} has no software_Package ending in {suffix}; is it oe-core's?")
    return ""


def sbom_argv(d):
    """--sbom-package and --sbom-library: the recipe's metadata and the C library the program
    is statically linked with, for the packager's SPDX SBOM."""
    def words(fields):
        return " ".join(shlex.quote(f"{key}={value}") for key, value in fields if value)

    version = d.getVar("CVE_VERSION") or d.getVar("PV")
    package = [
        ("name", d.getVar("BPN")),
        ("version", d.getVar("PV")),
        ("license", spdx_license(d, d.getVar("LICENSE"))),
        ("homepage", d.getVar("HOMEPAGE")),
        ("download_location", download_location(d)),
    ]
    package += [("cpe", cpe) for cpe in cpe_ids(d.getVar("CVE_PRODUCT") or d.getVar("BPN"),
                                                version)]
    layer = (d.getVar("FILE_LAYERNAME") or "").lower()
    package.append(("purl", "pkg:yocto/{}{}@{}".format(layer + "/" if layer else "",
                                                   d.getVar("BPN").lower(), d.getVar("PV"))))
    argv = ["--sbom-package", words(package)]
    supplier = sbom_supplier(d)
    # No supplier anywhere: the SBOM is written all the same, short of NTIA's minimum
    # elements, rather than failing a build that did not ask for them (README).
    argv += ["--sbom-supplier", supplier] if supplier else ["--sbom-incomplete"]
    organization = (d.getVar("HELLOCONTAINER_SBOM_CREATOR_ORGANIZATION") or "").strip()
    if organization:
        argv += ["--sbom-creator-organization", organization]
    if "spdx3" in sbom_formats(d):
        link = recipe_spdx3_id(d)
        if link:
            argv += ["--sbom-link", link]
    tclibc = d.getVar("TCLIBC") or ""
    # INHIBIT_DEFAULT_DEPS: the program was not linked against the target's C library.
    if tclibc in ("glibc", "musl", "newlib") and \
            not bb.utils.to_boolean(d.getVar("INHIBIT_DEFAULT_DEPS")):
        _, data = libc_pkgdata(d)
        libc_version = data.get("PV", "")
        products = dict(item.split("=", 1)
                        for item in d.getVar("HELLOCONTAINER_LIBC_CPE").split())
        library = [("name", tclibc), ("version", libc_version),
                   ("license", spdx_license(d, data.get("LICENSE", "")))]
        if libc_version and tclibc in products:
            library += [("cpe", cpe) for cpe in cpe_ids(products[tclibc], libc_version)]
        argv += ["--sbom-library", words(library)]
    return argv


def init_system(d):
    """systemd or sysvinit, as DISTRO_FEATURES has them (systemd first, as oe-core's
    systemd.bbclass inhibits update-rc.d when both are there); empty for neither."""
    features = (d.getVar("DISTRO_FEATURES") or "").split()
    return next((name for name in ("systemd", "sysvinit") if name in features), "")


def quadlet(d):
    """Whether the service is a Quadlet .container file (podman's generator makes the unit)."""
    return bb.utils.to_boolean(d.getVar("HELLOCONTAINER_QUADLET"))


def init_class(d):
    """The class that registers the service, or nothing when the container does not start
    at boot: never both systemd and update-rc.d. A Quadlet file needs neither: podman's
    systemd generator reads it at every boot, and its [Install] section enables the unit."""
    if not d.getVar("HELLOCONTAINER_AUTOSTART") or quadlet(d):
        return ""
    return {"systemd": "systemd", "sysvinit": "update-rc.d"}.get(init_system(d), "")


def runtime_package(d):
    """meta-virtualization's package for the runtime; for runc, what its runc recipe (and
    crun, which also installs a runc) RPROVIDES."""
    runtime = d.getVar("HELLOCONTAINER_AUTOSTART") or ""
    return {"crun": "crun", "runc": "virtual-runc", "podman": "podman"}.get(runtime, "")


def check_autostart(d):
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
        bb.fatal(f"HELLOCONTAINER_AUTOSTART = \"{runtime}\" is not a container runtime; set crun, "
                 "runc or podman, or leave it empty")
    layers = (d.getVar("HELLOCONTAINER_RUNTIME_LAYERS") or "").split()
    collections = (d.getVar("BBFILE_COLLECTIONS") or "").split()
    if layers and not any(layer in collections for layer in layers):
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"{}\" needs {} on the target, and no layer of this "
                 "build provides it: add meta-virtualization (collection {}) to bblayers.conf, "
                 "or set HELLOCONTAINER_RUNTIME_LAYERS to the collection of the layer that does"
                 .format(runtime, d.getVar("HELLOCONTAINER_RUNTIME_PACKAGE"), " ".join(layers)))
    if not init_system(d):
        bb.fatal("HELLOCONTAINER_AUTOSTART needs \"systemd\" or \"sysvinit\" in DISTRO_FEATURES "
                 "to install a service (BusyBox init runs the same rc5.d links as sysvinit); "
                 "add one, or leave HELLOCONTAINER_AUTOSTART empty")
    installed_here = d.getVar("HELLOCONTAINER_AUTOSTART_BUNDLE_DIR") == \
        d.getVar("HELLOCONTAINER_BUNDLE_DIR")
    if runtime in ("crun", "runc") and not bundle and installed_here:
        bb.fatal(f"HELLOCONTAINER_AUTOSTART = \"{runtime}\" runs the runtime bundle, and "
                 "HELLOCONTAINER_BUNDLE = \"0\" installs none; set it to \"1\"")
    if quadlet(d) and (runtime != "podman" or init_system(d) != "systemd"):
        bb.fatal("HELLOCONTAINER_QUADLET = \"1\" is for podman under systemd (podman's Quadlet "
                 "generator is a systemd generator); set HELLOCONTAINER_AUTOSTART = \"podman\" "
                 "and \"systemd\" in DISTRO_FEATURES, or HELLOCONTAINER_QUADLET = \"0\"")
    if runtime == "podman" and not d.getVar("HELLOCONTAINER_INSTALL_DIR"):
        bb.fatal("HELLOCONTAINER_AUTOSTART = \"podman\" runs the image layout, and "
                 "HELLOCONTAINER_INSTALL_DIR is empty; set the layout's path on the target")


def service_path(d):
    """Where the service goes below ${D}: the systemd unit or the SysV init script; empty
    when the container does not start at boot."""
    if not d.getVar("HELLOCONTAINER_AUTOSTART"):
        return ""
    service = d.getVar("HELLOCONTAINER_SERVICE")
    if quadlet(d):
        # Where meta-virtualization's recipes install Quadlet files.
        return "{}/containers/systemd/{}.container".format(d.getVar("sysconfdir"), service)
    if init_system(d) == "systemd":
        return "{}/{}.service".format(d.getVar("systemd_system_unitdir"), service)
    return "{}/init.d/{}".format(d.getVar("sysconfdir"), service)


def target_argvs(d, layout):
    """The packager calls that write the bundle and the service into ${D}, next to the
    layout: `hellocontainer bundle` and `hellocontainer autostart`, each when asked for."""
    dest = d.getVar("D")
    network = d.getVar("HELLOCONTAINER_NETWORK")
    # The image the board runs is the first tag's (all tags name the same image).
    tags = shlex.split(d.getVar("HELLOCONTAINER_TAGS") or "") or ["latest"]
    argvs = []
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_BUNDLE")):
        argvs.append(["hellocontainer", "bundle", f"{layout}:{tags[0]}",
                      "--output", dest + d.getVar("HELLOCONTAINER_BUNDLE_DIR"),
                      "--network", network, *sign_key_argv(d)])
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
            argv += ["--layout", "{}:{}".format(d.getVar("HELLOCONTAINER_INSTALL_DIR"), tags[0]),
                     "--podman-root", d.getVar("HELLOCONTAINER_PODMAN_ROOT")]
        else:
            argv += ["--bundle", d.getVar("HELLOCONTAINER_AUTOSTART_BUNDLE_DIR")]
        if d.getVar("HELLOCONTAINER_VERIFY_KEY"):
            argv += ["--verify-key", d.getVar("HELLOCONTAINER_VERIFY_KEY_PATH")]
        option = "--systemd" if init_system(d) == "systemd" else "--sysv"
        if quadlet(d):
            option = "--quadlet"
        argv += [option, dest + service_path(d)]
        argvs.append(argv)
    return argvs


def installed_paths(d):
    """What do_hellocontainer puts into ${D}, as paths on the target: the layout, the bundle
    and the service, each when asked for."""
    paths = [d.getVar("HELLOCONTAINER_INSTALL_DIR") or "", service_path(d)]
    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_BUNDLE")):
        paths.append(d.getVar("HELLOCONTAINER_BUNDLE_DIR") or "")
    if d.getVar("HELLOCONTAINER_VERIFY_KEY"):
        paths.append(d.getVar("HELLOCONTAINER_VERIFY_KEY_PATH") or "")
    return [os.path.normpath(path) for path in paths if path]


def remove_installed(dest, record):
    """Remove from `dest` (${D}) what an earlier do_hellocontainer installed there, as
    `record` lists it: the paths it wrote, then the folders it made for them, deepest first,
    each only while it is empty. do_install empties `record`'s folder with ${D}, so what it
    lists is always in this ${D}."""
    if not os.path.isfile(record):
        return
    with open(record) as stream:
        lines = stream.read().splitlines()
    for line in lines:
        kind, _, path = line.partition(" ")
        target = dest + path
        if kind == "path" and os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
        elif kind == "dir" and os.path.isdir(target) and not os.listdir(target):
            os.rmdir(target)
    os.unlink(record)


def record_installed(dest, record, paths):
    """Write `record`: the `paths` about to be installed into `dest`, and the folders above
    them that `dest` does not have yet (deepest first), for remove_installed."""
    made = set()
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", "") and not os.path.isdir(dest + parent):
            made.add(parent)
            parent = os.path.dirname(parent)
    bb.utils.mkdirhier(os.path.dirname(record))
    with open(record, "w") as stream:
        stream.writelines(f"path {path}\n" for path in paths)
        stream.writelines(f"dir {path}\n"
                          for path in sorted(made, key=lambda p: (-p.count("/"), p)))


def package(d):
    """do_hellocontainer: package the installed program, deploy-ready in
    HELLOCONTAINER_OUTDIR, and put the layout (and the bundle and service) into ${D}."""
    outdir = d.getVar("HELLOCONTAINER_OUTDIR")
    dest = d.getVar("D")
    program = dest + d.getVar("HELLOCONTAINER_BINARY")
    if not os.path.isfile(program):
        bb.fatal("hellocontainer: {} is not installed by do_install; set HELLOCONTAINER_BINARY "
                 "to the program's path below ${{D}}".format(d.getVar("HELLOCONTAINER_BINARY")))

    env = dict(os.environ)
    env["PATH"] = d.getVar("PATH")
    # The image's timestamps come from the recipe's SOURCE_DATE_EPOCH, which
    # oe-core derives from the sources, never from the clock of this build.
    env["SOURCE_DATE_EPOCH"] = d.getVar("SOURCE_DATE_EPOCH")
    env.update(passphrase_env(d))

    def run(argv):
        bb.note("Running: SOURCE_DATE_EPOCH={} {}".format(env["SOURCE_DATE_EPOCH"], shlex.join(argv)))
        try:
            result = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            bb.fatal("{} not found on PATH ({})".format(argv[0], env["PATH"]))
        if result.stdout:
            bb.note(result.stdout.rstrip())
        if argv[:2] == ["hellocontainer", "build"] and result.returncode == DYNAMIC_EXIT_STATUS:
            # The packager names its own flag; a recipe sets the class variable instead.
            bb.fatal("{} is dynamically linked, and the image would hold no dynamic loader or "
                     "libraries: link it statically, or set HELLOCONTAINER_ALLOW_DYNAMIC = \"1\" "
                     "(and add them with --file in HELLOCONTAINER_EXTRA_ARGS)"
                     .format(d.getVar("HELLOCONTAINER_BINARY")))
        if result.returncode != 0:
            bb.fatal(f"{argv[0]} exited {result.returncode}: {result.stdout.strip()}")

    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_STRIP")):
        # ${D} holds the program with its debug info (do_package strips later,
        # into another tree); the image gets a stripped copy, made with the
        # target's strip.
        stripped = os.path.join(outdir, "stripped", os.path.basename(program))
        bb.utils.mkdirhier(os.path.dirname(stripped))
        run([*shlex.split(d.getVar("STRIP")), "--strip-all", "--remove-section=.comment",
             "-o", stripped, program])
        program = stripped

    if bb.utils.to_boolean(d.getVar("HELLOCONTAINER_ALLOW_DYNAMIC")):
        # It packages, then the container fails at start ("exec /hello: no
        # such file") unless its loader and libraries are in the image too.
        bb.warn("HELLOCONTAINER_ALLOW_DYNAMIC = \"1\": {} may be dynamically linked, and "
                "the image holds no dynamic loader or libraries unless HELLOCONTAINER_EXTRA_ARGS "
                "adds them (--file); link it statically if you can".format(d.getVar("HELLOCONTAINER_BINARY")))
    layout = os.path.join(outdir, "layout")
    run(build_argv(d, program, layout))

    # This task reruns without do_install when a HELLOCONTAINER_* value changes:
    # what the last run installed goes first, wherever it went, so a changed
    # path leaves nothing behind that no package ships.
    record = os.path.join(d.getVar("HELLOCONTAINER_INSTALLED_DIR"), "paths")
    remove_installed(dest, record)
    record_installed(dest, record, installed_paths(d))
    installdir = d.getVar("HELLOCONTAINER_INSTALL_DIR")
    if installdir:
        # Replace a copy that do_install may have made there, never add to it.
        shutil.rmtree(dest + installdir, ignore_errors=True)
        shutil.copytree(layout, dest + installdir, symlinks=True)
    for argv in target_argvs(d, layout):
        run(argv)
    public = d.getVar("HELLOCONTAINER_VERIFY_KEY")
    if public:
        # A copy of the public key, on the target's (read-only) root.
        key_path = dest + d.getVar("HELLOCONTAINER_VERIFY_KEY_PATH")
        bb.utils.mkdirhier(os.path.dirname(key_path))
        shutil.copyfile(public, key_path)
        os.chmod(key_path, 0o644)
