"""Sphinx extension: re-read (and so re-execute) every page on every build.

Sphinx re-reads only pages whose source changed since the last build, so with
``execute_notebooks: force`` a chapter whose Markdown did not change would keep the
figures of an older library. Marking every page outdated makes each build run every
chapter against the code as it is now.
"""


def _every_page(app, env, added, changed, removed):
    return sorted(env.found_docs - added - changed - removed)


def setup(app):
    app.connect("env-get-outdated", _every_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
