"""Print the reports to A4 with WeasyPrint and list every table or figure wider than the page.

WeasyPrint is not a dependency of clv-lab (it is a checker, like a browser's print preview): install it
in a separate environment (``python -m venv /tmp/wp && /tmp/wp/bin/pip install weasyprint``; it needs the
system's Pango) and run::

    /tmp/wp/bin/python scripts/print_check.py reports/cdnow/latest/*/*.html reports/cdnow/latest/index.html

It renders each page with the print media type (the reports' own ``@media print`` rules) on A4 with
15 mm margins, and reports the pages, the headings and the tables found, and every table or image whose
right edge passes the page's content box.  Exit status 1 if anything overflows or a page prints no
heading (text hidden by a print rule).
"""

from __future__ import annotations

import sys
from pathlib import Path


def _walk(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _walk(child)


def check(path: str) -> tuple[str, bool]:
    from weasyprint import CSS, HTML
    from weasyprint.formatting_structure import boxes

    doc = HTML(filename=path, media_type="print").render(stylesheets=[CSS(string="@page { size: A4; margin: 15mm }")])
    tables = headings = 0
    over = []
    for number, page in enumerate(doc.pages, 1):
        root = page._page_box
        right = root.content_box_x() + root.width
        for box in _walk(root):
            tag = getattr(box, "element_tag", "")
            if tag in ("h1", "h2"):
                headings += 1
            if isinstance(box, (boxes.TableBox, boxes.ReplacedBox)):
                tables += isinstance(box, boxes.TableBox)
                edge = box.position_x + box.margin_width()
                if edge > right + 1:
                    over.append(f"page {number}: {tag or type(box).__name__} {edge - right:.0f}px too wide")
    ok = not over and headings > 0
    line = f"{Path(path).name}: {len(doc.pages)} A4 pages, {headings} headings, {tables} tables; " + (
        "; ".join(over) if over else "nothing wider than the page") + ("" if headings else "; NO HEADINGS PRINTED")
    return line, ok


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    results = [check(p) for p in argv]
    for line, _ in results:
        print(line)
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
