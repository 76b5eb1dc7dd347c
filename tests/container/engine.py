"""A private Docker engine for the container tests, with a base image built here (no registry).

- ``install_tools()``: Debian's ``docker.io`` and ``debootstrap`` through apt-get when missing.
- ``DockerEngine``: ``dockerd`` with its data-root, exec-root, socket and client config in one
  scratch folder (``scratch_folder()``, a tmpfs when memory allows); it creates no bridge and
  touches no firewall rule (builds use the host network, runs use ``--network none``).
- ``build_base_image()``: Debian bookworm (minbase + python3, venv, CA certificates) by debootstrap,
  imported as an image: it stands in for the Dockerfile's public ``python`` base.
- ``build_secrets()``: the host's pip setup handed to ``docker build`` as BuildKit secrets (a
  pip.conf pointing at the host's local wheel folders, served over HTTP, and the host's CA bundle),
  so that pip in the build picks the CPU torch wheel and trusts the same proxy as the host.

Everything needs root; ``SetupError`` says why a step could not be done.
"""

import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Docker's default PATH: without it in the image, `ENV PATH=...:$PATH` in a Dockerfile loses /usr/bin.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STARTUP_TIMEOUT_S = 90
TMPFS_SIZE_GB = 10  # what a build and its runs write, with room to spare
TMPFS_MIN_FREE_GB = 14


class SetupError(RuntimeError):
    """The engine or an image could not be set up on this machine (the message says why)."""


def _run(command, *, check=True, timeout=None, input=None, stdin=None, env=None) -> subprocess.CompletedProcess:
    """Run ``command`` (text output captured) in its own process group, killed whole on timeout.

    SetupError with the end of its output when it fails (if ``check``) or times out.
    """
    command = [str(part) for part in command]
    process = subprocess.Popen(command, stdin=subprocess.PIPE if input is not None else stdin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise SetupError(f"{' '.join(command)} timed out after {timeout} s") from None
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check and completed.returncode != 0:
        tail = (stdout + stderr).strip()[-3000:]
        raise SetupError(f"{' '.join(command)} failed ({completed.returncode}):\n{tail}")
    return completed


def install_tools() -> None:
    """Install dockerd and debootstrap from Debian's packages unless present; needs root."""
    if shutil.which("dockerd") and shutil.which("debootstrap"):
        return
    if os.geteuid() != 0:
        raise SetupError("dockerd/debootstrap missing and not root: cannot install docker.io, debootstrap")
    if not shutil.which("apt-get"):
        raise SetupError("dockerd/debootstrap missing and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env, timeout=600)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "docker.io", "debootstrap"],
         env=env, timeout=900)


class DockerEngine:
    """``dockerd`` confined to ``root`` (a short path: it holds unix sockets); ``stop()`` ends it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self._process = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "1",
                    "DOCKER_CONFIG": str(self.root / "client")}

    @property
    def client(self) -> str:
        """The client shipped with this dockerd (docker.io puts dockerd in sbin/, docker in bin/): a
        newer client found first on PATH would insist on the buildx plugin for BuildKit builds.
        Looked up when used, as dockerd may be installed after this engine was made."""
        dockerd = shutil.which("dockerd")
        sibling = Path(dockerd).resolve().parent.parent / "bin" / "docker" if dockerd else None
        return str(sibling) if sibling and sibling.exists() else (shutil.which("docker") or "docker")

    def start(self) -> "DockerEngine":
        if os.geteuid() != 0:
            raise SetupError("starting dockerd needs root")
        command = [
            "dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
            "--host", f"unix://{self.socket}", "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
        ]
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            info = subprocess.run([self.client, "info"], env=self.env, capture_output=True, check=False)
            if info.returncode == 0:
                return self
            time.sleep(1)
        log_tail = self.log.read_text(errors="replace")[-3000:]
        self.stop()
        raise SetupError(f"dockerd did not start within {STARTUP_TIMEOUT_S} s:\n{log_tail}")

    def docker(self, *args, **kwargs) -> subprocess.CompletedProcess:
        """Run the docker client against this engine (keywords as for ``_run``)."""
        return _run([self.client, *args], env=self.env, **kwargs)

    def stop(self) -> None:
        """Stop dockerd (and the containerd it started), then unmount everything at or under ``root``."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for mount_point in reversed(_mounts_under(self.root)):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, in mount order."""
    root = str(root.resolve())
    with open("/proc/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return [point for point in points if point == root or point.startswith(root + "/")]


def build_base_image(engine: DockerEngine, tag: str, scratch: Path) -> str:
    """Debian bookworm minbase with ``BASE_PACKAGES``, imported into ``engine`` as ``tag``."""
    rootfs = Path(scratch) / "rootfs"
    # dpkg's fsync after every file makes debootstrap several times slower; the image is rebuilt
    # from scratch if anything goes wrong, so durability is not needed while it is made.
    unsafe_io = rootfs / "etc/dpkg/dpkg.cfg.d/unsafe-io"
    unsafe_io.parent.mkdir(parents=True)
    unsafe_io.write_text("force-unsafe-io\n")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE,
          str(rootfs), DEBIAN_MIRROR], timeout=3600)
    unsafe_io.unlink()
    for leftovers in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
        for path in leftovers.glob("*"):
            if path.is_file():
                path.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        engine.docker("import", "--change", f"ENV PATH={BASE_PATH}", "--change", "ENV LANG=C.UTF-8",
                      "-", tag, stdin=tar.stdout, timeout=1800)
    finally:
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(rootfs)
    return tag


