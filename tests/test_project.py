"""Project-level checks: lint, README/CI agreement, paired notebooks, the book build."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def pages() -> list[str]:
    """Every page of the book, in the order of the table of contents."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *(c["file"] for part in toc["parts"] for c in part["chapters"])]


def chapters() -> list[str]:
    """The pages that are notebooks (MyST with code), each paired with an executed .ipynb."""
    return [name for name in pages() if (BOOK / f"{name}.md").read_text().startswith("---\njupytext:")]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or pytest.fail("ruff is not installed (it comes with the [test] extra)")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme.split("## Quickstart")[1].split("\n## ")[0], re.S)
    assert len(commands) == 2, f"the quickstart must hold exactly two commands, found {commands}"
    build, test = commands
    assert "jupyter-book build book/" in build
    assert test in ci, f"the test command {test!r} must appear verbatim in .ci/run"


def test_toc_link_points_at_the_top_level_toc():
    link = BOOK / "_toc.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_toc.yml").resolve()


@pytest.mark.parametrize("name", chapters())
def test_paired_notebook_is_in_sync_with_its_source(name):
    md = jupytext.read(BOOK / f"{name}.md")
    ipynb_path = BOOK / f"{name}.ipynb"
    assert ipynb_path.exists(), f"{ipynb_path.name} is missing: run .ci/sync-notebooks"
    nb = nbformat.read(ipynb_path, as_version=4)

    def cells(notebook):
        return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in notebook.cells]

    assert cells(md) == cells(nb), f"{name}.ipynb is out of sync with {name}.md: run .ci/sync-notebooks"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{name}.ipynb was not executed: run .ci/sync-notebooks"


@pytest.mark.parametrize("name", chapters())
def test_stored_notebooks_hold_no_stderr(name):
    """A warning in a stored output would name the path of the machine that executed it
    (and nbval would compare it on every other machine): the chapters must run silently."""
    nb = json.loads((BOOK / f"{name}.ipynb").read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", f"{name}.ipynb cell {i} wrote to stderr: {''.join(out['text'])[:200]}"


def test_book_builds_without_warnings(book_build):
    """`jupyter-book build` with warnings as errors: broken references or glue keys fail."""
    result, html = book_build
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for name in chapters():
        page = (html / f"{name}.html").read_text()
        assert "{glue:" not in page, f"{name}.html shows an unrendered glue role"
        assert "Traceback" not in page, f"{name}.html shows a traceback"
    figures = list((html / "_images").glob("*.png"))
    assert len(figures) >= 8, f"expected the chapters' figures in _images, found {len(figures)}"


def test_every_page_is_marked_outdated_on_every_build():
    """The local extension re-reads unchanged pages, so each build re-executes them."""
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        import reexecute
    finally:
        sys.path.remove(str(BOOK / "_ext"))

    class Env:
        found_docs = {"intro", "a", "b", "c"}

    outdated = reexecute._every_page(None, Env(), added={"a"}, changed={"b"}, removed=set())
    assert outdated == ["c", "intro"]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"  # filled by reexecute, emptied every build
    assert config["sphinx"]["local_extensions"]["reexecute"] == "book/_ext"


def test_build_jobs_follow_cores_memory_and_the_environment(monkeypatch):
    from mnistlab.build import parallel

    gib = parallel.GIB
    assert parallel.plan(cores=2, available=24 * gib, peaks={}, pages=13) == parallel.Plan(2, 1)
    assert parallel.plan(cores=1, available=24 * gib, peaks={}, pages=13) == parallel.Plan(1, 1)
    # Eight cores: as many pages as the memory holds, each with its share of the cores.
    assert parallel.plan(cores=8, available=64 * gib, peaks={}, pages=13) == parallel.Plan(8, 1)
    assert parallel.plan(cores=8, available=8 * gib, peaks={}, pages=13) == parallel.Plan(2, 4)
    measured = {f"p{i}": gib // 2 for i in range(13)}  # small pages, once measured
    assert parallel.plan(cores=8, available=8 * gib, peaks=measured, pages=13) == parallel.Plan(8, 1)
    assert parallel.plan(cores=32, available=256 * gib, peaks=measured, pages=13) == parallel.Plan(13, 2)
    # Too little memory for even one page still runs one.
    assert parallel.plan(cores=4, available=gib, peaks={}, pages=13) == parallel.Plan(1, 4)
    assert parallel.plan(cores=4, available=gib, peaks={}, pages=13, jobs=3) == parallel.Plan(3, 1)
    monkeypatch.setenv("MNISTLAB_BUILD_JOBS", "3")
    assert parallel.jobs_from_environment() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MNISTLAB_BUILD_JOBS", bad)
        with pytest.raises(ValueError, match="MNISTLAB_BUILD_JOBS must be a whole number"):
            parallel.jobs_from_environment()
    env = parallel.kernel_environment(3, {"OMP_NUM_THREADS": "5"})
    assert env["OMP_NUM_THREADS"] == "5" and env["MKL_NUM_THREADS"] == "3"  # the caller's choice stands


def test_a_build_records_each_pages_time_and_peak(tmp_path, monkeypatch):
    from mnistlab.build import parallel

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path))
    assert parallel.measured() == {}
    parallel.record({"a": {"seconds": 3.0, "peak": 2.0e9}})
    parallel.record({"b": {"seconds": 1.0, "peak": 1.0e9}})
    assert parallel.measured() == {"a": {"seconds": 3.0, "peak": 2.0e9}, "b": {"seconds": 1.0, "peak": 1.0e9}}
    (tmp_path / "page-runs.json").write_text("not json")
    assert parallel.measured() == {}


