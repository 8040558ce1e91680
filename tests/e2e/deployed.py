"""Runs what ``tests/deploy/launch.py`` renders from a deployment file, on this machine, as closely as a
process can stand in for a container: Docker cannot run here.

* **Filesystem.** Every container path the deployment mounts (and every path the image holds) maps to a
  directory under the run's root; environment values naming such paths are mapped with it. The image's
  installed project is this checkout's virtualenv (PATH: ``/opt/upload-gate/bin`` → ``.venv/bin``);
  system directories (``/usr/bin``, ``/tmp``) are this host's.
* **Read-only.** A read-only bind cannot be made here; instead read-only mounts (``:ro``, ``readOnly``,
  ConfigMaps, Secrets) and files the image ``COPY``s are owned by root and not writable by anyone else,
  and the gate runs as the deployment's user (uid 10001), so a write there fails as it would in the
  container. (Run as a normal user, the files are made unwritable for that user instead.)
* **Kubernetes volumes** are laid out as the kubelet does (``..data`` symlink swapped atomically on
  update; Secret files root-owned, group ``fsGroup``, mode ``defaultMode | 0440``).
* **Network.** Each container has its own ports: a listen address as written (``0.0.0.0:3100``) becomes
  a free loopback port, and the services it names (``pds:3000``, ``postgres:5432``) become the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.deploy.launch import REPO, Container, Deployment, Image, Mount
from tests.e2e.procs import LOOPBACK, Proc, free_port

IMAGE_VENV = Path(__file__).parent / ".image-venv"  # git-ignored, rebuilt when pyproject.toml changes
LISTEN_SETTINGS = ("GATE_LISTEN", "GATE_METRICS_LISTEN", "GATE_ADMIN_LISTEN")
HOST_DIRS = ("/tmp",)  # stand-ins: this host's own (writable) directory serves


def image_venv() -> Path:
    """The image's ``/opt/upload-gate``: a virtualenv with the project installed, as the build stage
    makes it (``python -m venv`` + ``pip install``), here editable (this checkout's code) and from a
    Python 3.11 every user can run (the suite's own interpreter may sit in root's home)."""
    python = shutil.which("python3.11", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.fail("the deployment tests need a system python3.11 (apt-get install python3.11-venv)")
    stamp = IMAGE_VENV / ".installed"
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + python.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return IMAGE_VENV
    shutil.rmtree(IMAGE_VENV, ignore_errors=True)
    pip = [str(IMAGE_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    for argv in ([python, "-m", "venv", str(IMAGE_VENV)], [*pip, "-e", str(REPO)]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"building the image's virtualenv failed: {argv}\n{done.stdout}{done.stderr}")
    stamp.write_text(digest)
    return IMAGE_VENV


def run_as(img: Image) -> tuple[int, int] | None:
    """The uid/gid the gate runs as: the image's user (created here as the Dockerfile creates it, when
    running as root and it is missing: the embedded Postgres needs a passwd entry). None when not root:
    then the gate runs as the current user."""
    if os.geteuid() != 0:
        return None
    uid, gid = img.user
    try:
        grp.getgrgid(gid)
    except KeyError:
        subprocess.run(["groupadd", "--system", "--gid", str(gid), img.groupname], check=True)
    try:
        pwd.getpwuid(uid)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--uid", str(uid), "--gid", str(gid), "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", img.username],
            check=True,
        )  # fmt: skip
    return img.user


def make_private_root() -> Path:
    """A run root outside pytest's 0700 tree, traversable by the gate's user."""
    root = Path(tempfile.mkdtemp(prefix="upload-gate-deploy-"))
    root.chmod(0o755)
    return root


def read_only_tree(path: Path) -> None:
    """What a read-only mount is to the gate's user: owned by root, writable by nobody else (run as a
    normal user: not writable by that user either)."""
    root = os.geteuid() == 0
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if p.is_symlink():
            continue
        if root:
            os.chown(p, 0, 0)
        p.chmod((0o755 if root else 0o555) if p.is_dir() else (0o644 if root else 0o444))


@contextlib.contextmanager
def operator_writes(folder: Path) -> Iterator[None]:
    """The operator (root, or here the test's own user) changing files in a read-only mount's source."""
    mode = folder.stat().st_mode
    folder.chmod(mode | 0o200)
    try:
        yield
    finally:
        folder.chmod(mode)


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``path`` (symlinks followed): (inode, mtime_ns, bytes) — to prove nothing wrote."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = {}
    for f in files:
        st = f.stat()
        out[str(f)] = (st.st_ino, st.st_mtime_ns, f.read_bytes())
    return out


class KubeletVolume:
    """A ConfigMap or Secret volume as the kubelet writes it: ``..<stamp>/`` with the files, ``..data``
    pointing at it, and ``<name> -> ..data/<name>`` links; an update swaps ``..data`` atomically."""

    def __init__(self, path: Path, mode: int, gid: int | None) -> None:
        self.path, self.mode, self.gid = path, mode, gid
        path.mkdir(parents=True)
        path.chmod(0o755)
        self._n = 0

    def write(self, files: dict[str, str]) -> None:
        self._n += 1
        stamp = self.path / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self._n}"
        stamp.mkdir()
        for name, text in files.items():
            f = stamp / name
            f.write_text(text)
            if os.geteuid() == 0:
                os.chown(f, 0, self.gid if self.gid is not None else 0)
            f.chmod(self.mode)
        stamp.chmod(0o755)
        tmp = self.path / "..data_tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(stamp.name)
        os.replace(tmp, self.path / "..data")
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for old in self.path.glob("..2*"):
            if old != stamp:
                shutil.rmtree(old)


@dataclass
class World:
    """What outlives one container: the operator's files and objects, volumes, the services."""

    root: Path
    image: Image
    user: tuple[int, int] | None
    binds: dict[str, Path] = field(default_factory=dict)  # bind source as written -> host path
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # "pds:3000" -> "127.0.0.1:4711"
    _volumes: dict[str, Path] = field(default_factory=dict)
    _kubelet: dict[tuple[str, str, int, int | None], KubeletVolume] = field(default_factory=dict)

    def owned(self, path: Path, mode: int = 0o700) -> Path:
        """A directory the gate's user owns (a volume it writes)."""
        path.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(path, *self.user)
        path.chmod(mode)
        return path

    def volume(self, name: str, initial: Mount | None) -> Path:
        """A named volume; new ones start as the image's directory there (owner and mode), as Docker's do."""
        if name not in self._volumes:
            path = self.root / "volumes" / name
            if initial is not None and initial.kind == "image-dir":
                self.owned(path, initial.mode or 0o700)
            else:
                path.mkdir(parents=True)
            self._volumes[name] = path
        return self._volumes[name]

    def kubelet(self, mount: Mount, fs_group: int | None) -> Path:
        source = self.secrets if mount.kind == "secret" else self.config_maps
        mode = mount.mode if mount.mode is not None else 0o644
        if fs_group is not None:
            mode |= 0o440  # the kubelet's SetVolumeOwnership: group-readable for fsGroup
        key = (mount.kind, mount.source, mode, fs_group)
        if key not in self._kubelet:
            vol = KubeletVolume(self.root / "kubelet" / f"{mount.kind}-{mount.source}", mode, fs_group)
            vol.write(self._items(mount, source[mount.source]))
            self._kubelet[key] = vol
        return self._kubelet[key].path

    def update(self, kind: str, name: str, data: dict[str, str]) -> None:
        """``kubectl apply`` of a changed ConfigMap/Secret: every pod's volume swaps to the new files."""
        (self.secrets if kind == "secret" else self.config_maps)[name] = data
        for (k, n, _, _), vol in self._kubelet.items():
            if (k, n) == (kind, name):
                vol.write(data)

    @staticmethod
    def _items(mount: Mount, data: dict[str, str]) -> dict[str, str]:
        if mount.items is None:
            return dict(data)
        return {path: data[key] for key, path in mount.items.items()}


@dataclass
class Sandbox:
    """One container's view: container path -> host path, its environment and ports."""

    container: Container
    paths: list[tuple[str, Path]]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]  # listen setting -> port here

    def host(self, container_path: str) -> Path:
        for target, host in self.paths:
            if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
                return host / container_path[len(target) :].lstrip("/")
        raise KeyError(container_path)

    def url(self, setting: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[setting]}"


