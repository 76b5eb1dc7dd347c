"""Running a workflow: the plugin, workers that die with the run, and a failure told in one line."""

import gc
import os
import re
import select
import signal
import threading
import time
from pathlib import Path

from singlestrip_bids.errors import UserError
from singlestrip_bids.io.lock import process_alive

MULTIPROCESS_PLUGINS = ("MultiProc", "LegacyMultiProc")
LOCAL_POLL_SECONDS = 0.05
WATCH_POLL_SECONDS = 1.0
# "OSError: [Errno 28] No space left on device", tab-indented when Nipype nests the node's traceback
_EXCEPTION_LINE = re.compile(r"^\t*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)\b.*)$")


#: what every strip worker imports, loaded once in the server that the local workers fork from
WORKER_PRELOAD = ("torch", "nibabel", "singlestrip_bids.interfaces.strip", "singlestrip_bids.workflows.server_exit")


def start_worker_server(plugin: str) -> None:
    """Start the forkserver that the local workers of ``plugin`` will fork from, with
    :data:`WORKER_PRELOAD` imported there: it loads while this process reads and checks the dataset,
    and no worker imports torch itself. Other plugins: nothing."""
    if plugin not in MULTIPROCESS_PLUGINS:
        return
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    forkserver.ensure_running()


def check_plugin(name: str) -> None:
    """UserError unless ``name`` is a Nipype execution plugin (``MultiProc``, ``SLURM``, ...)."""
    from nipype.pipeline import plugins

    if not hasattr(plugins, f"{name}Plugin"):
        known = sorted(item[: -len("Plugin")] for item in dir(plugins) if item.endswith("Plugin") and item != "Plugin")
        raise UserError(f"unknown Nipype plugin {name!r} (known: {', '.join(known)})")


def run_workflow(workflow, *, work_dir, plugin="MultiProc", plugin_args=None, nprocs=1, mem_gb=None, verbose=0,
                 log_file=None, on_step=None):
    """Run ``workflow`` in ``work_dir`` (reused by reruns) with a Nipype plugin; returns the executed graph.

    ``nprocs`` and ``mem_gb`` (GB) bound the local multiprocess plugins; ``plugin_args`` are passed
    on and take precedence. Nipype's records go to ``log_file`` (when given), and to the console
    only with ``verbose`` ≥ 1 (≥ 2: its DEBUG records too). ``on_step(name, status)`` hears each
    step start and end (``name`` like ``sub_01_T1w_wf.predict``; status ``start``, ``end`` or
    ``exception``) on the plugins that report them (not the graph plugins). MultiProc workers ignore
    Ctrl-C and end with this process (even a SIGKILL of it); a Ctrl-C here stops them and is raised
    on as KeyboardInterrupt.
    A failed node becomes a one-line ``UserError``: the image, the node, the error and its crash file.
    """
    if verbose >= 2:
        from nipype import config
        from nipype import logging as nipype_logging

        config.set("logging", "workflow_level", "DEBUG")
        nipype_logging.update_logging(config)
    route_nipype_logging(log_file, verbose)
    workflow.base_dir = str(work_dir)
    crash_dir = Path(work_dir) / "crash"
    workflow.config["execution"].update(
        {"crashdump_dir": str(crash_dir), "crashfile_format": "txt", "hash_method": "timestamp"})
    plugin_args = dict(plugin_args or {})
    if plugin in MULTIPROCESS_PLUGINS:
        # Local workers: poll often. Nipype's 2 s default would cost ~2 s per cached node on a rerun,
        # and each poll interval is lost between a worker's nodes and along the chain of small
        # nodes at the end (0.1 s: 0.3 s of 10 heads' 10 s); polling costs the driver little.
        workflow.config["execution"]["poll_sleep_duration"] = LOCAL_POLL_SECONDS
        plugin_args.setdefault("n_procs", nprocs)
        # Fresh worker processes: a fork of this process, which has run torch, can deadlock in
        # torch's thread pool as soon as a worker uses more than one thread.
        plugin_args.setdefault("mp_context", "forkserver")
        if mem_gb:
            plugin_args.setdefault("memory_gb", mem_gb)
    if on_step is not None:
        plugin_args["status_callback"] = lambda node, status: on_step(node.fullname.split(".", 1)[-1], status)
    # Nipype's cluster plugins name their jobs after LOGNAME, which batch jobs and containers may lack.
    os.environ.setdefault("LOGNAME", _user_name())
    runner = _supervised_multiproc(plugin_args, log_file, verbose) if plugin == "MultiProc" else plugin
    started = time.time()
    # MultiProc runs gc.collect() before every submission and after every node it runs itself: with
    # the objects of the set-up frozen out of the collector's reach, each costs milliseconds, not 0.1 s.
    gc.freeze()
    try:
        return workflow.run(plugin=runner, plugin_args=plugin_args)
    except KeyboardInterrupt:
        if not isinstance(runner, str):
            runner.terminate_workers()
        raise
    except RuntimeError:
        raise UserError(describe_failures(crash_dir, since=started)) from None
    finally:
        gc.unfreeze()


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (a container run with --user)
        return f"uid{os.getuid()}"


