"""Build the starter content's gated PDFs from the Markdown sources beside this script.

    .venv/bin/python docs/starter-content/make_pdfs.py    # writes content/resources/*.pdf
                                                          # and content/resources/covers/*.svg

Each source has front matter (title, subtitle, kind, output, edition; optional ``chapters: true``
to open each ``#`` heading on a new page, ``cover: band`` for a short sheet without a cover
page and contents) and a small
Markdown subset as its body: ``#``/``##``/``###`` headings, paragraphs, ``-`` bullets,
``- [ ]`` checklist items, ``1.`` lists, ``>`` call-outs, pipe tables and ``**bold**`` /
``*italic*``. The PDFs use the core Helvetica font, so text must be Latin-1 once typographic
quotes and dashes are mapped; anything else stops the script with the file and line.
Output is reproducible: the same sources give the same bytes.

Needs the ``authoring`` extra (fpdf2): ``pip install -e '.[authoring]'``.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import yaml
from fpdf import FPDF
from fpdf.fonts import FontFace

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent.parent / "content" / "resources"

PRIMARY = (48, 63, 159)  # indigo, the site's primary colour
ACCENT = (255, 112, 67)  # deep orange, the site's accent
INK = (33, 33, 33)
MUTED = (110, 110, 110)
TINT = (237, 240, 250)
#: Fixed, so rebuilding unchanged sources does not change the committed files.
CREATED = datetime(2026, 11, 1, tzinfo=timezone.utc)

TYPOGRAPHY = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
              "\u2014": " - ", "\u2026": "...", "\u00a0": " "}


@dataclass
class Block:
    kind: str  # h1 h2 h3 p ul check ol quote table
    text: str = ""
    items: list | None = None


def latin1(text: str, where: str) -> str:
    """Map typographic punctuation to what the core fonts can show; refuse anything else."""
    for char, plain in TYPOGRAPHY.items():
        text = text.replace(char, plain)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as e:
        raise SystemExit(f"{where}: character {text[e.start]!r} is not in Latin-1; rephrase it") from None
    return text


def inline(text: str) -> str:
    """Markdown emphasis to fpdf2's markup (``**bold**`` stays, ``*italic*`` becomes ``__``)."""
    return re.sub(r"(?<!\*)\*(?!\*)([^*]+?)\*(?!\*)", r"__\1__", text)


def parse(body: str, name: str, first_line: int) -> list[Block]:
    """Split the body into blocks; continuation lines of list items are indented by spaces."""
    blocks: list[Block] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        raw, number = lines[i], first_line + i
        text = latin1(raw, f"{name}:{number}")
        i += 1
        if not text.strip():
            continue
        heading = re.match(r"^(#{1,3}) (.+)$", text)
        if heading:
            blocks.append(Block(f"h{len(heading.group(1))}", heading.group(2).strip()))
            continue
        if text.startswith("|"):
            rows = [text]
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(latin1(lines[i], f"{name}:{first_line + i}"))
                i += 1
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            blocks.append(Block("table", items=[r for r in cells if not all(set(c) <= {"-", ":"} for c in r)]))
            continue
        chunk = [text]
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,3} |\|)", lines[i]):
            chunk.append(latin1(lines[i], f"{name}:{first_line + i}"))
            i += 1
        if chunk[0].startswith(">"):
            blocks.append(Block("quote", " ".join(c.lstrip("> ").strip() for c in chunk)))
            continue
        list_item = re.compile(r"^(- \[ \] |- |\d+\. )")
        if list_item.match(chunk[0]):
            items: list[str] = []
            kind = {"- [ ] ": "check", "- ": "ul"}.get(list_item.match(chunk[0]).group(1), "ol")
            for c in chunk:
                m = list_item.match(c)
                if m:
                    items.append(c[m.end():].strip())
                else:
                    items[-1] += " " + c.strip()
            blocks.append(Block(kind, items=items))
            continue
        blocks.append(Block("p", " ".join(c.strip() for c in chunk)))
    return blocks


