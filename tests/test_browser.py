"""The built book as a reader meets it: every page opened in headless Chromium.

The book is served from localhost and each page is loaded in Debian's Chromium through
Playwright. A page fails on:

- a JavaScript console error or an uncaught exception;
- a request that fails, or one that leaves localhost (the book is self-contained:
  MathJax is served from the book, see book/_vendor/mathjax);
- an image that does not load, or has no alt text;
- an unrendered glue value, formula or Markdown table (a `| --- |` row shown as text);
- a link to another page of the book, or to an anchor, that does not exist;
- a Binder or Colab launch link whose notebook is not in this repository.

A screenshot of every page goes to `_build/screenshots/` beside the built site.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.I)
# The rule under a Markdown table's header, as it reads when the table was not rendered.
RAW_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Everything a page must be quiet about, gathered in the browser after load.
PAGE_STATE_JS = """
async () => {
  for (const img of document.images) img.loading = "eager";
  const broken = [];
  await Promise.all([...document.images].map(img => img.decode().catch(() => broken.push(img.src))));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const math = [...document.querySelectorAll(".math")];
  return {
    broken_images: broken,
    no_alt: [...document.images].filter(img => !img.alt.trim()).map(img => img.src),
    images: document.images.length,
    unrendered_math: math.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 80)),
    math: math.length,
    ids: [...document.querySelectorAll("[id]")].map(e => e.id),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    table_rows: [...document.querySelectorAll("table")].map(t => t.querySelectorAll("tbody tr").length),
    text: document.body.innerText,
  };
}
"""


def chromium() -> str:
    """Path of a Chromium binary: $MNISTLAB_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    path = os.environ.get("MNISTLAB_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not path:
        pytest.fail(
            f"no Chromium found (looked for $MNISTLAB_CHROMIUM and {', '.join(CHROMIUM_NAMES)} on PATH): "
            "install Debian's package with `apt-get install -y chromium`, as the README's test command does"
        )
    return path


@pytest.fixture(scope="module")
def site(built_book):
    """The built site served on a free localhost port for the duration of the module."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", built_book
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output for failures
        pass


def repository_files() -> set[str]:
    """Files of this repository as git tracks them (what Binder and Colab will find on GitHub)."""
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"`git ls-files` failed in {ROOT}: the launch links are checked against git: {out.stderr}")
    return set(out.stdout.splitlines())


def launch_notebook(href: str, repo: str, branch: str) -> str | None:
    """The repository path of the notebook a Binder or Colab link opens, or None for other links."""
    url = urllib.parse.urlparse(href)
    owner_name = urllib.parse.urlparse(repo).path.strip("/")
    if url.hostname == "mybinder.org":
        prefix = f"/v2/gh/{owner_name}/{branch}"
        assert url.path == prefix, f"Binder link {href} does not open {owner_name} at {branch}"
        query = urllib.parse.parse_qs(url.query)
        return query["urlpath"][0].removeprefix("tree/")
    if url.hostname == "colab.research.google.com":
        prefix = f"/github/{owner_name}/blob/{branch}/"
        assert url.path.startswith(prefix), f"Colab link {href} does not open {owner_name} at {branch}"
        return url.path.removeprefix(prefix)
    return None


def visit(browser, base: str, name: str, screenshot: Path) -> tuple[list[str], dict]:
    """Open one page; return what went wrong while it loaded and its state after load."""
    found: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def leave_localhost(route, request):
        found.append(f"request leaves localhost: {request.url}")
        route.abort()

    page.route(lambda url: not url.startswith(base), leave_localhost)
    page.on("console", lambda m: m.type == "error" and found.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: found.append(f"uncaught exception: {e}"))
    page.on("requestfailed", lambda r: r.url.startswith(base) and found.append(f"request failed: {r.url} {r.failure}"))
    try:
        page.goto(base + name, wait_until="load")
        state = page.evaluate(PAGE_STATE_JS)
        page.screenshot(path=str(screenshot))
    finally:
        page.close()
    return found, state


def claims_page_problems(state: dict) -> list[str]:
    """The claims appendix shows its two tables as tables: the first with one row per claim it counts."""
    counted = re.search(r"makes (\d+) claims", state["text"])
    if not counted:
        return ["claims page: no sentence 'makes N claims'"]
    rows = state["table_rows"]
    if len(rows) < 2:
        return [f"claims page: expected its two tables (claims; the source's claims), found {len(rows)}"]
    if rows[0] != int(counted.group(1)):
        return [f"claims page: the table has {rows[0]} rows for the {counted.group(1)} claims the text counts"]
    return []


def test_every_page_in_headless_chromium(site):
    from playwright.sync_api import sync_playwright

    base, html = site
    pages = sorted(p.relative_to(html).as_posix() for p in html.glob("*.html"))
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo, branch = config["repository"]["url"], config["repository"]["branch"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    every_page = [toc["root"], *(c["file"] for part in toc["parts"] for c in part["chapters"])]
    # The pages that are notebooks, each with a paired .ipynb the launch buttons open.
    notebooks = {n for n in every_page if (ROOT / "book" / f"{n}.md").read_text().startswith("---\njupytext:")}
    tracked = repository_files()
    shots = html.parent / "screenshots"
    shots.mkdir(exist_ok=True)

    problems: dict[str, list[str]] = {}
    ids: dict[str, set[str]] = {}
    links: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            for name in pages:
                redirect = REDIRECT.search((html / name).read_text())
                if redirect:  # index.html only forwards to the root page: check where, do not visit
                    target = redirect.group(1)
                    problems[name] = [] if (html / target).is_file() else [f"redirects to a missing page: {target}"]
                    continue
                found, state = visit(browser, base, name, shots / name.replace(".html", ".png"))
                problems[name] = found
                found += [f"image does not load: {src}" for src in state["broken_images"]]
                found += [f"image without alt text: {src}" for src in state["no_alt"]]
                found += [f"formula not typeset: {m!r}" for m in state["unrendered_math"]]
                if "{glue" in state["text"]:
                    found.append("an unrendered glue role is visible")
                found += [f"Markdown table shown as text: {line!r}" for line in state["text"].splitlines()
                          if RAW_TABLE_RULE.match(line)]
                if name == "claims.html":
                    found += claims_page_problems(state)
                ids[name] = set(state["ids"])
                links[name] = state["links"]
                launched = {launch_notebook(h, repo, branch) for h in state["links"]} - {None}
                if name.removesuffix(".html") in notebooks:
                    stem = name.removesuffix(".html")
                    expected = f"{config['repository']['path_to_book']}/{stem}.ipynb"
                    if launched != {expected}:
                        found.append(f"launch links open {sorted(launched)}, expected {expected}")
                found += [f"launch link opens {nb}, which is not in the repository" for nb in launched - tracked]
        finally:
            browser.close()

    for name, hrefs in links.items():
        for href in hrefs:
            if not href.startswith(base):
                continue
            url = urllib.parse.urlparse(href)
            target = urllib.parse.unquote(url.path.removeprefix(urllib.parse.urlparse(base).path)) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (html / target).exists():
                problems[name].append(f"link to a missing file: {href}")
            elif url.fragment and target in ids and url.fragment not in ids[target]:
                problems[name].append(f"link to a missing anchor: {href}")

    assert len(pages) >= len(notebooks), f"expected every chapter's page, found {pages}"
    failures = {name: found for name, found in problems.items() if found}
    assert not failures, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in failures.items())
