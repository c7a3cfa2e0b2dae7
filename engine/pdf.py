"""Chinese PDFs with fpdf2: a CJK font finder and a small `Document` builder.

Font: `find_cjk_font()` returns the font to embed. `LAC_CJK_FONT` (a path, optionally followed by
`:N` to pick face N of a .ttc collection) overrides everything; otherwise well-known locations on
Debian/Ubuntu, Fedora/Arch, Windows and macOS are tried, then a scan of the usual font directories.
Nothing found -> `EngineError("pdf.no_font")`, whose message says how to fix it: the console never
prints empty boxes.

Speed: fpdf2 parses a TrueType font (cmap, widths, glyph ids) on every `add_font`, and fontTools
decodes the glyph names ('post') and outlines ('glyf') again when the document is written and the
font subset. Both happen ONCE per process per font here: the `TTFFont` fpdf2 parsed is kept as a
template (`_FONT_TEMPLATES`); each new document gets a shallow copy sharing the read-only tables
(cmap, widths, glyph ids, descriptor) with fresh per-document state (subset map, glyph usage), and
a fresh fontTools handle that shares the already decoded glyph order, 'post' and 'glyf' (glyphs are
copied on read, because the subsetter rewrites the glyphs it keeps). The embedded subset is
byte-identical to plain fpdf2's (tests/unit/test_pdf.py checks it). Measured here (2 cores,
wqy-microhei, a one-page document): plain fpdf2 0.45 s per document when idle (add_font 0.49-0.63 s
alone, output 0.12-0.25 s); with the template: `Document()` 1-4 ms, whole document 0.2-0.3 s; under
load 1.1-1.7 s vs 0.24-0.67 s. CFF-outline fonts (Noto CJK) share the fpdf2 parse only.

Text is emitted as real text: fpdf2 embeds a subset of the TrueType font (/FontFile2), so
`pdftotext` extracts it.
"""

from __future__ import annotations

import copy
import glob
import os
import threading
from dataclasses import dataclass
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align, TableHeadingsDisplay, WrapMode, XPos, YPos
from fpdf.fonts import FontFace, SubsetMap, TTFFont

from engine.errors import EngineError
from engine.messages import register

register(
    {
        "pdf.no_font": {
            "zh": (
                "找不到可显示中文的字体，无法生成 PDF{where}。"
                "请安装中文字体（Debian/Ubuntu：sudo apt-get install fonts-wqy-microhei），"
                "或设置环境变量 LAC_CJK_FONT 指向一个存在的中文字体文件"
                "（.ttc 字体集可在路径后加 :序号，例如 /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:2）。"
            ),
            "en": (
                "No font that can show Chinese was found, so the PDF cannot be made{where}. "
                "Install a Chinese font (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei), "
                "or set the environment variable LAC_CJK_FONT to an existing Chinese font file "
                "(for a .ttc collection add :N, e.g. /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:2)."
            ),
        },
    }
)

ENV_VAR = "LAC_CJK_FONT"
FAMILY = "cjk"
DEFAULT_OFFICE_NAME = "法律援助处"


@dataclass(frozen=True)
class FontRef:
    path: str
    index: int = 0


