"""Escaping data for each output format, so input text is always shown literally.

Values from the data (account ids and names, industries, regions, service names, lead sources,
and text built from them) reach Markdown pages (rendered to HTML by pandoc or Quarto, and to PDF
through pandoc's typst writer). :func:`md` makes such a value one literal run of Markdown text:
no HTML, no links, no emphasis, no table cell break, no Quarto shortcode. Formatted numbers
that cfx writes itself need no escaping.

HTML written directly uses :func:`html.escape`; the typst writer of pandoc escapes typst markup
itself, and :func:`typst_string` quotes text placed in typst source by hand.
"""

from __future__ import annotations

import re

# Characters with an inline meaning in pandoc Markdown (and Quarto): HTML and entities (< > &),
# emphasis and code (* _ ` ~ ^), links and spans ([ ] ! @ { }), math ($), table cells (|),
# headings (#), escapes (\) and smart quotes (" '). Backslash-escaped, each is literal.
_MD_SPECIAL = re.compile(r"""([\\`*_{}\[\]<>()#+!|$~^@&"'=:-])""")
_SPACE = re.compile(r"\s+")


def md(value) -> str:
    """``value`` as literal Markdown text on one line (``None`` -> ``''``)."""
    if value is None:
        return ""
    text = _SPACE.sub(" ", str(value)).strip()
    return _MD_SPECIAL.sub(r"\\\1", text)


def typst_string(value) -> str:
    """``value`` as the body of a typst string literal (between double quotes)."""
    text = _SPACE.sub(" ", str(value))
    return text.replace("\\", "\\\\").replace('"', '\\"')