def _translate(value: str, sandbox_paths: list[tuple[str, Path]], addresses: dict[str, str]) -> str:
    for written, actual in addresses.items():
        value = re.sub(rf"(^|[/@]){re.escape(written)}(?=$|[/?])", rf"\g<1>{actual}", value)
    if value.startswith("/"):
        for target, host in sandbox_paths:
            if value == target or value.startswith(target.rstrip("/") + "/"):
                return str(host / value[len(target) :].lstrip("/"))
    return value


def materialize(world: World, container: Container, pod: Path) -> Sandbox:
    """Lay ``container``'s filesystem out under ``pod`` and compute its environment."""
    pod.mkdir(parents=True, exist_ok=True)
    pod.chmod(0o755)
    effective: dict[str, Mount] = {}
    image_dirs = {m.target: m for m in world.image.mounts if m.kind == "image-dir"}
    for m in container.mounts:
        effective[m.target] = m  # a mount hides what the image has at its path
    paths: list[tuple[str, Path]] = []
    for target, m in sorted(effective.items()):
        if target in HOST_DIRS:
            continue
        if m.kind == "build":
            assert target == "/opt/upload-gate", target  # the virtualenv the build stage made
            host = image_venv()
        elif m.kind == "image":
            host = pod / "image" / target.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            src = REPO / m.source
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, host)
            read_only_tree(host)
        elif m.kind == "image-dir":
            host = pod / "image" / target.lstrip("/")
            if container.read_only_root:
                host.mkdir(parents=True)
                read_only_tree(host)
            else:
                world.owned(host, m.mode or 0o700)
        elif m.kind == "bind":
            host = world.binds[m.source]
            if m.read_only:
                read_only_tree(host)
        elif m.kind == "volume":
            host = world.volume(m.source, image_dirs.get(target))
        elif m.kind in ("configMap", "secret"):
            host = world.kubelet(m, container.fs_group)
        elif m.kind == "emptyDir":
            host = pod / "emptydir" / m.source
            host.mkdir(parents=True)
            host.chmod(0o777)
        else:
            raise AssertionError(m.kind)
        paths.append((target, host))
    # Longest targets first: a path under a nested mount maps through that mount.
    paths.sort(key=lambda p: len(p[0]), reverse=True)
    ports: dict[str, int] = {}
    addresses = dict(world.services)
    for setting in LISTEN_SETTINGS:
        written = container.env.get(setting)
        if written:
            ports[setting] = free_port()
            addresses[written] = f"{LOOPBACK}:{ports[setting]}"
    env: dict[str, str] = {}
    for key, value in container.env.items():
        if key == "PATH":
            env[key] = ":".join(_translate(part, paths, {}) for part in value.split(":"))
        else:
            env[key] = _translate(value, paths, addresses)
    # Docker and the kubelet set HOME from the image's passwd entry for the user.
    env.setdefault("HOME", _translate(world.image.home, paths, {}))
    cwd = Path(_translate(container.workdir, paths, {}))
    return Sandbox(container, paths, env, cwd, ports)