def host_pip_settings() -> tuple[list[Path], Path | None]:
    """The host pip's local find-links folders and CA bundle (``pip config list``, PIP_* env)."""
    listing = _run([sys.executable, "-m", "pip", "config", "list"]).stdout
    values = {}
    for line in listing.splitlines():
        match = re.fullmatch(r"[^.]*\.([a-z-]+)='(.*)'", line.strip())
        if match:
            values.setdefault(match.group(1), []).extend(match.group(2).split())
    values.setdefault("find-links", []).extend(os.environ.get("PIP_FIND_LINKS", "").split())
    folders = []
    for link in values["find-links"]:
        folder = Path(link.removeprefix("file://"))
        if "://" not in link.removeprefix("file://") and folder.is_dir() and folder not in folders:
            folders.append(folder)
    certs = values.get("cert", []) + [os.environ.get("PIP_CERT", "")]
    ca_bundle = next((Path(cert) for cert in certs if cert and Path(cert).is_file()), None)
    return folders, ca_bundle


@contextmanager
def serve_folders(folders):
    """Serve each folder over HTTP on 127.0.0.1; yields their URLs (for pip's find-links)."""
    servers = []
    try:
        for folder in folders:
            handler = functools.partial(_QuietHandler, directory=str(folder))
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        yield [f"http://127.0.0.1:{server.server_address[1]}/" for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature of the base class
        pass


def build_secrets(find_links_urls, ca_bundle, folder: Path) -> list[str]:
    """``docker build`` arguments handing pip its find-links and CA bundle as BuildKit secrets."""
    lines = ["[global]"]
    arguments = []
    if find_links_urls:
        lines += [f"find-links = {' '.join(find_links_urls)}", "trusted-host = 127.0.0.1"]
    if ca_bundle:
        lines.append("cert = /run/secrets/ca-bundle")
        arguments += ["--secret", f"id=ca-bundle,src={ca_bundle}"]
    pip_conf = Path(folder) / "pip.conf"
    pip_conf.write_text("\n".join(lines) + "\n")
    return arguments + ["--secret", f"id=pip.conf,src={pip_conf}"]


def scratch_folder() -> Path:
    """A fresh folder with a short path (dockerd's unix sockets must stay under 108 characters).

    It is a tmpfs when memory allows: the engine writes and later deletes several GB in tens of
    thousands of files, which on disks mounted with ``discard`` takes many minutes to delete.
    ``DockerEngine.stop()`` unmounts it.
    """
    folder = Path(tempfile.mkdtemp(prefix="singlestrip-docker-", dir="/tmp"))
    if os.geteuid() == 0 and _available_memory_gb() >= TMPFS_MIN_FREE_GB:
        _run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_GB}g,mode=0700", "tmpfs", folder])
    return folder


def _available_memory_gb() -> float:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) / 2**20
