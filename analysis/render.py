"""Plain-text table writers (markdown and LaTeX) without extra dependencies.

A table is a header (list of strings) and rows (lists of already formatted cells). The two
`Style`s say how a cell is emphasised as best (bold) and second best (underlined), as Tables 4
and 5 of the paper do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """How to emphasise a cell: format strings with one `{}` for the cell text."""

    best: str
    second: str


MARKDOWN = Style(best="**{}**", second="<u>{}</u>")
LATEX = Style(best="\\textbf{{{}}}", second="\\underline{{{}}}")

_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "_": "\\_",
    "%": "\\%",
    "&": "\\&",
    "#": "\\#",
    "$": "\\$",
    "α": "$\\alpha$",
    "Δλ": "$\\Delta\\lambda$",
    "±": "$\\pm$",
    "†": "$^\\dagger$",
    "▲": "$\\blacktriangle$",
    "▼": "$\\blacktriangledown$",
    "△": "$\\vartriangle$",
    "▽": "$\\triangledown$",
    "—": "---",
}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(_md_cell(c) for c in line) + " |" for line in lines)


def _md_cell(cell: str) -> str:
    return str(cell).replace("|", "\\|")


def latex_escape(text: str) -> str:
    """`text` with LaTeX specials escaped and the paper's symbols as math."""
    for plain, latex in _LATEX_SPECIALS.items():
        text = text.replace(plain, latex)
    return text


def latex_table(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular; cells must already be escaped (see `latex_escape`)."""
    spec = "ll" + "r" * (len(header) - 2)
    body = [" & ".join(row) + " \\\\" for row in rows]
    return "\n".join(
        [
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(header) + " \\\\",
            "\\midrule",
            *body,
            "\\bottomrule",
            "\\end{tabular}",
        ]
    )
