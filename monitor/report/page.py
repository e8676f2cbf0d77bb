"""The report page made safe: Evidently's page in, a page whose data cannot run out.

Evidently writes the report's data (category values among it: anything a model's
callers sent) as JSON into an inline script without escaping ``</script>``, so a value
``</script><script>...`` would run in whoever opens the report. Here the page is
rebuilt from its parts:

- the two data documents, found by Evidently's template layout and checked to be
  JSON, with ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\u`` escapes (they
  only ever occur inside JSON strings, so the data is unchanged);
- Evidently's own script bundle, read from its package, and its two fixed calls;
- Sidewatch's header, whose text is HTML-escaped by the caller.

Every script is inline, so the page still opens offline; each is allowed by its
SHA-256 in a Content-Security-Policy, given in a ``<meta>`` element (it holds in a
saved copy too) and as the HTTP header. Nothing else may run: no other script, no
event handler attribute, no network request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

_DATA = re.compile(r"<script>\n\s*var (metric_[0-9a-f]{32}) = ")
_STYLE = re.compile(r"<style>.*?</style>", re.S)

_POLICY = (
    "default-src 'none'",
    "style-src 'unsafe-inline'",  # Evidently's and Plotly's inline styles
    "img-src data: blob:",
    "font-src data:",
    "base-uri 'none'",
    "form-action 'none'",
)
_HEADER_ONLY = ("frame-ancestors 'none'",)
"""Directives a ``<meta>`` policy may not hold."""

_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_UNSAFE = re.compile("[<>&\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class SafePage:
    """A report page and the policy that lets only its own scripts run."""

    html: str
    content_security_policy: str
    """For the ``Content-Security-Policy`` header (the page's ``<meta>`` holds the same
    but for the directives only a header may give)."""


def script_json(document: str) -> str:
    """JSON text made safe inside an inline ``<script>``: ``<``, ``>``, ``&``, U+2028
    and U+2029 as ``\\u`` escapes (which JSON and JavaScript read as the same text)."""
    return _UNSAFE.sub(lambda m: _ESCAPES[m.group()], document)


def secure(evidently_page: str, *, title: str, header: str, library: str) -> SafePage:
    """Rebuild Evidently's page with escaped data and a hash-based policy.

    Args:
        evidently_page: What ``snapshot.get_html_str(as_iframe=False)`` returned.
        title: The page title, already HTML-escaped.
        header: Sidewatch's header element, its text already HTML-escaped.
        library: Evidently's script bundle (``index.js`` of its static files).

    Raises:
        RuntimeError: The page is not laid out as Evidently 0.7 lays it out.
    """
    found = _DATA.search(evidently_page)
    style = _STYLE.search(evidently_page)
    if found is None or style is None or style.end() > found.start():
        raise RuntimeError(
            "Evidently's page has no data script after its style: its layout changed"
        )
    dashboard_id = found.group(1)
    # json.dumps writes no raw newline, so each document ends its line.
    first_end = evidently_page.index("\n", found.end())
    dashboard = evidently_page[found.end() : first_end].removesuffix(";")
    graphs_line = f"\n    var additional_graphs_{dashboard_id} = "
    if not evidently_page.startswith(graphs_line, first_end):
        raise RuntimeError("Evidently's page has no additional graphs after its dashboard")
    start = first_end + len(graphs_line)
    graphs = evidently_page[start : evidently_page.index("\n", start)].removesuffix(";")
    for document in (dashboard, graphs):
        json.loads(document)  # exactly one JSON document each, or the layout changed
    if f"window.drawDashboard({dashboard_id}," not in evidently_page:
        raise RuntimeError("Evidently's page does not draw its dashboard as expected")

    scripts = (
        f"var {dashboard_id} = {script_json(dashboard)};\n"
        f"var additional_graphs_{dashboard_id} = {script_json(graphs)};",
        "var global = globalThis",
        library,
        f"window.drawDashboard({dashboard_id}, "
        f"new Map(Object.entries(additional_graphs_{dashboard_id})), "
        f'"root_{dashboard_id}");',
    )
    hashes = " ".join(f"'sha256-{_digest(s)}'" for s in scripts)
    meta_policy = "; ".join((f"script-src {hashes}", *_POLICY))
    data, define_global, bundle, draw = (f"<script>{s}</script>" for s in scripts)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{meta_policy}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        f'<title>{title}</title>\n<link rel="icon" href="data:,">\n'
        f"{style.group()}\n{data}\n</head>\n<body>{header}"
        f'<div id="root_{dashboard_id}"></div>\n{define_global}\n{bundle}\n{draw}\n'
        "</body>\n</html>\n"
    )
    return SafePage(page, "; ".join((meta_policy, *_HEADER_ONLY)))


def library_script(static_dir: Path) -> str:
    """Evidently's script bundle from its package's static files.

    Raises:
        RuntimeError: The bundle is missing or would end its own script element.
    """
    path = static_dir / "index.js"
    if not path.is_file():
        raise RuntimeError(f"Evidently's script bundle {path} is missing: reinstall evidently")
    text = path.read_text(encoding="utf-8")
    if "</script" in text.lower():
        raise RuntimeError(f"{path} holds '</script': it cannot be inlined")
    return text


def _digest(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
