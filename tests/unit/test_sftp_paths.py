"""The partner's virtual tree: only /, /inbound and /outbound with plain files; nothing escapes."""

from __future__ import annotations

import pytest

from gateway.transports.sftp.paths import (
    PathRefused,
    VirtualPath,
    canonical_path,
    is_temporary_name,
    parse_virtual_path,
)


@pytest.mark.parametrize("path", ["", "/", ".", "/./", "//"])
def test_empty_and_dot_paths_are_the_home(path: str) -> None:
    assert parse_virtual_path(path) == VirtualPath("")


def test_folders_and_files_parse_relative_or_absolute() -> None:
    assert parse_virtual_path("inbound") == VirtualPath("inbound")
    assert parse_virtual_path("/outbound/997_1.x12") == VirtualPath("outbound", "997_1.x12")
    assert str(parse_virtual_path("inbound//po.x12")) == "/inbound/po.x12"


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "../x", "/inbound/../../etc/passwd", "/inbound/..", "inbound/../outbound/x",
    "/etc/passwd", "/home/acme/inbound/x", "/inbound/sub/x", "/inbound/x\x00y", "/inbound/a\nb",
    "/inbound/..\\..\\x", "/tmp",
])
def test_traversal_absolute_and_deep_paths_are_refused(path: str) -> None:
    with pytest.raises(PathRefused):
        parse_virtual_path(path)


def test_realpath_resolves_dots_inside_the_home_and_refuses_leaving_it() -> None:
    assert canonical_path("/inbound/..") == "/"
    assert canonical_path("inbound/./x") == "/inbound/x"
    with pytest.raises(PathRefused):
        canonical_path("/..")
    with pytest.raises(PathRefused):
        canonical_path("/inbound/../..")


@pytest.mark.parametrize(("name", "temporary"), [
    ("po.x12.part", True), ("po.x12.TMP", True), ("po.x12.filepart", True), ("po.x12", False),
    ("part", False),
])
def test_temporary_upload_names_are_recognised(name: str, temporary: bool) -> None:
    assert is_temporary_name(name) is temporary


def test_a_name_longer_than_255_bytes_is_refused() -> None:
    with pytest.raises(PathRefused):
        parse_virtual_path("/inbound/" + "é" * 200)
