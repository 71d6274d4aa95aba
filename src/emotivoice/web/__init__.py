"""The web UI: pages, small ES modules and styles served by ``emotivoice serve`` (no build step,
no CDN: everything it needs ships in this folder).

Each page is a fragment in ``pages/`` placed into ``layout.html`` (head, header, navigation).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

__all__ = ["PAGES", "render_page", "static_dir"]

#: page name → (title, navigation entry marked current, module script)
PAGES = {
    "index": ("Analyze", "analyze", "analyze.js"),
    "result": ("Result", "", "result.js"),
    "live": ("Live", "live", "live.js"),
    "assistant": ("Assistant", "assistant", "assistant.js"),
    "wakeword": ("Wake word", "wakeword", "wakeword.js"),
}


def _folder() -> Path:
    return Path(str(resources.files("emotivoice.web")))


def static_dir() -> Path:
    """The folder of the UI's scripts and styles."""
    return _folder() / "static"


@cache
def render_page(name: str) -> str:
    """The full HTML of page ``name`` (one of :data:`PAGES`)."""
    title, nav, script = PAGES[name]
    folder = _folder()
    current = ' aria-current="page"'
    values = {
        "{title}": title,
        "{nav_analyze}": current if nav == "analyze" else "",
        "{nav_live}": current if nav == "live" else "",
        "{nav_assistant}": current if nav == "assistant" else "",
        "{nav_wakeword}": current if nav == "wakeword" else "",
        "{script}": script,
        "{body}": (folder / "pages" / f"{name}.html").read_text(encoding="utf-8"),
    }
    html = (folder / "layout.html").read_text(encoding="utf-8")
    for key, value in values.items():
        html = html.replace(key, value)
    return html