# Known files, best first, with the face index that draws Simplified Chinese.
KNOWN_FONTS: tuple[FontRef, ...] = (
    FontRef("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    FontRef("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    FontRef("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    FontRef("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    FontRef("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    FontRef("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    FontRef("/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc", 0),
    FontRef("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc", 0),
    FontRef("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    FontRef("C:/Windows/Fonts/msyh.ttc", 0),
    FontRef("C:/Windows/Fonts/simsun.ttc", 0),
    FontRef("/System/Library/Fonts/PingFang.ttc", -1),  # -1: pick the SC face by name
    FontRef("/System/Library/Fonts/Hiragino Sans GB.ttc", 0),
    FontRef("/System/Library/Fonts/STHeiti Light.ttc", 0),
)

SCAN_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "~/Library/Fonts",
)
SCAN_NAME_HINTS = (
    "wqy",
    "cjk",
    "sourcehan",
    "droidsansfallback",
    "uming",
    "ukai",
    "sarasa",
    "simsun",
    "msyh",
    "pingfang",
    "heiti",
    "songti",
    "kaiti",
    "fangsong",
    "sc-",
    "hans",
)
_PROBE = "中国法律援助"

_SCAN_RESULT: list[FontRef | None] = []  # process cache of the directory scan ([] = not scanned yet)
_LOCK = threading.Lock()
_FONT_TEMPLATES: dict[tuple[str, int], TTFFont] = {}
_NEEDS_FULL_PARSE: dict[tuple[str, int], bool] = {}
FONT_PARSES = {"count": 0}  # how many times a font file was parsed in this process (tests read it)


def _face_for_sc(path: str) -> int:
    """For a .ttc collection: the face whose name says Simplified Chinese, else 0."""
    if not path.lower().endswith(".ttc"):
        return 0
    try:
        from fontTools.ttLib import TTCollection

        coll = TTCollection(path, lazy=True)
        for i, face in enumerate(coll.fonts):
            name = face["name"].getBestFamilyName() or ""
            if any(tag in name for tag in (" SC", "GB", "CN", "Simplified")):
                return i
    except Exception:
        return 0
    return 0


def _has_chinese(ref: FontRef) -> bool:
    try:
        from fontTools.ttLib import TTFont

        font = TTFont(ref.path, fontNumber=ref.index, lazy=True)
        cmap = font.getBestCmap() or {}
        font.close()
        return all(ord(ch) in cmap for ch in _PROBE)
    except Exception:
        return False


def _scan() -> FontRef | None:
    for ref in KNOWN_FONTS:
        if os.path.isfile(ref.path):
            index = _face_for_sc(ref.path) if ref.index < 0 else ref.index
            return FontRef(ref.path, index)
    for base in SCAN_DIRS:
        root = os.path.expanduser(base)
        if not os.path.isdir(root):
            continue
        candidates = []
        for ext in ("ttc", "ttf", "otf", "TTC", "TTF", "OTF"):
            candidates.extend(glob.glob(os.path.join(root, "**", f"*.{ext}"), recursive=True))
        for path in sorted(candidates):
            name = os.path.basename(path).lower()
            if not any(hint in name for hint in SCAN_NAME_HINTS):
                continue
            ref = FontRef(path, _face_for_sc(path))
            if _has_chinese(ref):
                return ref
    return None


def _parse_env(value: str) -> FontRef:
    path, index = value, 0
    head, sep, tail = value.rpartition(":")
    if sep and tail.isdigit() and head:
        path, index = head, int(tail)
    return FontRef(os.path.expanduser(path), index)


def find_cjk_font() -> FontRef:
    """The CJK font to embed: LAC_CJK_FONT, else a known system font, else EngineError('pdf.no_font')."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        ref = _parse_env(env)
        if not os.path.isfile(ref.path) or not os.access(ref.path, os.R_OK):
            raise EngineError("pdf.no_font", where=f" [LAC_CJK_FONT={env}: file not found]", path=ref.path)
        return ref
    with _LOCK:
        if not _SCAN_RESULT:
            _SCAN_RESULT.append(_scan())
        found = _SCAN_RESULT[0]
    if found is None:
        raise EngineError("pdf.no_font", where="")
    return found


def _template(ref: FontRef) -> TTFFont:
    key = (ref.path, ref.index)
    with _LOCK:
        tmpl = _FONT_TEMPLATES.get(key)
        if tmpl is None:
            scratch = FPDF()
            try:
                scratch.add_font(FAMILY, "", ref.path, collection_font_number=ref.index)
            except Exception as exc:
                raise EngineError("pdf.no_font", where=f" [{ref.path}: {exc}]", path=ref.path) from exc
            FONT_PARSES["count"] += 1
            tmpl = scratch.fonts[FAMILY]
            # fpdf2 draws a fallback .notdef into the parsed glyf of fonts that lack one; a fresh
            # handle would not have it, so such fonts are parsed per document (rare).
            _NEEDS_FULL_PARSE[key] = "glyf" in tmpl.ttfont and _notdef_was_patched(ref)
            _FONT_TEMPLATES[key] = tmpl
        return tmpl


def _notdef_was_patched(ref: FontRef) -> bool:
    """True when the font file itself has no .notdef glyph (checked once per process)."""
    from fontTools import ttLib

    raw = ttLib.TTFont(ref.path, fontNumber=ref.index, lazy=True)
    try:
        return ".notdef" not in raw.getGlyphOrder()
    finally:
        raw.close()


class _CopyOnRead(dict):
    """A view of the template's decompiled glyphs that hands out copies.

    fontTools' subsetter rewrites the glyphs it keeps (component ids remapped, data trimmed):
    each document must get its own glyph objects, but only for the few hundred glyphs it uses.
    """

    def __init__(self, source: dict) -> None:
        super().__init__()
        self._source = source

    def __getitem__(self, key: str) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        return copy.copy(self._source[key])

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._source

    def __iter__(self):
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def keys(self):  # type: ignore[override]
        return self._source.keys()

    def values(self):  # type: ignore[override]
        return (self[k] for k in self._source)

    def items(self):  # type: ignore[override]
        return ((k, self[k]) for k in self._source)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        return self[key]


def _fresh_ttfont(ref: FontRef, source: Any) -> Any:
    """A per-document fontTools handle for fpdf2 to subset (it subsets in place).

    For TrueType-outline fonts the expensive tables (glyph order, 'post' names, 'glyf') are shared
    with the process-wide parsed `source` instead of being decoded again: 'post' as a shallow copy
    (the subsetter only reassigns its attributes), 'glyf' as a shallow copy whose glyphs are copied
    when read. Other tables load lazily from the file (cheap). CFF fonts get a plain fresh handle.
    """
    from fontTools import ttLib

    tt = ttLib.TTFont(ref.path, recalcTimestamp=False, fontNumber=ref.index, lazy=True)
    if "glyf" not in source or "post" not in source:
        return tt
    with _LOCK:
        src_glyf = source["glyf"]
        src_post = source["post"]
        order = source.getGlyphOrder()
    tt.setGlyphOrder(list(order))
    post = copy.copy(src_post)
    post.extraNames = list(getattr(src_post, "extraNames", []))
    tt.tables["post"] = post
    glyf = copy.copy(src_glyf)
    glyf.glyphs = _CopyOnRead(src_glyf.glyphs)
    glyf.glyphOrder = list(src_glyf.glyphOrder)
    tt.tables["glyf"] = glyf
    return tt


def _attach_font(pdf: FPDF, ref: FontRef) -> None:
    """Register the CJK font on `pdf` reusing the process-wide parse (see module doc)."""

    tmpl = _template(ref)
    try:
        font = copy.copy(tmpl)
        font.i = len(pdf.fonts) + 1
        font.ttfont = _fresh_ttfont(ref, tmpl.ttfont)
        if _NEEDS_FULL_PARSE.get((ref.path, ref.index)):
            raise AttributeError("font lacks .notdef (fpdf2 patches its glyf): use the full add_font path")
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font._hbfont = None
        font.subset = SubsetMap(font)
        pdf.fonts[FAMILY] = font
        if font.is_cff and font.is_cid_keyed:
            pdf._set_min_pdf_version("1.6")
    except AttributeError:  # fpdf2 internals changed, or an unusual font: parse normally
        pdf.fonts.pop(FAMILY, None)
        pdf.add_font(FAMILY, "", ref.path, collection_font_number=ref.index)
        FONT_PARSES["count"] += 1


def office_name(engine: Any, lang: str = "zh") -> str:
    """The office name from Setting 'office_name' (a str, or {"zh":..,"en":..} / {"value":..})."""
    if engine is None:
        return DEFAULT_OFFICE_NAME
    from sqlalchemy import select

    from models.tables import Setting

    try:
        with engine.connect() as conn:
            value = conn.execute(select(Setting.value).where(Setting.key == "office_name")).scalar()
    except Exception:
        return DEFAULT_OFFICE_NAME
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict):
        for k in (lang, "zh", "value", "name", "en"):
            v = value.get(k)
            if isinstance(v, str) and v.strip():
                return v.strip()
    return DEFAULT_OFFICE_NAME


class _PDF(FPDF):
    def __init__(self, doc: Document) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._doc = doc

    def header(self) -> None:
        d = self._doc
        self.set_font(FAMILY, size=9)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, d.office_name, align=Align.L)
        if d.title:
            self.set_x(self.l_margin)
            self.cell(0, 5, d.title, align=Align.R)
        self.ln(6)
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0, 0, 0)
        self.set_font(FAMILY, size=d.base_size)

    def footer(self) -> None:
        d = self._doc
        self.set_y(-13)
        self.set_font(FAMILY, size=9)
        self.set_text_color(90, 90, 90)
        text = f"第 {self.page_no()} 页" if d.lang == "zh" else f"Page {self.page_no()}"
        self.cell(0, 6, text, align=Align.C)
        self.set_text_color(0, 0, 0)


class Document:
    """An A4 portrait document in Chinese (or English) with office header and page numbers.

    The header shows `office`, else the Setting "office_name" of `engine` when one is given, else
    DEFAULT_OFFICE_NAME; the footer shows "第 N 页" ("Page N" in English).
    """

    HEADING_SIZES = {1: 17, 2: 13.5, 3: 11.5}

    def __init__(
        self,
        *,
        title: str = "",
        office: str | None = None,
        lang: str = "zh",
        font: FontRef | None = None,
        base_size: float = 10.5,
        engine: Any = None,
    ) -> None:
        self.font = font or find_cjk_font()
        self.lang = lang
        self.title = title
        self.office_name = office or (office_name(engine, lang) if engine is not None else DEFAULT_OFFICE_NAME)
        self.base_size = base_size
        pdf = _PDF(self)
        pdf.set_margins(18, 15, 18)
        pdf.set_auto_page_break(True, margin=18)
        _attach_font(pdf, self.font)
        pdf.set_title(title or self.office_name)
        pdf.set_creator("Legal Aid Console")
        pdf.set_font(FAMILY, size=base_size)
        pdf.add_page()
        self.pdf = pdf

    # -- geometry helpers ------------------------------------------------------------------
    @property
    def width(self) -> float:
        return self.pdf.w - self.pdf.l_margin - self.pdf.r_margin

    def _room(self) -> float:
        return self.pdf.page_break_trigger - self.pdf.get_y()

    def ensure_room(self, height: float) -> None:
        if self._room() < height:
            self.pdf.add_page()

    # -- content ---------------------------------------------------------------------------
    def heading(self, text: str, level: int = 1) -> None:
        pdf = self.pdf
        size = self.HEADING_SIZES.get(level, 11)
        self.ensure_room(size * 0.9 + 12)
        pdf.ln(2 if level > 1 else 3)
        pdf.set_font(FAMILY, size=size)
        with pdf.local_context(text_mode="FILL_STROKE", line_width=0.12 if level == 1 else 0.08):
            pdf.multi_cell(
                0,
                size * 0.5,
                str(text),
                align=Align.C if level == 1 else Align.L,
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
        pdf.ln(1.5)
        pdf.set_font(FAMILY, size=self.base_size)

    def paragraph(self, text: str, size: float | None = None) -> None:
        pdf = self.pdf
        pdf.set_font(FAMILY, size=size or self.base_size)
        pdf.multi_cell(0, (size or self.base_size) * 0.55, str(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
        pdf.set_font(FAMILY, size=self.base_size)

    def kv(self, rows: list[tuple[str, str]], label_width: float = 48) -> None:
        """Label / value pairs as a two-column grid (values wrap)."""
        if not rows:
            return
        self.table(
            None,
            [(str(k), "" if v is None else str(v)) for k, v in rows],
            widths=[label_width, self.width - label_width],
            label_first=True,
        )

    def table(
        self,
        headers: list[str] | None,
        rows: list[tuple | list],
        widths: list[float] | None = None,
        *,
        label_first: bool = False,
        align_numbers: bool = True,
    ) -> None:
        """A wrapping table; the header row repeats at the top of every page it spans."""
        pdf = self.pdf
        ncols = len(headers) if headers else (len(rows[0]) if rows else 0)
        if not ncols:
            return
        if widths is None:
            widths = [self.width / ncols] * ncols
        elif len(widths) != ncols:
            raise ValueError("widths must have one entry per column")
        scale = self.width / sum(widths)
        widths = [w * scale for w in widths]
        pdf.set_font(FAMILY, size=self.base_size - 0.5)
        heading_face = FontFace(family=FAMILY, emphasis="", fill_color=(228, 234, 242))
        label_face = FontFace(family=FAMILY, emphasis="", fill_color=(244, 244, 244))
        with pdf.table(
            col_widths=tuple(widths),
            width=self.width,
            first_row_as_headings=bool(headers),
            headings_style=heading_face,
            repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
            line_height=(self.base_size - 0.5) * 0.55,
            padding=1.2,
            text_align="LEFT",
            wrapmode=WrapMode.CHAR if self.lang == "zh" else WrapMode.WORD,
        ) as tbl:
            if headers:
                hrow = tbl.row()
                for h in headers:
                    hrow.cell(str(h))
            for row in rows:
                r = tbl.row()
                for i, value in enumerate(row):
                    text = "" if value is None else str(value)
                    style = label_face if (label_first and i == 0) else None
                    align = (
                        "RIGHT" if (align_numbers and not label_first and i > 0 and _numeric(text)) else None
                    )
                    r.cell(text, style=style, align=align)
        pdf.ln(2.5)
        pdf.set_font(FAMILY, size=self.base_size)

    def bar_chart(self, title: str, items: list[tuple[str, float]], *, unit: str = "") -> None:
        """A horizontal bar chart drawn with rectangles; each bar labelled with its value."""
        pdf = self.pdf
        bar_h, gap = 6.0, 2.2
        height = 12 + max(1, len(items)) * (bar_h + gap) + 4
        self.ensure_room(min(height, 120))
        self.heading(title, level=3)
        if not items:
            self.paragraph("（无数据）" if self.lang == "zh" else "(no data)")
            return
        label_w = min(55.0, max(pdf.get_string_width(str(k)) for k, _ in items) + 4)
        value_w = 22.0
        plot_w = self.width - label_w - value_w
        top = max((float(v or 0) for _, v in items), default=0.0) or 1.0
        pdf.set_font(FAMILY, size=self.base_size - 1)
        for label, value in items:
            self.ensure_room(bar_h + gap)
            x0, y = pdf.l_margin, pdf.get_y()
            pdf.set_xy(x0, y)
            pdf.cell(label_w - 2, bar_h, _fit(pdf, str(label), label_w - 2), align=Align.R)
            w = plot_w * float(value or 0) / top
            pdf.set_fill_color(70, 110, 170)
            if w > 0:
                pdf.rect(x0 + label_w, y + 0.6, max(w, 0.4), bar_h - 1.2, style="F")
            pdf.set_xy(x0 + label_w + w + 1.5, y)
            pdf.cell(value_w, bar_h, f"{_fmt(value)}{unit}")
            pdf.set_xy(x0, y + bar_h + gap)
        # axis
        pdf.set_draw_color(120, 120, 120)
        pdf.line(
            pdf.l_margin + label_w,
            pdf.get_y() - len(items) * (bar_h + gap) - 0.5,
            pdf.l_margin + label_w,
            pdf.get_y() - gap + 0.5,
        )
        pdf.ln(3)
        pdf.set_font(FAMILY, size=self.base_size)

    def signature_lines(self, labels: list[str], per_row: int = 2) -> None:
        """Signature / date lines: 'label：________' laid out `per_row` per line."""
        pdf = self.pdf
        self.ensure_room(12 * ((len(labels) + per_row - 1) // per_row) + 6)
        pdf.ln(6)
        col = self.width / per_row
        for start in range(0, len(labels), per_row):
            y = pdf.get_y()
            for j, label in enumerate(labels[start : start + per_row]):
                x = pdf.l_margin + j * col
                pdf.set_xy(x, y)
                text = f"{label}：" if self.lang == "zh" else f"{label}:"
                lw = pdf.get_string_width(text) + 1
                pdf.cell(lw, 7, text)
                pdf.set_draw_color(0, 0, 0)
                pdf.line(x + lw, y + 6.2, x + col - 6, y + 6.2)
            pdf.set_xy(pdf.l_margin, y + 12)
        pdf.ln(2)

    def spacer(self, height: float = 4) -> None:
        self.pdf.ln(height)

    def page_break(self) -> None:
        self.pdf.add_page()

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _numeric(text: str) -> bool:
    if text.strip() == "—":
        return True
    t = text.replace(",", "").replace("%", "").replace("+", "").replace("-", "", 1).strip()
    return bool(t) and t.replace(".", "", 1).isdigit()


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _fit(pdf: FPDF, text: str, width: float) -> str:
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def font_status() -> tuple[FontRef | None, EngineError | None]:
    """For `manage.py check` and the settings page: the font in use, or the error explaining why not."""
    try:
        return find_cjk_font(), None
    except EngineError as exc:
        return None, exc


__all__ = [
    "DEFAULT_OFFICE_NAME",
    "Document",
    "FontRef",
    "find_cjk_font",
    "font_status",
    "office_name",
]
