"""A small self-contained HTML report: sections of prose, tables and figures.

The report is one ``index.html`` beside its figures (paths stored relative to it), so a
run directory can be copied or zipped and still open in any browser.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from jordanlab._atomic import write_text

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.figs figure { margin: 0; }
details { margin: .6em 0; border-top: 1px solid #ccc; padding-top: .3em; }
details > summary { cursor: pointer; font-size: 1.25em; font-weight: bold; padding: .2em 0; }
details > summary .lead { font-size: .72em; font-weight: normal; color: #555; margin-left: .6em; }
dl.glossary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: .92em; }
dl.glossary dt { font-weight: bold; } dl.glossary dd { margin: 0; }
code, pre { background: #f6f6f6; padding: 1px 4px; font-size: 0.9em; }
pre { padding: .6em; overflow-x: auto; }
.note { color: #555; font-size: 0.92em; }
"""


@dataclass
class Section:
    """One report section: a title, then blocks in order (prose, tables, figures, code).

    ``folded`` sections are written as a ``<details>`` element the reader opens, with ``lead`` (one
    sentence: what the section shows) beside the title.
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    folded: bool = False
    lead: str = ""

    def grid(self, figures: Sequence[tuple[str | os.PathLike, str]]) -> "Section":
        """Figures side by side (a responsive grid), each ``(path, caption)``."""
        self.blocks.append(("grid", [(Path(p), c) for p, c in figures]))
        return self

    def glossary(self, terms: dict[str, str]) -> "Section":
        """A definition list: term -> what it means."""
        self.blocks.append(("glossary", dict(terms)))
        return self

    def text(self, paragraph: str) -> "Section":
        self.blocks.append(("text", paragraph))
        return self

    def code(self, snippet: str) -> "Section":
        self.blocks.append(("code", snippet))
        return self

    def table(self, rows: Sequence[dict[str, Any]], *, columns: Sequence[str] | None = None,
              caption: str | None = None) -> "Section":
        self.blocks.append(("table", (list(rows), columns, caption)))
        return self

    def figure(self, path: str | os.PathLike, caption: str = "") -> "Section":
        self.blocks.append(("figure", (Path(path), caption)))
        return self


def _format(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def _cell(value: Any) -> str:
    return html.escape(_format(value))


def _table_html(rows: list[dict[str, Any]], columns: Sequence[str] | None, caption: str | None) -> str:
    if not rows:
        return "<p class='note'>(no rows)</p>"
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """The same table as GitHub markdown (for the terminal, the README and closing notes)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_format(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def _figure_html(out: Path, path: Path, caption: str) -> str:
    full = path if path.is_absolute() else out / path
    if not full.exists():
        return f"<p class='note'>missing figure: {html.escape(str(path))}</p>"
    rel = os.path.relpath(full, out)
    return (f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}' loading='lazy'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(out_dir: str | os.PathLike, title: str, sections: Sequence[Section], *,
                 intro: str = "") -> Path:
    """Write ``out_dir/index.html`` atomically and return its path.

    Figure paths are written relative to ``out_dir``; a figure that does not exist is
    reported in the page rather than silently dropped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{intro}</p>")
    if len(sections) > 1:
        parts.append("<ul>" + "".join(
            f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections)) + "</ul>")
    for i, s in enumerate(sections):
        if s.folded:
            lead = f"<span class='lead'>{html.escape(s.lead)}</span>" if s.lead else ""
            parts.append(f"<details id='s{i}'><summary>{html.escape(s.title)}{lead}</summary>")
        else:
            parts.append(f"<h2 id='s{i}'>{html.escape(s.title)}</h2>")
        for kind, payload in s.blocks:
            if kind == "text":
                parts.append(f"<p>{payload}</p>")
            elif kind == "code":
                parts.append(f"<pre>{html.escape(payload)}</pre>")
            elif kind == "table":
                parts.append(_table_html(*payload))
            elif kind == "figure":
                parts.append(_figure_html(out, *payload))
            elif kind == "grid":
                parts.append("<div class='figs'>" + "".join(_figure_html(out, p, c) for p, c in payload) + "</div>")
            elif kind == "glossary":
                parts.append("<dl class='glossary'>" + "".join(
                    f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in payload.items()) + "</dl>")
        if s.folded:
            parts.append("</details>")
    parts.append("</body></html>")
    return write_text(out / "index.html", "\n".join(parts))