class Running:
    """A started container."""

    def __init__(self, sandbox: Sandbox, proc: Proc) -> None:
        self.sandbox = sandbox
        self.proc = proc

    @property
    def url(self) -> str:
        return self.sandbox.url("GATE_LISTEN")

    @property
    def admin_url(self) -> str:
        setting = "GATE_ADMIN_LISTEN" if "GATE_ADMIN_LISTEN" in self.sandbox.ports else "GATE_METRICS_LISTEN"
        return self.sandbox.url(setting)

    def stop(self) -> None:
        self.proc.stop(timeout=40)


def _user(world: World, container: Container) -> tuple[int, int, list[int]] | None:
    if world.user is None:
        return None
    extra = [container.fs_group] if container.fs_group is not None else []
    return container.user[0], container.user[1], extra


def start(world: World, sandbox: Sandbox, log: Path) -> Running:
    proc = Proc(
        sandbox.container.name,
        sandbox.container.command,
        log,
        env=sandbox.env,
        cwd=sandbox.cwd,
        user=_user(world, sandbox.container),
    )
    return Running(sandbox, proc)


def execute(
    world: World, sandbox: Sandbox, argv: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``docker exec`` / ``kubectl exec``: a command in the same container (same env, user, mounts)."""
    uid, gid, extra = _user(world, sandbox.container) or (None, None, None)  # None: Popen's own defaults
    return subprocess.run(
        argv,
        env=sandbox.env,
        cwd=sandbox.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=uid,
        group=gid,
        extra_groups=extra,
    )


def wait_ready(running: Running, timeout: float = 120) -> None:
    running.proc.wait_http(running.sandbox.url("GATE_METRICS_LISTEN") + "/readyz", timeout=timeout)


def policy_in_force(running: Running, version: str, timeout: float = 60) -> None:
    """Wait until the gate reports ``version`` as the policy in force (after an operator's edit)."""

    def in_force() -> bool:
        text = httpx.get(running.sandbox.url("GATE_METRICS_LISTEN") + "/metrics", timeout=5).text
        return any(
            line.startswith("upload_gate_build_info{")
            and f'policy_version="{version}"' in line
            and line.endswith(" 1.0")
            for line in text.splitlines()
        )

    running.proc.wait_until(in_force, timeout)


# ---- a Postgres reachable over TCP, as a compose service or a cluster's database is --------------------


class TcpToUnix:
    """127.0.0.1:<port> forwarded to a Postgres Unix socket (the suite's Postgres listens on no TCP port;
    a deployment names its database by host and port)."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        socket_dir = query["host"][0] if "host" in query else parts.hostname or ""
        port = query.get("port", [str(parts.port or 5432)])[0]
        self.socket = f"{socket_dir}/.s.PGSQL.{port}"
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, LOOPBACK, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()
            self._writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def tcp_postgres(dsn: str) -> Iterator[TcpToUnix]:
    proxy = TcpToUnix(dsn)
    try:
        yield proxy
    finally:
        proxy.close()


def deployment_root(deployment: Deployment) -> str:
    return re.sub(r"[^a-z0-9]+", "-", deployment.name.lower())
