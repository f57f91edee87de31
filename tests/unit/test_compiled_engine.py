"""The engine runs as built: compiled in an ``EDIGATE_COMPILE=1`` build, pure Python otherwise.

``scripts/test`` runs the translators' tests a second time against a compiled wheel with
``EDIGATE_EXPECT_COMPILED=1``; without it (editable installs are never compiled) every hot
module must be its ``.py`` file, so a stale compiled module can never shadow an edit.
"""

from __future__ import annotations

import importlib
import os
import runpy
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from translators import engine_build

SETUP = Path(__file__).resolve().parents[2] / "setup.py"
HOT_MODULES: list[str] = runpy.run_path(str(SETUP), run_name="setup_under_test")["HOT_MODULES"]


def module_name(path: str) -> str:
    """``translators/x12/reader.py`` -> ``translators.x12.reader``."""
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


@pytest.mark.parametrize("path", HOT_MODULES)
def test_each_hot_module_is_loaded_as_built(path: str) -> None:
    module = importlib.import_module(module_name(path))
    compiled = str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))
    assert compiled == (os.environ.get("EDIGATE_EXPECT_COMPILED") == "1"), module.__file__


def test_the_list_names_existing_modules() -> None:
    for path in HOT_MODULES:
        assert (SETUP.parent / path).is_file(), path


def test_the_engine_says_how_it_was_built() -> None:
    expected = "compiled" if os.environ.get("EDIGATE_EXPECT_COMPILED") == "1" else "pure Python"
    assert engine_build() == expected  # what `edigate config` and the benchmark show
