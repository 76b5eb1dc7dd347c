"""A real one-node SLURM cluster on this machine, from Debian's ``slurm-wlm`` and ``munge``.

``SlurmCluster(root)`` writes a munge key and a ``slurm.conf`` under ``root`` (short path: it holds
a unix socket), starts ``munged``, ``slurmctld`` and ``slurmd`` as root on ports of its own, and waits
until ``sinfo`` shows the node idle; ``stop()`` ends the daemons by their pid files. ``env`` is the
environment under which ``sbatch``/``squeue`` talk to it (``SLURM_CONF``).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")


class SetupError(RuntimeError):
    """The cluster could not be set up on this machine (the message says why)."""


def install_slurm() -> None:
    """Install slurm-wlm and munge from Debian's packages unless present; needs root."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SetupError("slurm-wlm/munge missing and no root apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=True)
        completed = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if completed.returncode != 0:
            raise SetupError(f"apt-get install slurm-wlm munge failed: {completed.stderr[-1000:]}")


def _memory_mb() -> int:
    """This machine's memory in MB, less 1 GB for the system (what slurmd may hand out)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlurmCluster:
    """slurmctld + slurmd for one node (this host, ``cpus`` CPUs) with munge auth, all under ``root``."""

    def __init__(self, root, cpus: int = 2):
        self.root = Path(root)
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _config(self) -> str:
        host, root = socket.gethostname(), self.root
        controller, node = _free_port(), _free_port()
        return "\n".join([
            "ClusterName=singlestrip-test", f"SlurmctldHost={host}",
            f"SlurmctldPort={controller}", f"SlurmdPort={node}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={root}/munge.sock",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/backfill",
            "MpiDefault=none", "ReturnToService=2", "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
            f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
            f"NodeName={host} CPUs={self.cpus} RealMemory={_memory_mb()} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", "",
        ])

    def start(self, timeout: float = 60.0) -> "SlurmCluster":
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(self._config())
        root = self.root
        self._start(["munged", "--force", f"--socket={root}/munge.sock", f"--key-file={key}",
                     f"--log-file={root}/munged.log", f"--pid-file={root}/munged.pid",
                     f"--seed-file={root}/munged.seed"])
        self._start(["slurmctld", "-f", str(self.conf)])
        self._start(["slurmd", "-f", str(self.conf)])
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = self.run(["sinfo", "-h", "-o", "%T"], check=False).stdout.strip()
            if state == "idle":
                return self
            time.sleep(0.5)
        logs = "; ".join(f"{name}: {(root / f'{name}.log').read_text()[-500:]}" for name in DAEMONS
                         if (root / f"{name}.log").exists())
        self.stop()
        raise SetupError(f"the node did not become idle in {timeout:.0f} s (sinfo: {state!r}); {logs}")

    def _start(self, command) -> None:
        completed = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if completed.returncode != 0:
            self.stop()
            raise SetupError(f"{command[0]} did not start: {completed.stderr[-1000:]}")

    def run(self, command, *, check=True, timeout=600) -> subprocess.CompletedProcess:
        """A SLURM client command (``sbatch``, ``squeue``, ``sinfo``) against this cluster."""
        completed = subprocess.run([str(part) for part in command], env=self.env, capture_output=True, text=True,
                                   timeout=timeout)
        if check and completed.returncode != 0:
            raise SetupError(f"{command[0]} failed: {completed.stderr[-1000:]}")
        return completed

    def stop(self) -> None:
        """End the daemons by their pid files and wait for them to go."""
        for name in DAEMONS:
            pid_file = self.root / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)
