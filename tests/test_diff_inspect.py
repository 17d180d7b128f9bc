"""`diff` explains a non-identical rebuild; `inspect` shows what an image holds."""

from __future__ import annotations

import json


def test_identical_images_diff_clean(hellocontainer, hello_static, tmp_path):
    for name in ("a", "b"):
        hellocontainer("build", hello_static, "--output", tmp_path / name)
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b")
    assert result.stdout.strip().endswith("are identical")


def test_diff_names_the_config_field_and_the_file_header_that_differ(hellocontainer, hello_static,
                                                                      tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--env", "MODE=fast",
                   env={"SOURCE_DATE_EPOCH": "100"})
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--env", "MODE=slow",
                   env={"SOURCE_DATE_EPOCH": "200"})
    result = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "tag latest config.config.Env[0]: 'MODE=fast' → 'MODE=slow'" in lines
    assert f"tag latest layer 0: /{hello_static.name} mtime 100 → 200" in lines


def test_diff_names_a_changed_file_content_and_mode(hellocontainer, hello_static, tmp_path):
    (tmp_path / "motd").write_text("one\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "a",
                   "--file", f"{tmp_path}/motd:/etc/motd:0644")
    (tmp_path / "motd").write_text("two\n")
    hellocontainer("build", hello_static, "--output", tmp_path / "b",
                   "--file", f"{tmp_path}/motd:/etc/motd:0600")
    out = hellocontainer("diff", f"{tmp_path}/a:latest", f"{tmp_path}/b:latest", check=False).stdout
    assert "/etc/motd mode 0644 → 0600" in out
    assert "/etc/motd sha256" in out


def test_diff_says_when_only_compression_differs(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--gzip-level", "9")
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--gzip-level", "1")
    out = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False).stdout
    assert "same files and headers, different compressed bytes" in out


def test_diff_lists_tags_present_on_one_side(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "a", "--tag", "1.0 latest")
    hellocontainer("build", hello_static, "--output", tmp_path / "b", "--tag", "latest")
    out = hellocontainer("diff", tmp_path / "a", tmp_path / "b", check=False).stdout
    assert out.splitlines() == ["tag 1.0 only in A"]


def test_inspect_json_shows_settings_and_files(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--path", "/bin/hello",
                   "--tag", "1.0 latest", "--user", "1000:1000", "--port", "8080 53/udp",
                   "--env", "GREETING='hi there'", "--annotation",
                   "org.opencontainers.image.licenses=MIT")
    report = json.loads(hellocontainer("inspect", "--json", f"{tmp_path}/o:1.0").stdout)
    [image] = report["images"]
    assert image["tags"] == ["1.0"]
    assert image["platform"] == {"architecture": "amd64", "os": "linux"}
    assert image["entrypoint"] == ["/bin/hello"]
    assert image["user"] == "1000:1000"
    assert image["ports"] == ["53/udp", "8080/tcp"]
    assert image["env"] == ["GREETING=hi there"]
    assert image["annotations"] == {"org.opencontainers.image.licenses": "MIT"}
    assert [f["path"] for f in image["layers"][0]["files"]] == ["/bin", "/bin/hello"]
    assert report["bytes"] == sum(p.stat().st_size for p in (tmp_path / "o").rglob("*") if p.is_file())


def test_inspect_text_lists_tags_and_files(hellocontainer, hello_static, tmp_path):
    hellocontainer("build", hello_static, "--output", tmp_path / "o", "--tag", "1.0 latest")
    out = hellocontainer("inspect", tmp_path / "o").stdout
    assert "tags      1.0, latest" in out
    assert f"/{hello_static.name}" in out and "linux/amd64" in out
