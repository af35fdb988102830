"""Sphinx extension: re-read (and so re-execute) every page on every build.

Sphinx re-reads only pages whose source changed since the last build, so with
``execute_notebooks: force`` a chapter whose Markdown did not change would keep the
figures of an older library. Marking every page outdated makes each build run every
chapter against the code as it is now.

It also imports mnistlab, which pins the arithmetic of this process's environment
(:mod:`mnistlab.numerics`), so the kernels the build starts compute the same bits on
every x86-64 machine.
"""

import mnistlab  # noqa: F401  (sets the environment the kernels inherit)


def _every_page(app, env, added, changed, removed):
    return sorted(env.found_docs - added - changed - removed)


def setup(app):
    app.connect("env-get-outdated", _every_page)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