class Document(FPDF):
    """A4 document with a running header, page numbers and the site's colours."""

    def __init__(self, meta: dict):
        super().__init__(format="A4", unit="mm")
        self.meta = meta
        self.set_margins(22, 24, 22)
        self.set_auto_page_break(True, margin=22)
        self.set_creation_date(CREATED)
        self.set_title(meta["title"])
        self.set_subject(meta["subtitle"])
        self.set_author("Leadgate")
        self.set_creator("docs/starter-content/make_pdfs.py")
        self.set_lang("en")
        self.chapter = 0

    def header(self) -> None:
        if self.page_no() == 1:  # the cover
            return
        self.set_y(11)
        self.set_font("Helvetica", size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.meta["title"], align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"{self.meta['kind']} | Leadgate", align="R")
        self.set_draw_color(220, 220, 220)
        self.line(self.l_margin, 17, self.w - self.r_margin, 17)
        self.set_y(self.t_margin)

    def footer(self) -> None:
        if self.page_no() == 1 and self.meta.get("cover") != "band":
            return
        self.set_y(-14)
        self.set_font("Helvetica", size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, str(self.page_no()), align="C")

    @property
    def text_width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def need(self, height: float) -> None:
        """Start a new page unless ``height`` mm still fit: keeps headings with their text."""
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()

    # -- covers ----------------------------------------------------------------------

    def cover_page(self) -> None:
        self.add_page()
        self.set_fill_color(*PRIMARY)
        self.rect(0, 0, self.w, 200, style="F")
        self.set_fill_color(*ACCENT)
        self.rect(self.l_margin, 60, 24, 2.2, style="F")
        self.set_xy(self.l_margin, 70)
        self.set_text_color(255, 255, 255)
        self.set_font("Helvetica", "B", 11)
        self.cell(0, 8, self.meta["kind"].upper(), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "B", 32)
        self.multi_cell(self.text_width - 10, 14, self.meta["title"], align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(5)
        self.set_font("Helvetica", "", 15)
        self.set_text_color(222, 226, 245)
        self.multi_cell(self.text_width - 20, 8, self.meta["subtitle"], align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_xy(self.l_margin, 230)
        self.set_text_color(*PRIMARY)
        self.set_font("Helvetica", "B", 20)
        self.cell(0, 10, "Leadgate", new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(*MUTED)
        self.set_font("Helvetica", "", 10)
        self.cell(0, 6, "Guides for marketing and sales teams", new_x="LMARGIN", new_y="NEXT")
        self.cell(0, 6, self.meta["edition"], new_x="LMARGIN", new_y="NEXT")

    def cover_band(self) -> None:
        self.add_page()
        self.set_fill_color(*PRIMARY)
        self.rect(0, 0, self.w, 58, style="F")
        self.set_xy(self.l_margin, 14)
        self.set_text_color(255, 255, 255)
        self.set_font("Helvetica", "B", 9)
        self.cell(0, 6, f"{self.meta['kind'].upper()}  |  LEADGATE", new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "B", 24)
        self.multi_cell(self.text_width, 11, self.meta["title"], align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 11)
        self.set_text_color(222, 226, 245)
        self.multi_cell(self.text_width, 6, self.meta["subtitle"], align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_y(62)

    def contents(self, pdf: FPDF, outline: list) -> None:
        """The table of contents page (called back by fpdf2 once page numbers are known)."""
        pdf.set_x(pdf.l_margin)
        pdf.set_font("Helvetica", "B", 22)
        pdf.set_text_color(*PRIMARY)
        pdf.cell(0, 14, "Contents", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        for section in outline:
            if section.level > 0:
                continue
            pdf.set_font("Helvetica", "", 12)
            pdf.set_text_color(*INK)
            link = pdf.add_link(page=section.page_number)
            pdf.cell(self.text_width - 14, 9, section.name, link=link)
            pdf.set_text_color(*MUTED)
            pdf.cell(14, 9, str(section.page_number), align="R", link=link, new_x="LMARGIN", new_y="NEXT")
            pdf.set_draw_color(230, 230, 230)
            pdf.line(self.l_margin, pdf.get_y(), self.w - self.r_margin, pdf.get_y())

    # -- blocks ----------------------------------------------------------------------

    def body_font(self) -> None:
        self.set_font("Helvetica", "", 10.5)
        self.set_text_color(*INK)

    def heading(self, block: Block) -> None:
        if block.kind == "h1":
            if self.meta.get("chapters"):
                self.chapter += 1
                if self.get_y() > self.t_margin + 1:
                    self.add_page()
                self.start_section(block.text, level=0)
                self.set_font("Helvetica", "B", 10)
                self.set_text_color(*ACCENT)
                self.cell(0, 8, f"CHAPTER {self.chapter}", new_x="LMARGIN", new_y="NEXT")
                self.set_font("Helvetica", "B", 24)
                self.set_text_color(*PRIMARY)
                self.multi_cell(self.text_width, 11, block.text, align="L", new_x="LMARGIN", new_y="NEXT")
                self.ln(6)
                return
            self.need(40)
            self.ln(4)
            self.start_section(block.text, level=0)
            self.set_font("Helvetica", "B", 17)
            self.set_text_color(*PRIMARY)
            self.multi_cell(self.text_width, 8.5, block.text, align="L", new_x="LMARGIN", new_y="NEXT")
            self.ln(3)
            return
        self.need(30)
        self.ln(2)
        size = 13 if block.kind == "h2" else 11
        if block.kind == "h2":
            self.start_section(block.text, level=1)
        self.set_font("Helvetica", "B", size)
        self.set_text_color(*INK)
        self.multi_cell(self.text_width, size * 0.55, block.text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)

    def paragraph(self, text: str, indent: float = 0, after: float = 3) -> None:
        self.body_font()
        self.set_x(self.l_margin + indent)
        self.multi_cell(self.text_width - indent, 5.4, inline(text), markdown=True, align="L",
                        new_x="LMARGIN", new_y="NEXT")
        self.ln(after)

    def list_items(self, block: Block) -> None:
        for number, item in enumerate(block.items or [], start=1):
            self.need(11)
            y = self.get_y()
            if block.kind == "ul":
                self.set_fill_color(*ACCENT)
                self.circle(self.l_margin + 2.4, y + 2.7, 0.8, style="F")
            elif block.kind == "check":
                self.set_draw_color(*PRIMARY)
                self.set_line_width(0.3)
                self.rect(self.l_margin + 0.8, y + 1.0, 3.4, 3.4)
            else:
                self.set_font("Helvetica", "B", 10.5)
                self.set_text_color(*PRIMARY)
                self.set_xy(self.l_margin, y)
                self.cell(6, 5.4, f"{number}.")
                self.set_y(y)
            self.paragraph(item, indent=7, after=1.6)
        self.ln(1.6)

    def quote(self, text: str) -> None:
        self.set_font("Helvetica", "B", 11)
        width = self.text_width - 14
        lines = self.multi_cell(width, 5.8, inline(text), markdown=True, dry_run=True, output="LINES")
        height = len(lines) * 5.8 + 10
        self.need(height + 4)
        y = self.get_y() + 1
        self.set_fill_color(*TINT)
        self.rect(self.l_margin, y, self.text_width, height, style="F")
        self.set_fill_color(*PRIMARY)
        self.rect(self.l_margin, y, 1.6, height, style="F")
        self.set_xy(self.l_margin + 8, y + 5)
        self.set_text_color(*PRIMARY)
        self.multi_cell(width, 5.8, inline(text), markdown=True, align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_y(y + height + 5)

    def table_block(self, rows: list[list[str]]) -> None:
        # Wide enough for the longest word, then in proportion to how much text a column holds.
        columns = list(zip(*rows))
        widths = [max(1.5 * max(len(w) for c in col for w in c.split()), sum(map(len, col)) / len(col))
                  for col in columns]
        self.need(30)
        self.set_font("Helvetica", "", 9.5)
        self.set_text_color(*INK)
        self.set_draw_color(210, 214, 230)
        self.set_line_width(0.2)
        self.set_fill_color(246, 247, 252)
        heading = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=PRIMARY)
        with self.table(col_widths=widths, width=self.text_width, text_align="LEFT", line_height=5,
                        headings_style=heading, markdown=True, padding=2,
                        cell_fill_color=(246, 247, 252), cell_fill_mode="ROWS") as table:
            for row in rows:
                cells = table.row()
                for text in row:
                    cells.cell(inline(text))
        self.ln(5)

    def render(self, blocks: list[Block]) -> None:
        for block in blocks:
            if block.kind.startswith("h"):
                self.heading(block)
            elif block.kind == "p":
                self.paragraph(block.text)
            elif block.kind in ("ul", "check", "ol"):
                self.list_items(block)
            elif block.kind == "quote":
                self.quote(block.text)
            elif block.kind == "table":
                self.table_block(block.items or [])


def cover_svg(meta: dict) -> str:
    """A small cover image in the PDF cover's design, for the catalog and the landing page."""
    lines = textwrap.wrap(meta["title"], width=16)
    title = "".join(
        f'<text x="48" y="{370 + 66 * i}" font-size="58" font-weight="700">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 800" width="600" height="800">'
        f'<rect width="600" height="800" fill="rgb{PRIMARY}"/>'
        f'<rect x="48" y="250" width="80" height="8" fill="rgb{ACCENT}"/>'
        '<g font-family="Helvetica, Arial, sans-serif" fill="#fff">'
        f'<text x="48" y="306" font-size="26" font-weight="700" letter-spacing="3">{escape(meta["kind"].upper())}</text>'
        f"{title}"
        '<text x="48" y="740" font-size="32" font-weight="700">Leadgate</text>'
        "</g></svg>\n"
    )


def build(source: Path, out_dir: Path) -> Path:
    """Render one source to ``out_dir`` (and its cover to ``out_dir/covers``); return the PDF."""
    text = source.read_text(encoding="utf-8")
    match = re.match(r"\A---\n(.*?)\n---\n", text, re.S)
    if not match:
        raise SystemExit(f"{source.name}: needs front matter (title, subtitle, kind, output, edition)")
    meta = yaml.safe_load(match.group(1))
    missing = {"title", "subtitle", "kind", "output", "edition"} - set(meta)
    if missing:
        raise SystemExit(f"{source.name}: front matter is missing {', '.join(sorted(missing))}")
    meta = {k: latin1(v, f"{source.name}: {k}") if isinstance(v, str) else v for k, v in meta.items()}
    first_line = match.group(0).count("\n") + 1
    blocks = parse(text[match.end():], source.name, first_line)

    pdf = Document(meta)
    if meta.get("cover") == "band":
        pdf.cover_band()
    else:
        pdf.cover_page()
        pdf.add_page()
        # Reserves this page for the contents and moves on to a fresh one.
        pdf.insert_toc_placeholder(pdf.contents, pages=1)
    pdf.render(blocks)
    target = out_dir / meta["output"]
    pdf.output(str(target))
    covers = out_dir / "covers"
    covers.mkdir(exist_ok=True)
    (covers / f"{target.stem}.svg").write_text(cover_svg(meta), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help="Markdown sources (default: all beside this script)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PDFs (default: content/resources)")
    args = parser.parse_args(argv)
    sources = args.sources or sorted(p for p in HERE.glob("*.md") if p.name != "README.md")
    args.out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = build(source, args.out)
        print(f"{source.name} -> {target} ({target.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
