"""report.html in a real browser (headless Chromium): it loads, every plot decodes, no link dangles.

The report itself carries no script; the test appends a small one to a copy of the page that
records what the browser saw (image sizes, anchors without a target, page width) on the body
element, and reads it back from Chromium's --dump-dom.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from optbench.report import write_report

from synthetic import make_results

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const missing = Array.from(document.querySelectorAll('a[href^="#"]'))
    .map(a => a.getAttribute("href").slice(1)).filter(id => !document.getElementById(id));
  document.body.setAttribute("data-probe", JSON.stringify({
    images: images.length, broken: broken, missing_ids: missing,
    overflow: document.documentElement.scrollWidth - window.innerWidth}));
});
</script>
"""
LAPTOP = "1366,800"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install chromium)")


class _Collect(HTMLParser):
    """Attributes of interest from a page: body's data-probe, hrefs, img srcs, the title."""

    def __init__(self) -> None:
        super().__init__()
        self.probe: str | None = None
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.probe = attrs.get("data-probe")
        elif tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        elif tag == "img":
            self.srcs.append(attrs.get("src", ""))
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def parse(html: str) -> _Collect:
    collect = _Collect()
    collect.feed(html)
    return collect


def browse(page: Path, profile: Path) -> _Collect:
    """Open `page` in headless Chromium and return what its probe recorded."""
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         f"--window-size={LAPTOP}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return parse(done.stdout)


def probe_copy(report: Path, html: str, name: str) -> Path:
    """A copy of the report beside it (relative links still resolve) with the probe appended."""
    page = report.parent / name
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    return page


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser") / "synth"
    make_results(folder)
    write_report(folder)
    return folder


def test_report_loads_with_every_plot_decoded(folder, tmp_path):
    report = folder / "report.html"
    html = report.read_text()
    static = parse(html)
    seen = browse(probe_copy(report, html, "probe.html"), tmp_path / "profile")
    assert seen.title == static.title == "optbench report: synth"
    probe = json.loads(seen.probe)
    assert probe["images"] == len(list((folder / "plots").glob("*.png"))) == 9
    assert probe["broken"] == [] and probe["missing_ids"] == []
    assert probe["overflow"] <= 0, "the page scrolls sideways on a 1366 px wide window"


def test_every_relative_link_names_an_existing_file(folder):
    hrefs = parse((folder / "report.html").read_text()).hrefs
    files = [h for h in hrefs if not h.startswith("#")]
    assert len(files) >= 24  # one per run record, and the failed/diverged ones again
    assert all(":" not in h for h in files), "a link leaves the results folder"
    assert [h for h in files if not (folder / unquote(h)).is_file()] == []


def test_the_probe_notices_a_broken_image(folder, tmp_path):
    """The check above would pass vacuously if the probe could not see a broken image."""
    report = folder / "report.html"
    html = report.read_text()
    first = parse(html).srcs[0]
    damaged = html.replace(first, "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA", 1)
    damaged = damaged.replace('href="#plots"', 'href="#nowhere"', 1)
    seen = browse(probe_copy(report, damaged, "damaged.html"), tmp_path / "profile")
    probe = json.loads(seen.probe)
    assert len(probe["broken"]) == 1 and probe["missing_ids"] == ["nowhere"]
