"""MkDocs hook: a folder tree in which Griffe finds `ner_export.runtime` and the other subpackages.

setuptools installs each top-level folder as a subpackage of `ner_export` (`package-dir` in
pyproject.toml: `runtime/` is `ner_export.runtime`). Python finds them through the install's import
hook, but Griffe, which mkdocstrings uses to read the API, reads source folders without importing:
it would look for `ner_export/runtime/` and find nothing. Before any page is rendered, this hook builds
`build/docs-packages/ner_export/`, whose entries are symbolic links to the files of `ner_export/`
and to each mapped folder under its subpackage name, and mkdocs.yml points the Python handler's
`paths` there. The mapping is read from pyproject.toml, so a new subpackage needs no change here.

Trade-offs: links, not copies, so the rendered source is the working tree's and nothing goes stale;
a filesystem without symbolic links (Windows without developer mode) cannot build the API pages.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

TREE = Path("build") / "docs-packages"


def package_dirs(root: Path) -> dict[str, Path]:
    """Each `ner_export` subpackage's folder, from pyproject.toml's `[tool.setuptools.package-dir]`.

    Read as text, one `"name" = "folder"` line each, so the hook needs no TOML parser on Python 3.10.
    """
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    mapping = re.findall(r'^"([\w.]+)" = "([\w/.-]+)"', section, re.MULTILINE)
    if not mapping:
        raise ValueError("pyproject.toml: [tool.setuptools.package-dir] maps no package to a folder")
    return {name: root / folder for name, folder in mapping}


def build_tree(root: Path) -> Path:
    """Rebuild the linked `ner_export` tree under `root / TREE` and return the folder that holds it."""
    tree = root / TREE
    if tree.exists():
        shutil.rmtree(tree)
    package = tree / "ner_export"
    package.mkdir(parents=True)
    folders = package_dirs(root)
    for entry in folders.pop("ner_export").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry.resolve())
    for name, folder in folders.items():
        parent, _, leaf = name.rpartition(".")
        if parent != "ner_export":
            raise ValueError(f"{name}: only direct subpackages of ner_export are mapped to folders")
        (package / leaf).symlink_to(folder.resolve(), target_is_directory=True)
    return tree


@event_priority(100)  # before mkdocstrings' own on_config, which resolves the handler's paths
def on_config(config: Any) -> None:
    """MkDocs event: build the tree before mkdocstrings' Python handler first looks for a module."""
    build_tree(Path(config.config_file_path).parent)
