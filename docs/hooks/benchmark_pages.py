"""MkDocs hook: the measured results in benchmarks/ become pages of the site, linked as on GitHub.

The measurements live next to the code that takes them (`benchmarks/PERFORMANCE.md`,
`benchmarks/results/*.md` and their charts), outside `docs/`. This hook adds those files to the site
under `benchmarks/`, so their own relative links keep working, and lets a page of `docs/` link to them
the way GitHub resolves the link, out of `docs/` and into the repository (`../benchmarks/...` from a
top-level page): before MkDocs reads a page's links, each such link is shortened by the one `../`
that leaves `docs/`, which is where the site holds the file.

Trade-off: only links into `benchmarks/` are mapped; a link to any other file outside `docs/` still
fails the strict build, as it should (the site would not have the file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

FOLDER = "benchmarks"
SUFFIXES = (".md", ".png")


def repository_root(config: Any) -> Path:
    """The folder that holds mkdocs.yml, and with it `docs/` and `benchmarks/`."""
    return Path(config.config_file_path).parent


def on_files(files: Files, config: Any) -> Files:
    """MkDocs event: add benchmarks/**/*.md and *.png to the site, at the same paths under the site root."""
    root = repository_root(config)
    for path in sorted((root / FOLDER).rglob("*")):
        if path.suffix in SUFFIXES and path.is_file():
            src_uri = path.relative_to(root).as_posix()
            files.append(File(src_uri, str(root), config.site_dir, config.use_directory_urls))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """MkDocs event: in a page of docs/, `../` x (depth + 1) + `benchmarks/` loses the `../` that leaves docs/."""
    if page.file.src_uri.startswith(FOLDER + "/"):
        return markdown
    depth = page.file.src_uri.count("/")
    leaving_docs = re.compile(r"\]\(" + re.escape("../" * (depth + 1) + FOLDER + "/"))
    return leaving_docs.sub("](" + "../" * depth + FOLDER + "/", markdown)