def test_page_fixes_keep_each_script_once():
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        import pagefixes
    finally:
        sys.path.remove(str(BOOK / "_ext"))

    class Script(str):
        def __new__(cls, filename, **attributes):
            s = super().__new__(cls, filename or "")
            s.filename, s.attributes = filename, attributes
            return s

    a, b = Script(None, body="const X = 1"), Script("", body="const X = 1")  # Sphinx writes both for one script
    c, d = Script("x.js"), Script("x.js", defer="defer")
    assert pagefixes.unique_scripts([a, c, b, d, c]) == [a, c, d]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["pagefixes"] == "book/_ext"


@pytest.mark.parametrize("name", chapters())
def test_first_code_cell_installs_mnistlab_on_colab_only(name):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo, branch = config["repository"]["url"], config["repository"]["branch"]
    nb = jupytext.read(BOOK / f"{name}.md")
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", []), "the install cell must be hidden from the book"
    assert 'if "google.colab" in sys.modules:' in first.source
    assert f"git+{repo}@{branch}" in first.source, "the install cell must name the repository of _config.yml"
    # What pip is given is a valid requirement for this project, with extras it defines.
    from packaging.requirements import Requirement

    (spec,) = re.findall(r'package = "([^"]+)"', first.source)
    req = Requirement(spec)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert req.name == "mnistlab" and req.url == f"git+{repo}@{branch}" and req.extras <= set(extras), spec


def test_launch_buttons_and_binder_environment():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    buttons = config["launch_buttons"]
    assert buttons["binderhub_url"].startswith("https://") and buttons["colab_url"].startswith("https://")
    for name in chapters():
        assert (BOOK / f"{name}.ipynb").exists(), f"the launch buttons of {name} need its paired notebook"
    requirements = (ROOT / ".binder" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and ".[book]" in requirements


def _pins() -> dict[str, str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / ".binder" / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith(("#", "--")) or line.startswith("."):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==" and not req.marker and not req.url, f"not an exact pin: {line!r}"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_binder_lock_pins_everything_the_book_needs_consistently():
    """`.binder/requirements.txt` is the lock `python -m mnistlab.build.lock` writes: every distribution
    mnistlab[book] needs, exactly pinned, each pin allowed by pyproject.toml and by what the other
    pinned distributions require (read from those installed here at the pinned version)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from mnistlab.build import lock

    pins = _pins()
    needed = lock.closure()
    assert set(pins) == set(needed), (
        f"the lock is stale (python -m mnistlab.build.lock > .binder/requirements.txt): missing "
        f"{sorted(set(needed) - set(pins))}, not needed {sorted(set(pins) - set(needed))}")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["book"]]
    conflicts = []
    for req in wanted:
        key = canonicalize_name(req.name)
        if key in pins and not req.specifier.contains(Version(pins[key]), prereleases=True):
            conflicts.append(f"pyproject wants {req}, the lock pins {pins[key]}")
    checked = 0
    for name, version in pins.items():
        try:
            if metadata.version(name) != version:
                continue  # only an installed distribution of the pinned version says what it requires
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        for req in lock._requirements(name, ()):
            key = canonicalize_name(req.name)
            if key in pins and not req.specifier.contains(Version(pins[key]), prereleases=True):
                conflicts.append(f"{name}=={version} wants {req}, the lock pins {pins[key]}")
    assert not conflicts, "\n".join(conflicts)
    assert checked >= len(pins) // 2, f"only {checked} of {len(pins)} pins are installed here at their pinned version"
    python = (ROOT / ".binder" / "runtime.txt").read_text().strip()
    assert python == "python-3.11" and Version("3.11") in SpecifierSet(project["requires-python"]), (
        f"Binder's {python} must satisfy requires-python {project['requires-python']}")


def test_publish_workflow_builds_with_full_mnist_and_deploys_only_from_main():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"] and "schedule" in triggers and "pull_request" in triggers
    build = wf["jobs"]["build"]
    assert build["env"]["MNISTLAB_DATA"] == "mnist"
    assert any("jupyter-book build book/" in step.get("run", "") for step in build["steps"])
    # The PDF is printed by the build (book/_ext/bookpdf.py) and published with the site.
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert ".[book,pdf]" in runs and "chromium" in runs and "test -s _build/html/mnistlab.pdf" in runs
    assert any(step.get("with", {}).get("path") == "_build/html" for step in build["steps"])
    assert "pull_request" in wf["jobs"]["deploy"]["if"] and "!=" in wf["jobs"]["deploy"]["if"]
    readme_test = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)[1]
    assert any(readme_test in step.get("run", "") for step in wf["jobs"]["test"]["steps"])


def test_readme_module_table_names_every_module():
    """The README's table of the library lists each module and subpackage, and nothing that is gone."""
    listed = set(re.findall(r"^\| `mnistlab\.(\w+)` \|", (ROOT / "README.md").read_text(), re.M))
    package = ROOT / "mnistlab"
    present = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    present |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert listed == present, f"missing from the README: {sorted(present - listed)}; gone: {sorted(listed - present)}"
