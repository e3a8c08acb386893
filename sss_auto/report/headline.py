"""The semi-supervised benchmark's headline table, shipped with the package so `sss_demo` can show it.

`benchmarks/ssl_benchmark.py --export-headline` writes `ssl_benchmark_headline.json` beside this
file from a finished benchmark: a caption (machine, command, seeds, budget) and one row per
variant with the mean ± sd over seeds of the test mean Dice and of each class's Dice. The numbers
are measured, never typed in; a package without the file shows nothing.
"""

from __future__ import annotations

import html
from pathlib import Path

from sss_auto.io.atomic import read_json

HEADLINE = Path(__file__).with_name("ssl_benchmark_headline.json")


def load_headline(path: Path = HEADLINE) -> dict | None:
    """The shipped headline ({"caption", "columns", "rows"}), or None when there is none."""
    return read_json(path) if path.is_file() else None


def headline_text(headline: dict) -> str:
    """A plain-text table for the terminal."""
    widths = [max(len(str(row[i])) for row in [headline["columns"], *headline["rows"]]) for i in range(len(headline["columns"]))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headline["columns"], *headline["rows"]]]
    return "\n".join([headline["caption"], "", lines[0], "-" * len(lines[0]), *lines[1:]])


def headline_html(headline: dict) -> str:
    """The same table as an HTML fragment (caption as a paragraph)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in headline["columns"])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in headline["rows"])
    return (f"<h2>What the method buys: the semi-supervised benchmark</h2><p>{html.escape(headline['caption'])}</p>"
            f"<table><tr>{head}</tr>{rows}</table>")
