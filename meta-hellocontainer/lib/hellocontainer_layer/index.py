#
# SPDX-License-Identifier: MIT
#
"""hellocontainer_index.bbclass's Python: the deployed layouts in, one `hellocontainer index`
call out."""

import os
import shlex
import subprocess

import bb


def configs(d):
    """(multiconfig, MACHINE) pairs of HELLOCONTAINER_INDEX_MULTICONFIGS."""
    pairs = []
    for word in (d.getVar("HELLOCONTAINER_INDEX_MULTICONFIGS") or "").split():
        multiconfig, sep, machine = word.partition(":")
        if not (sep and multiconfig and machine):
            bb.fatal(f"HELLOCONTAINER_INDEX_MULTICONFIGS: \"{word}\" is not <multiconfig>:<MACHINE>; "
                     "write e.g. \"arm:qemuarm\"")
        pairs.append((multiconfig, machine))
    return pairs


def deploy_dir_vardeps(d):
    """The HELLOCONTAINER_INDEX_DEPLOY_DIR flags that sources reads, named for [vardeps]:
    the code parser cannot see a flag named at run time."""
    return " ".join(f"HELLOCONTAINER_INDEX_DEPLOY_DIR[{multiconfig}]"
                    for multiconfig, _ in configs(d))


def sources(d):
    """The deployed layouts that go into the index: this configuration's first."""
    name = d.getVar("HELLOCONTAINER_INDEX_LAYOUT_NAME")
    layouts = [os.path.join(d.getVar("DEPLOY_DIR_IMAGE"),
                            name.replace("<machine>", d.getVar("MACHINE")))]
    for multiconfig, machine in configs(d):
        # TCLIBCAPPEND: scarthgap's nodistro appends "-glibc" to every TMPDIR.
        tmpdir = "tmp-{}{}".format(multiconfig, d.getVar("TCLIBCAPPEND") or "")
        deploy = d.getVarFlag("HELLOCONTAINER_INDEX_DEPLOY_DIR", multiconfig) or \
            os.path.join(d.getVar("TOPDIR"), tmpdir, "deploy", "images", machine)
        layouts.append(os.path.join(deploy, name.replace("<machine>", machine)))
    return layouts


def set_dependencies(d):
    """Parse time: skip the recipe while it cannot be built, else make its task wait for the
    recipe's do_deploy in this configuration and in every multiconfig."""
    recipe = d.getVar("HELLOCONTAINER_INDEX_RECIPE")
    if not recipe:
        raise bb.parse.SkipRecipe("HELLOCONTAINER_INDEX_RECIPE is empty; name the recipe "
                                  "(inheriting hellocontainer) whose layouts go in")
    # A multiconfig this build does not have cannot be depended on; skipping
    # (rather than failing the parse) keeps such a recipe harmless until
    # BBMULTICONFIG lists them, and `bitbake` on it says why.
    multiconfigs = [mc for mc, _ in configs(d)]
    configured = (d.getVar("BBMULTICONFIG") or "").split()
    missing = [mc for mc in multiconfigs if mc not in configured]
    if missing:
        raise bb.parse.SkipRecipe("needs the multiconfigs {} in BBMULTICONFIG".format(" ".join(missing)))
    d.appendVarFlag("do_hellocontainer_index", "depends", f" {recipe}:do_deploy")
    # mcdepends name the default configuration "", where BB_CURRENT_MC says "default".
    here = d.getVar("BB_CURRENT_MC") or ""
    if here == "default":
        here = ""
    d.setVarFlag("do_hellocontainer_index", "mcdepends", " ".join(
        f"mc:{here}:{mc}:{recipe}:do_deploy" for mc in multiconfigs))


def index(d):
    """do_hellocontainer_index: one `hellocontainer index` call on the deployed layouts."""
    layout = os.path.join(d.getVar("HELLOCONTAINER_INDEX_OUTDIR"), "layout")
    argv = ["hellocontainer", "index", "--output", layout,
            "--tag", d.getVar("HELLOCONTAINER_INDEX_TAGS"), *sources(d)]
    env = dict(os.environ, PATH=d.getVar("PATH"))
    bb.note(f"Running: {shlex.join(argv)}")
    try:
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError:
        bb.fatal("hellocontainer not found on PATH ({})".format(env["PATH"]))
    if result.returncode != 0:
        bb.fatal(f"hellocontainer index exited {result.returncode}: {result.stdout.strip()}")
