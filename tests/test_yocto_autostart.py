"""hellocontainer.bbclass starting the container at boot, without BitBake.

The class's own functions run on a dict datastore (tests/yocto_class.py) and call the real
packager into a temporary ${D}: what do_hellocontainer installs for ${PN}-oci, and what the
parse-time checks refuse. tests/test_yocto_layer.py runs the same class under a real BitBake
when a checkout is given; CI has none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Runner
from yocto_class import (
    BBFatal,
    call,
    class_appends,
    datastore,
    recipe_values,
    update_rc_links,
    yocto_oci_files,
)

LAYOUT_DIR = "/usr/share/hellocontainer/hello-prebuilt"
BUNDLE_DIR = "/usr/share/hellocontainer/hello-prebuilt-bundle"
SERVICE = "hellocontainer-hello-prebuilt"


def recipe(tmp_path: Path, **variables: str):
    return datastore(recipe_values(tmp_path, tmp_path / "hello", "x86_64", **variables))


def fatal_message(tmp_path: Path, **variables: str) -> str:
    with pytest.raises(BBFatal) as raised:
        call("check_autostart", recipe(tmp_path, **variables))
    return str(raised.value)


def installed(image: Path) -> set[str]:
    return {"/" + str(p.relative_to(image)) for p in image.rglob("*") if not p.is_dir()}


# ---------------------------------------------------------------------------------------------
# what the class chooses, at parse time

@pytest.mark.parametrize("features,init_class", [
    ("sysvinit", "update-rc.d"), ("systemd", "systemd"), ("systemd sysvinit", "systemd")])
def test_init_class_follows_distro_features(features: str, init_class: str, tmp_path: Path) -> None:
    assert call("init_class", recipe(tmp_path, DISTRO_FEATURES=features)) == init_class


def test_no_autostart_inherits_no_init_class(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART="", DISTRO_FEATURES="systemd sysvinit")
    assert call("init_class", d) == ""
    assert d.getVar("HELLOCONTAINER_BUNDLE") == "0"
    assert d.getVar("HELLOCONTAINER_RUNTIME_PACKAGE") == ""
    call("check_autostart", d)  # nothing to refuse


@pytest.mark.parametrize("runtime,package,bundle", [
    ("crun", "crun", "1"), ("runc", "virtual-runc", "1"), ("podman", "podman", "0")])
def test_runtime_chooses_the_package_the_oci_package_needs(runtime: str, package: str, bundle: str,
                                                           tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART=runtime)
    assert d.getVar("HELLOCONTAINER_RUNTIME_PACKAGE") == package
    assert d.getVar("HELLOCONTAINER_BUNDLE") == bundle


def test_runtime_without_meta_virtualization_stops_the_parse(tmp_path: Path) -> None:
    message = fatal_message(tmp_path, BBFILE_COLLECTIONS="core hellocontainer")
    assert message.startswith('HELLOCONTAINER_AUTOSTART = "crun" needs crun on the target, and no '
                              "layer of this build provides it: add meta-virtualization "
                              "(collection virtualization-layer) to bblayers.conf")


def test_own_runtime_layer_can_be_named(tmp_path: Path) -> None:
    d = recipe(tmp_path, BBFILE_COLLECTIONS="core hellocontainer my-bsp",
               HELLOCONTAINER_RUNTIME_LAYERS="my-bsp")
    call("check_autostart", d)


@pytest.mark.parametrize("variables,expected", [
    ({"DISTRO_FEATURES": "x11"}, 'needs "systemd" or "sysvinit" in DISTRO_FEATURES'),
    ({"HELLOCONTAINER_AUTOSTART": "docker"}, '"docker" is not a container runtime'),
    ({"HELLOCONTAINER_BUNDLE": "0"}, 'runs the runtime bundle, and HELLOCONTAINER_BUNDLE = "0"'),
    ({"HELLOCONTAINER_AUTOSTART": "podman", "HELLOCONTAINER_INSTALL_DIR": ""},
     "runs the image layout, and HELLOCONTAINER_INSTALL_DIR is empty"),
    ({"HELLOCONTAINER_BUNDLE_DIR": ""}, "needs HELLOCONTAINER_BUNDLE_DIR"),
    ({"HELLOCONTAINER_QUADLET": "1", "DISTRO_FEATURES": "systemd"},
     'HELLOCONTAINER_QUADLET = "1" is for podman under systemd'),
    ({"HELLOCONTAINER_QUADLET": "1", "HELLOCONTAINER_AUTOSTART": "podman"},
     'HELLOCONTAINER_QUADLET = "1" is for podman under systemd'),
], ids=["no-init-system", "unknown-runtime", "crun-without-bundle", "podman-without-layout",
        "bundle-without-dir", "quadlet-for-crun", "quadlet-without-systemd"])
def test_impossible_settings_stop_the_parse(variables: dict[str, str], expected: str,
                                            tmp_path: Path) -> None:
    assert expected in fatal_message(tmp_path, **variables)


# ---------------------------------------------------------------------------------------------
# the packager calls of do_hellocontainer

def test_crun_on_sysvinit_makes_one_bundle_and_one_autostart_call(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_TAGS="1.0 latest", HELLOCONTAINER_NETWORK="host")
    image = str(tmp_path / "image")
    assert call("target_argvs", d, "/w/layout") == [
        ["hellocontainer", "bundle", "/w/layout:1.0", "--output", image + BUNDLE_DIR,
         "--network", "host"],
        ["hellocontainer", "autostart", "--runtime", "crun", "--name", "hello-prebuilt",
         "--restart", "on-failure", "--network", "host", "--restart-max-delay", "300",
         "--give-up-after", "0", "--give-up-window", "0", "--bundle", BUNDLE_DIR,
         "--sysv", f"{image}/etc/init.d/{SERVICE}"],
    ]


def test_podman_on_systemd_runs_the_installed_layout(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART="podman", DISTRO_FEATURES="systemd",
               HELLOCONTAINER_RESTART="always")
    image = str(tmp_path / "image")
    assert call("target_argvs", d, "/w/layout") == [
        ["hellocontainer", "autostart", "--runtime", "podman", "--name", "hello-prebuilt",
         "--restart", "always", "--network", "none", "--restart-max-delay", "300",
         "--give-up-after", "0", "--give-up-window", "0", "--layout", f"{LAYOUT_DIR}:latest",
         "--podman-root", "/run/hellocontainer/podman",
         "--systemd", f"{image}/usr/lib/systemd/system/{SERVICE}.service"],
    ]


def test_podman_quadlet_writes_a_container_file_where_meta_virtualization_puts_them(
        tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART="podman", DISTRO_FEATURES="systemd",
               HELLOCONTAINER_QUADLET="1", HELLOCONTAINER_PODMAN_ROOT="/data/podman")
    image = str(tmp_path / "image")
    (argv,) = call("target_argvs", d, "/w/layout")
    assert argv[-4:] == ["--podman-root", "/data/podman",
                         "--quadlet", f"{image}/etc/containers/systemd/{SERVICE}.container"]
    # podman's generator makes and enables the unit: no systemd.bbclass, no update-rc.d.
    assert call("init_class", d) == ""


def test_podman_quadlet_installs_the_file_the_cli_writes(tmp_path: Path, hello_static: Path,
                                                         hellocontainer: Runner) -> None:
    image = yocto_oci_files(tmp_path, hello_static, "x86_64", HELLOCONTAINER_AUTOSTART="podman",
                            DISTRO_FEATURES="systemd", HELLOCONTAINER_QUADLET="1")
    files = installed(image)
    assert f"/etc/containers/systemd/{SERVICE}.container" in files
    assert not any(path.startswith("/usr/lib/systemd") for path in files)
    hellocontainer("autostart", "--runtime", "podman", "--name", "hello-prebuilt",
                   "--layout", f"{LAYOUT_DIR}:latest", "--quadlet", tmp_path / "direct")
    assert (image / f"etc/containers/systemd/{SERVICE}.container").read_bytes() == \
        (tmp_path / "direct").read_bytes()


def test_restart_backoff_variables_reach_the_autostart_call(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_RESTART_MAX_DELAY="60", HELLOCONTAINER_GIVE_UP_AFTER="5",
               HELLOCONTAINER_GIVE_UP_WINDOW="")
    argv = call("target_argvs", d, "/w/layout")[-1]
    assert argv[argv.index("--restart-max-delay"):][:4] == ["--restart-max-delay", "60",
                                                           "--give-up-after", "5"]
    assert "--give-up-window" not in argv  # empty: the packager's default


def test_bundle_alone_installs_no_service(tmp_path: Path) -> None:
    d = recipe(tmp_path, HELLOCONTAINER_AUTOSTART="", HELLOCONTAINER_BUNDLE="1")
    (argv,) = call("target_argvs", d, "/w/layout")
    assert argv[:2] == ["hellocontainer", "bundle"]


# ---------------------------------------------------------------------------------------------
# what ${PN}-oci gets, through the real packager

@pytest.fixture
def crun_sysv(tmp_path: Path, hello_static: Path) -> Path:
    return yocto_oci_files(tmp_path / "yocto", hello_static, "x86_64")


def test_crun_sysv_installs_layout_bundle_and_init_script(crun_sysv: Path) -> None:
    files = installed(crun_sysv)
    assert {f"{LAYOUT_DIR}/index.json", f"{BUNDLE_DIR}/config.json", f"{BUNDLE_DIR}/rootfs/hello",
            f"/etc/init.d/{SERVICE}"} <= files
    assert not any(path.startswith("/usr/lib/systemd") for path in files)
    assert os.access(crun_sysv / f"etc/init.d/{SERVICE}", os.X_OK)


def test_installed_script_is_what_the_cli_writes_for_the_same_settings(
        crun_sysv: Path, hellocontainer: Runner, tmp_path: Path) -> None:
    hellocontainer("autostart", "--runtime", "crun", "--name", "hello-prebuilt",
                   "--bundle", BUNDLE_DIR, "--sysv", tmp_path / "direct")
    assert (crun_sysv / f"etc/init.d/{SERVICE}").read_bytes() == (tmp_path / "direct").read_bytes()


def test_bundle_holds_the_program_of_the_image(crun_sysv: Path, hello_static: Path) -> None:
    assert (crun_sysv / BUNDLE_DIR.lstrip("/") / "rootfs" / "hello").read_bytes() == \
        hello_static.read_bytes()
    config = json.loads((crun_sysv / BUNDLE_DIR.lstrip("/") / "config.json").read_text())
    assert config["process"]["args"] == ["/hello"]
    assert config["root"]["path"] == "rootfs"


def test_every_installed_file_is_in_the_oci_package(crun_sysv: Path, tmp_path: Path) -> None:
    d = recipe(tmp_path)
    patterns = d.expand(class_appends("FILES:${PN}-oci")).split()
    unpackaged = [path for path in installed(crun_sysv)
                  if path != "/usr/bin/hello"  # the recipe's own program, in ${PN}
                  and not any(path == p or path.startswith(p + "/") for p in patterns)]
    assert unpackaged == []


def test_systemd_distro_gets_the_unit_and_no_init_script(tmp_path: Path, hello_static: Path) -> None:
    image = yocto_oci_files(tmp_path, hello_static, "x86_64", DISTRO_FEATURES="systemd sysvinit")
    unit = image / f"usr/lib/systemd/system/{SERVICE}.service"
    assert f'exec \\"$$RUNTIME\\" run --bundle {BUNDLE_DIR} hello-prebuilt\\n"' in unit.read_text()
    assert not (image / "etc").exists()


def test_podman_installs_no_bundle(tmp_path: Path, hello_static: Path) -> None:
    image = yocto_oci_files(tmp_path, hello_static, "x86_64", HELLOCONTAINER_AUTOSTART="podman")
    script = (image / f"etc/init.d/{SERVICE}").read_text()
    assert f"oci:{LAYOUT_DIR}:latest" in script
    assert not (image / BUNDLE_DIR.lstrip("/")).exists()


def test_rerun_gives_the_same_files(crun_sysv: Path, tmp_path: Path, hello_static: Path) -> None:
    before = {path: (crun_sysv / path.lstrip("/")).read_bytes() for path in installed(crun_sysv)}
    again = yocto_oci_files(tmp_path / "yocto", hello_static, "x86_64")
    assert {path: (again / path.lstrip("/")).read_bytes() for path in installed(again)} == before


def test_update_rc_links_point_at_the_installed_script(crun_sysv: Path) -> None:
    update_rc_links(crun_sysv, SERVICE)
    link = crun_sysv / "etc" / "rc5.d" / f"S95{SERVICE}"
    assert os.readlink(link) == f"../init.d/{SERVICE}"
    assert link.resolve() == (crun_sysv / f"etc/init.d/{SERVICE}").resolve()
