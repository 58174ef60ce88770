"""Test-session set-up shared by ``tests/`` and ``notebooks/`` (nbval).

The suite runs in parallel (pytest-xdist, ``-n auto``), and every worker starts
kernels; each of those would size its BLAS/OpenMP pool to every core, as a
kernel of the runner would without :func:`helpers.run.cap_threads`.  So the
workers and their kernels get the cores divided among them, the rule the
runner applies to its notebook workers (:func:`helpers.run.kernel_threads`).
On this project's 2-core machines the nbval run of the six notebooks took
27.1 s with the default pools and 21.5 s with one thread per worker.
"""


def pytest_configure(config):
    if hasattr(config, "workerinput"):      # an xdist worker: the controller set the environment it inherits
        return
    # xdist has resolved ``-n auto`` and ``--maxprocesses`` by now (its pytest_cmdline_main): one "popen" per worker
    workers = len(getattr(config.option, "tx", None) or [])
    if workers > 1:
        from helpers.run import cap_threads, kernel_threads

        cap_threads(kernel_threads(workers))
