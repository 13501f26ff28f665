"""Check the internal links of the built HTML site: every relative ``href``/``src`` must name
a file of the build, and every ``#anchor`` an ``id`` in that file. External links are not
followed (the build is offline). Usage: ``python docs/check_links.py docs/_build/html``."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            elif name in ("href", "src") and value and tag != "link" or (
                    tag == "link" and name == "href" and value):
                self.links.append(value)


def check(root: Path) -> list[str]:
    pages: dict[Path, _Page] = {}
    for path in root.rglob("*.html"):
        if "_static" in path.relative_to(root).parts:  # theme templates, not pages
            continue
        page = _Page()
        page.feed(path.read_text(errors="replace"))
        pages[path.resolve()] = page
    problems = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if parts.path.endswith("/") or (target.is_dir() and parts.path):
                target = target / "index.html"
            where = f"{path.relative_to(root.resolve())}: {link}"
            if not target.exists():
                problems.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: no anchor #{parts.fragment}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    if not (root / "index.html").is_file():
        print(f"{root}: no built site (index.html missing)", file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    n = sum(1 for p in root.rglob("*.html") if "_static" not in p.relative_to(root).parts)
    print(f"internal links: {n} pages, {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
