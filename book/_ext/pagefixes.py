"""Sphinx extension: two fixes to Jupyter Book 1.x pages, so they load without console errors.

1. Scripts added twice. Under Jupyter Book 1.x the inline scripts of sphinx-thebe and
   sphinx-togglebutton are added to every page twice (seen with a one-page book too);
   the second ``const THEBE_JS_URL`` then throws "Identifier 'THEBE_JS_URL' has already
   been declared". Each page keeps the first copy of every script.
2. The colour mode. pydata-sphinx-theme starts a first-time visitor (empty
   ``localStorage``) in mode ``""`` unless ``html_context["default_mode"]`` is set, and
   logs "Got invalid theme mode". We set the theme's own default, ``auto``, unless the
   book sets one.

``tests/test_browser.py`` opens every page in Chromium and fails on such errors.
"""


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", str(script)) or ""  # inline scripts: None or ""
    return (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))


def unique_scripts(scripts: list) -> list:
    """The scripts in order, each (file name or inline body, attributes) kept once."""
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def _page_context(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def _default_mode(app, config):
    config.html_context.setdefault("default_mode", "auto")


def setup(app):
    app.connect("config-inited", _default_mode)
    app.connect("html-page-context", _page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
