"""The package as users meet it: the names the docs give import as documented."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NAMES = sorted(
    {name for doc in DOCS for name in re.findall(r"`(physgan(?:\.\w+)+)", doc.read_text())}
)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent is not a package
        return False


def test_the_docs_name_physgan_objects():
    assert {"physgan.theory", "physgan.divergences", "physgan.sampling"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_in_the_docs_resolves_as_from_import_does(name):
    """``from physgan.a import b`` gives the module physgan.a.b where there is one, whatever
    was imported before (a fresh interpreter, so no earlier import hides a shadowing name)."""
    parent, _, attr = name.rpartition(".")
    code = f"from {parent} import {attr} as obj"
    if _is_module(name):
        code += f"\nassert getattr(obj, '__name__', None) == {name!r}, f'{{obj!r}}, not the module'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_the_api_is_reachable_from_the_root_package():
    import physgan
    from physgan import api

    for name in physgan.__all__[1:]:
        # A submodule of the same name would replace the function once anything imports it.
        assert importlib.util.find_spec(f"physgan.{name}") is None, name
        assert getattr(physgan, name) is getattr(api, name)
    assert api.theory.__module__ == "physgan.api"
