"""Imported last into the workers' fork server (``execution.WORKER_PRELOAD``): when the run ends, the
server ends at once with ``os._exit`` instead of a normal interpreter exit, which spends about 0.6 s
tearing down torch while it still holds the run's stdout and stderr (so a caller reading them waits).

Only the server runs it: its workers are multiprocessing children, which end with ``os._exit`` and
never run ``atexit`` handlers. The server holds no data of its own to flush.
"""

import atexit
import os

atexit.register(os._exit, 0)