def describe_failures(crash_dir, *, since: float) -> str:
    """One line on the nodes that crashed after ``since`` (epoch s): image, node, last error line, crash file."""
    crash_files = sorted(path for path in Path(crash_dir).glob("crash-*") if path.stat().st_mtime >= since - 1)
    if not crash_files:
        return f"the workflow failed; details in the crash files of {crash_dir}"
    first = crash_files[0]
    node, error = _read_crash_file(first)
    more = f" (and {len(crash_files) - 1} more node(s))" if len(crash_files) > 1 else ""
    return f"{node} failed: {error}{more}; details in {first}"


def _read_crash_file(path: Path) -> tuple[str, str]:
    """The node's name (``<image>_wf.<node>``) and the innermost exception line of its traceback."""
    lines = path.read_text(errors="replace").splitlines()
    node = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Node:")), path.name)
    node = node.split(".", 1)[1] if node.count(".") >= 2 else node  # drop the top workflow's name
    errors = [match.group(1) for line in lines if (match := _EXCEPTION_LINE.match(line))]
    return node, (errors[-1] if errors else "see the crash file")[:300]


def route_nipype_logging(log_file, verbose: int) -> None:
    """Nipype's records to ``log_file`` (appended; None: nowhere), and to the console only if ``verbose``."""
    import logging

    nipype_logger = logging.getLogger("nipype")
    if not verbose:
        for handler in list(nipype_logger.handlers):
            if type(handler) is logging.StreamHandler:
                nipype_logger.removeHandler(handler)
    if log_file is not None and not any(getattr(handler, "baseFilename", None) == str(Path(log_file).absolute())
                                        for handler in nipype_logger.handlers):
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"))
        nipype_logger.addHandler(handler)


def _supervised_multiproc(plugin_args: dict, log_file, verbose: int):
    from nipype.pipeline.plugins import MultiProcPlugin

    class SupervisedMultiProcPlugin(MultiProcPlugin):
        """MultiProc whose workers ignore SIGINT and end when the run's process ends, however it ends."""

        def __init__(self, plugin_args=None):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            super().__init__(plugin_args=plugin_args)
            self.pool.shutdown(wait=False)  # no worker has started yet: replace the pool
            context = multiprocessing.get_context(self.plugin_args.get("mp_context"))
            self.pool = ProcessPoolExecutor(max_workers=self.processors, initializer=init_worker,
                                            initargs=(self._cwd, os.getpid(), log_file, verbose),
                                            mp_context=context)

        def terminate_workers(self) -> None:
            import logging

            # The jobs' futures fail as their workers go; their callbacks' tracebacks say nothing new.
            logging.getLogger("concurrent.futures").disabled = True
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
            self.pool.shutdown(wait=False, cancel_futures=True)

    return SupervisedMultiProcPlugin(plugin_args=plugin_args)


def init_worker(cwd: str, run_pid: int, log_file=None, verbose: int = 0) -> None:
    """A MultiProc worker's start: Nipype's own set-up, its records where the run's go, SIGINT
    ignored, and a watch on the run's process.

    A worker is a child of multiprocessing's fork server, not of the run, and holds the fork
    server's liveness pipe, so neither dies when the run is killed: the watch ends the worker then.
    """
    from nipype.pipeline.plugins.multiproc import process_initializer

    process_initializer(cwd)
    route_nipype_logging(log_file, verbose)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    threading.Thread(target=_exit_with, args=(run_pid,), name="exit-with-run", daemon=True).start()


def _exit_with(pid: int) -> None:
    """Block until process ``pid`` has ended (a zombie counts as ended), then end this process."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd (not Linux ≥ 5.3): poll
        while process_alive(pid):
            time.sleep(WATCH_POLL_SECONDS)
        os._exit(1)
    select.select([handle], [], [])
    os._exit(1)
