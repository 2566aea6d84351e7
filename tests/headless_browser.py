"""Open an HTML report in Debian's chromium, headless, offline, and report what the browser saw: how many images
it decoded, which resources it fetched, the page's tables. Used by the report tests (a real browser, not a parser:
a truncated or mislabelled data URI renders as a broken image only there)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

# Runs at the load event (every image loaded or failed); the result lands in the DOM that --dump-dom prints.
_PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.setAttribute("data-probe", JSON.stringify({
    images: images.length,
    decoded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length,
    title: document.title,
    fetched: performance.getEntriesByType("resource").map((r) => r.name),
  }));
});
</script>"""


@dataclass(frozen=True)
class Rendered:
    images: int
    decoded: int
    tables: int
    title: str
    fetched: list[str]
    links: list[str]  # every src/href of the page itself that is not inline (data:) or an anchor


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data") and value and not value.startswith(("data:", "#")):
                self.found.append(value)


def chromium() -> str:
    """The chromium binary; a missing browser fails the test (``make setup`` installs system-packages.txt)."""
    exe = shutil.which("chromium")
    if exe is None:
        raise AssertionError("chromium is not installed: run `make setup` (system-packages.txt lists it)")
    return exe


def render(page: Path, timeout: float = 120) -> Rendered:
    """Load ``page`` (a copy with the probe script added) in headless chromium with every host name unresolvable."""
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    css_urls = re.findall(r"url\(\s*['\"]?(?!data:)([^)'\"]+)", text) + re.findall(r"@import\s+['\"]([^'\"]+)", text)
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / page.name
        probed.write_text(text.replace("</body>", _PROBE + "\n</body>"))
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp}/profile", "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run",
               "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    found = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert run.returncode == 0 and found, f"chromium did not render {page}: {run.stderr[-2000:]}"
    data = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return Rendered(**data, links=parser.found + css_urls)


def assert_self_contained_and_rendered(page: Path, min_images: int) -> Rendered:
    """The page renders in a real browser, every plot decodes, and nothing comes from outside the file."""
    seen = render(page)
    assert seen.images >= min_images, seen
    assert seen.decoded == seen.images, f"{seen.images - seen.decoded} image(s) of {page} do not decode"
    assert seen.fetched == [] and seen.links == [], f"{page} is not self-contained: {seen.fetched + seen.links}"
    assert seen.tables >= 1 and seen.title, seen
    return seen
