"""Rendering the Quarto project: `quarto render` when installed, else the built-in renderer.

The built-in renderer reads the same sources — ``_quarto.yml`` (site title and navbar) and the
``.qmd`` pages — resolves ``{{< include FILE >}}`` shortcodes, turns Markdown into HTML with
pandoc (from ``pypandoc_binary``), and wraps each page in a self-contained template (inline CSS
and JavaScript, no CDN): navbar, and tabs for ``::: {.panel-tabset}`` blocks. PDFs go through
pandoc's typst writer and the ``typst`` compiler, the engines Quarto uses for ``format: typst``.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from cfxlib.publish.escape import typst_string
from cfxlib.publish.variables import lookup

INCLUDE = re.compile(r"\{\{<\s*include\s+(\S+)\s*>\}\}")
VAR = re.compile(r"\{\{<\s*var\s+([A-Za-z0-9_.-]+)\s*>\}\}")
VARIABLES_FILE = "_variables.yml"
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


class RenderError(RuntimeError):
    pass


def quarto_available() -> bool:
    return shutil.which("quarto") is not None


def resolve_includes(text: str, base: Path, depth: int = 0) -> str:
    if depth > 5:
        raise RenderError("includes nested too deeply")

    def sub(match: re.Match) -> str:
        path = (base / match.group(1)).resolve()
        if not path.exists():
            raise RenderError(f"included file {match.group(1)} not found (from {base})")
        return resolve_includes(path.read_text(encoding="utf-8"), path.parent, depth + 1)

    return INCLUDE.sub(sub, text)


def resolve_vars(text: str, variables: dict, where: str = "page") -> str:
    """Replace ``{{< var a.b >}}`` with the value of ``a.b`` (as Quarto does); unknown -> RenderError."""

    def sub(match: re.Match) -> str:
        try:
            value = lookup(variables, match.group(1))
        except KeyError:
            raise RenderError(
                f"{where}: unknown variable {match.group(1)!r} (not in {VARIABLES_FILE}; see docs/reports.md)"
            ) from None
        return str(value)

    return VAR.sub(sub, text)


def resolve_shortcodes(text: str, base: Path, variables: dict, where: str = "page") -> str:
    """Includes first (their text may quote variables), then variables."""
    return resolve_vars(resolve_includes(text, base), variables, where)


def load_variables(project: Path) -> dict:
    path = project / VARIABLES_FILE
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


def report_markdown(page: Path, variables: dict) -> tuple[str, str]:
    """A ``.qmd`` page as plain Markdown (title, body with shortcodes resolved) for a PDF or ``.md``."""
    meta, body = split_front_matter(page.read_text(encoding="utf-8"))
    title = meta.get("title", page.stem)
    return title, resolve_shortcodes(body, page.parent, variables, page.name)


def split_front_matter(text: str) -> tuple[dict, str]:
    found = FRONT_MATTER.match(text)
    if not found:
        return {}, text
    return yaml.safe_load(found.group(1)) or {}, text[found.end() :]


CSS = """
:root { --ink:#1f2a37; --muted:#5b6b7c; --accent:#2f6db5; --line:#e3e8ef; --bg:#f6f8fb; }
* { box-sizing: border-box; }
body { margin:0; font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color:var(--ink); background:var(--bg); line-height:1.5; }
header.site { background:#1f3b57; color:white; padding:0 24px; display:flex; align-items:center; gap:28px; position:sticky; top:0; z-index:10; }
header.site .brand { font-weight:700; font-size:17px; padding:14px 0; white-space:nowrap; }
header.site nav { display:flex; flex-wrap:wrap; gap:4px; }
header.site nav a { color:#dbe6f3; text-decoration:none; padding:16px 12px; font-size:14px; border-bottom:3px solid transparent; }
header.site nav a:hover { color:white; }
header.site nav a.active { color:white; border-bottom-color:#7fb2ff; }
main { max-width:1180px; margin:24px auto; background:white; padding:28px 36px 40px; border:1px solid var(--line); border-radius:8px; }
h1 { font-size:28px; margin:0 0 8px; }
h2 { font-size:21px; margin-top:32px; border-bottom:1px solid var(--line); padding-bottom:6px; }
h3 { font-size:17px; margin-top:24px; }
p, li { font-size:15px; }
table { border-collapse:collapse; width:100%; margin:12px 0 20px; font-size:13.5px; display:block; overflow-x:auto; }
thead th { background:#eef3f9; text-align:left; font-weight:600; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
td[style*="right"], th[style*="right"] { font-variant-numeric: tabular-nums; }
img { max-width:min(100%, 980px); height:auto; border:1px solid var(--line); border-radius:6px; margin:8px 0; }
code { background:#eef2f7; padding:1px 5px; border-radius:4px; font-size:13px; }
.tabset-nav { display:flex; gap:4px; border-bottom:2px solid var(--line); margin:20px 0 12px; }
.tabset-nav button { background:none; border:none; padding:10px 18px; font-size:15px; cursor:pointer; color:var(--muted); border-bottom:3px solid transparent; margin-bottom:-2px; }
.tabset-nav button.active { color:var(--accent); border-bottom-color:var(--accent); font-weight:600; }
.tab-panel { display:none; } .tab-panel.active { display:block; }
footer { text-align:center; color:var(--muted); font-size:12px; margin:0 0 30px; }
.cfx-demo-banner { background:#fff4d6; color:#7a4700; border:1px solid #9a5b00; border-radius:4px; font-weight:600; text-align:center; padding:6px 12px; margin:12px auto; max-width:1100px; }
.table-wrap { overflow-x:auto; max-width:100%; -webkit-overflow-scrolling:touch; }
.table-wrap table { display:table; }
pre { overflow-x:auto; }
details.menu { display:none; }
details.menu summary { cursor:pointer; list-style:none; padding:12px 0; font-size:15px; color:#dbe6f3; }
details.menu summary::-webkit-details-marker { display:none; }
details.menu nav { display:flex; flex-direction:column; }
details.menu nav a { padding:10px 4px; border-bottom:1px solid rgba(255,255,255,.12); }
@media (max-width: 760px) {
  header.site { position:static; flex-wrap:wrap; gap:4px 16px; padding:0 14px; }
  header.site > nav { display:none; }
  details.menu { display:block; flex-basis:100%; }
  main { margin:10px 6px; padding:16px 14px 24px; border-radius:6px; }
  h1 { font-size:22px; } h2 { font-size:18px; }
  p, li { font-size:15px; overflow-wrap:anywhere; }
  code { overflow-wrap:anywhere; }
  .tabset-nav { overflow-x:auto; }
  .tabset-nav button { padding:8px 10px; font-size:14px; white-space:nowrap; }
  img { max-width:100%; }
}
"""

JS = """
document.querySelectorAll('.panel-tabset').forEach(function (set, n) {
  var heads = Array.prototype.filter.call(set.children, function (el) { return el.tagName === 'SECTION' || /^H[2-4]$/.test(el.tagName); });
  var sections = [];
  if (heads.length && heads[0].tagName === 'SECTION') { sections = heads; }
  else { // group each heading with the elements after it
    var cur = null; Array.prototype.slice.call(set.children).forEach(function (el) {
      if (/^H[2-4]$/.test(el.tagName)) { cur = document.createElement('section'); set.insertBefore(cur, el); cur.appendChild(el); sections.push(cur); }
      else if (cur) { cur.appendChild(el); } });
  }
  var nav = document.createElement('div'); nav.className = 'tabset-nav'; nav.setAttribute('role', 'tablist');
  sections.forEach(function (sec, i) {
    var h = sec.querySelector('h2, h3, h4'); var b = document.createElement('button');
    b.textContent = h ? h.textContent : ('Tab ' + (i + 1)); b.setAttribute('role', 'tab'); b.id = 'tab-' + n + '-' + i;
    if (h) { h.style.display = 'none'; }
    sec.classList.add('tab-panel'); sec.setAttribute('role', 'tabpanel');
    b.addEventListener('click', function () {
      sections.forEach(function (s) { s.classList.remove('active'); });
      nav.querySelectorAll('button').forEach(function (x) { x.classList.remove('active'); x.setAttribute('aria-selected', 'false'); });
      sec.classList.add('active'); b.classList.add('active'); b.setAttribute('aria-selected', 'true');
    });
    nav.appendChild(b);
  });
  set.insertBefore(nav, set.firstChild);
  if (nav.firstChild) { nav.firstChild.click(); }
});
"""


def _page(
    title: str,
    site_title: str,
    nav: list[tuple[str, str]],
    current: str,
    body: str,
    footer: str,
    heading: bool = True,
    banner: str = "",
) -> str:
    links = "".join(
        f'<a href="{html.escape(href)}"{" class=active" if href == current else ""}>{html.escape(text)}</a>'
        for href, text in nav
    )
    # tables scroll inside their own box on a narrow screen instead of widening the page
    body = body.replace("<table", '<div class="table-wrap"><table').replace("</table>", "</table></div>")
    menu = f'<details class="menu"><summary>☰ Menu</summary><nav>{links}</nav></details>' if nav else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} — {html.escape(site_title)}</title><style>{CSS}</style></head>
<body><header class="site"><div class="brand">{html.escape(site_title)}</div><nav>{links}</nav>{menu}</header>
{f'<div class="cfx-demo-banner" role="note">{html.escape(banner)}</div>' if banner else ""}<main>{f"<h1>{html.escape(title)}</h1>" if heading else ""}
{body}
</main><footer>{html.escape(footer)}</footer><script>{JS}</script></body></html>
"""


def markdown_to_html(markdown: str) -> str:
    import pypandoc

    return pypandoc.convert_text(
        markdown, "html5", format="markdown+pipe_tables+fenced_divs", extra_args=["--section-divs"]
    )


def render_site_builtin(project: Path, out_dir: Path, footer: str = "") -> list[Path]:
    """Render the website of the Quarto project at ``project`` into ``out_dir``."""
    config = yaml.safe_load((project / "_quarto.yml").read_text(encoding="utf-8"))
    website = config.get("website", {})
    site_title = website.get("title", "Site")
    nav_items = website.get("navbar", {}).get("left", [])
    nav = [(str(Path(i["href"]).with_suffix(".html")), i.get("text", Path(i["href"]).stem)) for i in nav_items]
    pages = []
    for pattern in config.get("project", {}).get("render", ["*.qmd"]):
        pages += sorted(project.glob(pattern))
    out_dir.mkdir(parents=True, exist_ok=True)
    variables = load_variables(project)
    written = []
    for page in pages:
        rel = page.relative_to(project)
        meta, body = split_front_matter(page.read_text(encoding="utf-8"))
        body = resolve_shortcodes(body, page.parent, variables, str(rel))
        target = out_dir / rel.with_suffix(".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        depth = len(rel.parts) - 1
        prefix = "../" * depth
        page_nav = [(prefix + href, text) for href, text in nav]
        current = prefix + str(rel.with_suffix(".html"))
        doc = _page(meta.get("title", rel.stem), site_title, page_nav, current, markdown_to_html(body), footer)
        target.write_text(doc, encoding="utf-8")
        written.append(target)
    # assets next to the pages (figures referenced relatively)
    for folder in project.rglob("_artifacts"):
        figures = folder / "figures"
        if figures.is_dir():
            dest = out_dir / folder.relative_to(project) / "figures"
            shutil.copytree(figures, dest, dirs_exist_ok=True)
    return written


def _entry_page(project: Path, out_dir: Path) -> None:
    """``index.html`` at the site root, pointing at the first navbar page when pages live below."""
    index = out_dir / "index.html"
    if index.exists():
        return
    config = yaml.safe_load((project / "_quarto.yml").read_text(encoding="utf-8"))
    items = config.get("website", {}).get("navbar", {}).get("left", [])
    if items:
        href = html.escape(str(Path(items[0]["href"]).with_suffix(".html")))
        index.write_text(
            f'<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={href}"><title>ChatterFix</title><a href="{href}">Open the site</a>\n',
            encoding="utf-8",
        )


def render_site(project: Path, out_dir: Path, footer: str = "", use_quarto: bool | None = None) -> str:
    """Render with Quarto when available (or asked), else built in. Returns the engine used."""
    if use_quarto is None:
        use_quarto = quarto_available()
    if use_quarto:
        result = subprocess.run(
            ["quarto", "render", str(project), "--output-dir", str(out_dir)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RenderError(f"quarto render failed:\n{result.stderr[-3000:]}")
        _entry_page(project, out_dir)
        return "quarto"
    render_site_builtin(project, out_dir, footer)
    _entry_page(project, out_dir)
    return "built-in (pandoc)"


TYPST_PREAMBLE = """
#set document(title: "{title}")
#set page(paper: "a4", margin: (x: 1.8cm, y: 1.6cm), numbering: "1 / 1",
  footer: context [#set text(size: 7.5pt, fill: rgb("#5b6b7c")); #"{footer}" #h(1fr) #counter(page).display("1 / 1", both: true)])
#set text(font: ("DejaVu Sans", "Libertinus Serif"), size: 9.5pt, fill: rgb("#1f2a37"))
#set par(justify: false, leading: 0.55em)
#show heading.where(level: 1): it => block(below: 0.8em)[#text(size: 17pt, weight: "bold", fill: rgb("#1f3b57"))[#it.body]]
#show heading.where(level: 2): it => block(above: 1.1em, below: 0.5em)[#text(size: 12pt, weight: "bold", fill: rgb("#1f3b57"))[#it.body]]
#show table: set text(size: 7.8pt)
#set table(stroke: (x, y) => if y == 0 {{ (bottom: 0.8pt + rgb("#1f3b57")) }} else {{ (bottom: 0.3pt + rgb("#d5dde8")) }}, inset: (x: 4pt, y: 3.2pt), fill: (x, y) => if y == 0 {{ rgb("#eef3f9") }})
#show figure: set block(breakable: false)
#show figure.where(kind: table): set block(breakable: true)
#show figure.caption: none
#set table.cell(breakable: false)
"""


DEMO_HEADER = """
#set page(header: align(center)[#box(fill: rgb("#fff4d6"), stroke: 0.6pt + rgb("#9a5b00"), inset: (x: 8pt, y: 3pt), radius: 2pt)[#text(size: 8pt, weight: "bold", fill: rgb("#7a4700"))[#"{banner}"]]])
"""


_IMAGE = re.compile(r'image\("([^"]+)"\)')
CHART_REFERENCE_IN = 10.0
"""Charts are drawn for this width (theme.WIDE) and shown at the text's full width in a PDF. A
narrower chart is shown proportionally narrower, so every chart's text has the same size."""


def _sized_image(match: re.Match, base: Path) -> str:
    """``image("x.png")`` with a width that keeps the chart's fonts at the size of the others."""
    from PIL import Image

    from cfxlib.publish import theme

    try:
        with Image.open(base / match.group(1)) as im:
            dpi = float((im.info.get("dpi") or (theme.DPI, theme.DPI))[0]) or theme.DPI
            inches = im.width / dpi
    except (OSError, ValueError):
        return match.group(0)
    share = min(100.0, 100.0 * inches / CHART_REFERENCE_IN)
    return f'image("{match.group(1)}", width: {share:.0f}%)'


def render_pdf(markdown: str, base: Path, pdf: Path, title: str, footer: str = "", banner: str = "") -> Path:
    """Markdown (with figures relative to ``base``) -> typst -> PDF; ``banner`` (e.g. the demo
    mark) heads every page."""
    import pypandoc
    import typst

    body = pypandoc.convert_text(markdown, "typst", format="markdown+pipe_tables")
    # pandoc centres every table; labels and tables read better from the left margin
    body = body.replace("align(center)[#table(", "align(left)[#table(")
    body = _IMAGE.sub(lambda m: _sized_image(m, base), body)
    source = base / (pdf.stem + ".typ")
    source.write_text(
        TYPST_PREAMBLE.format(title=typst_string(title), footer=typst_string(footer))
        + (DEMO_HEADER.format(banner=typst_string(banner)) if banner else "")
        + body,
        encoding="utf-8",
    )
    pdf.parent.mkdir(parents=True, exist_ok=True)
    try:
        typst.compile(str(source), output=str(pdf), root=str(base))
    except Exception as exc:  # typst raises its own error types
        raise RenderError(f"typst could not compile {source.name}: {exc}") from None
    return pdf


def render_html_report(markdown: str, html_path: Path, title: str, footer: str = "", banner: str = "") -> Path:
    """A standalone HTML page for a report (same look as the site, no navbar)."""
    html_path.write_text(
        _page(title, "ChatterFix", [], "", markdown_to_html(markdown), footer, heading=False, banner=banner),
        encoding="utf-8",
    )
    return html_path
