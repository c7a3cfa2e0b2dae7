"""Helpers of the security tests: the whole AppTest element tree as text, and the files a run offered
for download (eager data and deferred callables, captured as Streamlit registers them)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest


def tree_text(at: AppTest) -> str:
    """Everything the last run sent to the browser, as text: every element's proto (labels, values,
    help texts, options, markdown bodies, alert texts, link targets) and every dataframe's cells."""
    parts: list[str] = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None:
            try:
                parts.append(text_format.MessageToString(proto, as_utf8=True))
            except Exception:  # pragma: no cover - a proto text_format cannot print
                parts.append(str(proto))
        if type(node).__name__ == "Dataframe":
            parts.append(node.value.to_csv())
    return "\n".join(parts)


def markdown_bodies(at: AppTest) -> list[str]:
    """The raw Markdown of every markdown-like element (markdown, caption, alerts, titles)."""
    out: list[str] = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "header", "subheader"):
        out += [str(e.proto.body) for e in getattr(at, kind)]
    return out


@dataclass
class Downloads:
    """Files offered by download buttons during the runs inside `capture_downloads()`."""

    eager: list[tuple[str | None, bytes]] = field(default_factory=list)
    deferred: list[tuple[str | None, Callable[[], Any]]] = field(default_factory=list)

    def produce(self) -> Iterator[tuple[str | None, bytes]]:
        """Every file's bytes (deferred ones are made now, as a click in the browser would)."""
        yield from self.eager
        for name, make in self.deferred:
            data = make()
            if isinstance(data, str):
                data = data.encode("utf-8")
            elif hasattr(data, "read"):
                data = data.read()
            yield name, bytes(data)


@contextmanager
def capture_downloads() -> Iterator[Downloads]:
    seen = Downloads()
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def spy_add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if is_for_static_download and isinstance(path_or_data, bytes):
            seen.eager.append((file_name, path_or_data))
        return add(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    def spy_deferred(self, data_callable, mimetype, coordinates, file_name=None, *args, **kwargs):
        seen.deferred.append((file_name, data_callable))
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, *args, **kwargs)

    MediaFileManager.add = spy_add  # type: ignore[method-assign]
    MediaFileManager.add_deferred = spy_deferred  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        MediaFileManager.add = add  # type: ignore[method-assign]
        MediaFileManager.add_deferred = add_deferred  # type: ignore[method-assign]


def file_text(name: str | None, data: bytes) -> str:
    """A downloaded file as text: PDFs through pdftotext, XLSX cell values, anything else decoded."""
    if data[:5] == b"%PDF-":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "f.pdf"
            path.write_bytes(data)
            done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
            return done.stdout.decode("utf-8", errors="replace") + data.decode("latin-1")
    if data[:2] == b"PK" and (name or "").endswith(".xlsx"):
        import io

        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(data), read_only=True)
        return "\n".join(str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    return data.decode("utf-8", errors="replace")
