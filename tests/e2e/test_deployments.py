"""Every shipped deployment, started exactly as its file says, and used as a PDS host would use it.

For the Dockerfile (run as its header shows), compose.yaml's and installer.yaml's ``gate`` service and
the Kubernetes Deployment: the command, environment, user and mounts come from the file itself
(``tests/deploy/launch.py``) and run here as ``tests/e2e/deployed.py`` explains (Docker cannot run on
this machine). The gate must start with the shipped policy and banks, judge uploads from the real
``atproto`` SDK in front of the real PDS, and after the operator's edit (a bank of their own and a
quarantine rule, in the read-only files the deployment mounts) hold an upload with its evidence sealed
under the key the deployment provisioned, open it for review — after a restart too, with the same token
and reveal link, and across Kubernetes replicas with one replica's form posted to the other — and
release it: the retry passes everywhere (the allowlist is the gate's own, the banks stay read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from atproto_client.exceptions import BadRequestError

from gate.policy.load import policy_version
from gate.store.embedded import EmbeddedPostgres
from tests.deploy import launch
from tests.e2e import deployed
from tests.e2e.endpoints import Endpoint, User, new_user
from tests.e2e.images import png, sha256
from tests.e2e.pds_server import Pds
from tests.fakes.hma import fake_hma_in_thread
from tests.support.postgres import pg_dsn, server_dir  # noqa: F401 (pg_dsn is a fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

# The operator's edit: a bank of their own and a rule that holds its uploads for review.
OPERATOR_RULE = """
[[rules]]
name = "operator-review"
source = "local"
banks = ["review"]
signal_types = ["sha256"]
action = "quarantine"
"""


def shipped_quarantine_error(policy_text: str) -> str:
    return str(tomllib.loads(policy_text)["responses"]["quarantine"]["error"])


@dataclass
class Host:
    """One deployment on this machine: the world it lives in and its running containers."""

    deployment: launch.Deployment
    world: deployed.World
    root: Path
    pods: list[deployed.Running] = field(default_factory=list)
    starts: int = 0

    def start_pod(self) -> deployed.Running:
        """One container (or pod: its init containers first) as the deployment file starts it."""
        self.starts += 1
        pod = self.root / f"pod{self.starts}"
        for i, init in enumerate(self.deployment.init):
            sandbox = deployed.materialize(self.world, init, pod)
            done = deployed.execute(self.world, sandbox, init.command)
            assert done.returncode == 0, f"init container {i}: {done.stdout}{done.stderr}"
        sandbox = deployed.materialize(self.world, self.deployment.main, pod)
        running = deployed.start(self.world, sandbox, self.root / f"pod{self.starts}.log")
        try:
            deployed.wait_ready(running)
        except BaseException:
            running.stop()
            raise
        self.pods.append(running)
        return running

    def stop_pod(self, running: deployed.Running) -> None:
        running.stop()
        self.pods.remove(running)

    def stop(self) -> None:
        for running in list(self.pods):
            self.stop_pod(running)

    # ---- the operator ---------------------------------------------------------------------------

    def policy_host_path(self, running: deployed.Running) -> Path:
        return running.sandbox.host(self.deployment.main.env["GATE_POLICY"])

    def banks_host_path(self, running: deployed.Running) -> Path:
        return running.sandbox.host(self.deployment.main.env["GATE_BANKS_DIR"])

    def edit(self, running: deployed.Running, held: bytes) -> str:
        """Add the operator's bank and rule where the deployment reads them; returns the new policy
        version. ConfigMaps change by ``kubectl apply`` (the kubelet swaps the files); mounted files
        are replaced as an editor saves them (the gate only ever reads them)."""
        policy_path = self.policy_host_path(running)
        policy = policy_path.read_text() + OPERATOR_RULE
        row = f"sha256,{sha256(held)},operator: held for review\n"
        configmaps = {m.target: m.source for m in self.deployment.main.mounts if m.kind == "configMap"}
        env = self.deployment.main.env
        banks_cm = configmaps.get(env["GATE_BANKS_DIR"])
        if banks_cm is not None:
            policy_cm = configmaps[str(Path(env["GATE_POLICY"]).parent)]
            self.world.update("configMap", banks_cm, {**self.world.config_maps[banks_cm], "review.csv": row})
            key = Path(env["GATE_POLICY"]).name
            self.world.update("configMap", policy_cm, {**self.world.config_maps[policy_cm], key: policy})
        else:
            replace_file(self.banks_host_path(running) / "review.csv", row)
            replace_file(policy_path, policy)
        return policy_version(policy.encode())


def replace_file(path: Path, text: str) -> None:
    """As an editor saves: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.new")
    with deployed.operator_writes(path.parent):
        tmp.write_text(text)
        deployed.read_only_tree(tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def host_for(deployment: launch.Deployment, root: Path | None = None, **world: Any) -> Iterator[Host]:
    root = root or deployed.make_private_root()
    img = launch.image()
    host = Host(deployment, deployed.World(root, img, deployed.run_as(img), **world), root)
    try:
        yield host
    finally:
        host.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---- what every deployment must do ------------------------------------------------------------------


def admin(running: deployed.Running, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, running.admin_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
    )


def add_token(host: Host, running: deployed.Running, name: str) -> str:
    """``docker exec`` / ``kubectl exec … upload-gate admin token add``, as the README says."""
    done = deployed.execute(
        host.world, running.sandbox, ["upload-gate", "admin", "token", "add", name, "--role", "admin"]
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def read_only_state(host: Host, running: deployed.Running) -> dict[str, Any]:
    """Every read-only path the gate can see, as bytes and inodes."""
    out: dict[str, Any] = {}
    for target, path in running.sandbox.paths:
        mounts = [m for m in host.deployment.main.mounts if m.target == target]
        if mounts and mounts[-1].read_only and path != deployed.IMAGE_VENV:
            out[target] = deployed.snapshot(path)
    return out


def keyring_id(path: Path) -> str:
    return str(json.loads(path.read_text())["active"])


def judge_and_hold(host: Host, running: deployed.Running, pds: Pds, seed: int) -> tuple[bytes, str, User]:
    """Start-up with the shipped files, a clean upload forwarded, the operator's edit, a held upload.
    Returns the held bytes, an admin token and the uploader."""
    user = new_user(Endpoint("gate", running.url, True))
    try:
        clean = png(seed)
        user.post_image(clean)
        assert sha256(clean) in pds.blob_files().values()

        held = png(seed + 1)
        deployed.policy_in_force(running, host.edit(running, held))
        before = pds.blob_files()
        with pytest.raises(BadRequestError) as refused:
            user.post_image(held)
        assert refused.value.response is not None
        expected = shipped_quarantine_error(host.policy_host_path(running).read_text())
        assert refused.value.response.content.error == expected
        assert pds.stored_since(before) == {}
    except BaseException:
        user.client.request.close()
        raise
    return held, add_token(host, running, "alice"), user


def review_opens(running: deployed.Running, token: str, held: bytes) -> dict[str, Any]:
    """The held item is in the queue; its blurred preview and its revealed original open."""
    r = admin(running, token, "GET", "/admin/api/items?state=held")
    assert r.status_code == 200, r.text
    item: dict[str, Any]
    [item] = [i for i in r.json()["items"] if i["sha256"] == sha256(held)]
    preview = admin(running, token, "GET", f"/admin/api/items/{item['decision_id']}/preview")
    assert preview.status_code == 200 and preview.headers["Content-Type"] == "image/jpeg", preview.text
    reveal = admin(running, token, "POST", f"/admin/api/items/{item['decision_id']}/reveal")
    assert reveal.status_code == 200, reveal.text
    original = admin(running, token, "GET", reveal.json()["url"])
    assert original.status_code == 200 and original.content == held
    return item


def keyring_of(host: Host, running: deployed.Running) -> Path:
    return running.sandbox.host(host.deployment.main.env["GATE_EVIDENCE_KEYS_FILE"])


def check_keyring_file(host: Host, running: deployed.Running) -> None:
    keys = keyring_of(host, running)
    st = keys.stat()
    if host.world.user is not None and not any(m.kind == "secret" for m in host.deployment.main.mounts):
        # Made by `upload-gate keys init --if-missing` in the image's command, as the image's user.
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (host.world.user[0], 0o600)


def exercise(host: Host, running: deployed.Running, pds: Pds, seed: int) -> deployed.Running:
    """What every deployment must do, from its first start to a recreated container; returns the
    container running at the end."""
    held, token, user = judge_and_hold(host, running, pds, seed)
    frozen = read_only_state(host, running)  # (the operator's edit is theirs; from here, nobody writes)
    item = review_opens(running, token, held)
    check_keyring_file(host, running)
    assert read_only_state(host, running) == frozen
    link = admin(running, token, "POST", f"/admin/api/items/{item['decision_id']}/reveal").json()["url"]

    # The container is recreated (`docker compose up -d`, a new pod): the keyring in its volume (or
    # Secret) is the same, so the held evidence still opens; the token made before still works and a
    # reveal link made a moment ago still opens (both live in Postgres, not in the container).
    active = keyring_id(keyring_of(host, running))
    host.stop_pod(running)
    running = host.start_pod()
    frozen = read_only_state(host, running)
    assert keyring_id(keyring_of(host, running)) == active
    review_opens(running, token, held)
    assert admin(running, token, "GET", link).content == held

    # A false positive: released (the banks are read-only: the allowlist is the gate's own), and the
    # uploader's retry is forwarded — through every replica.
    others = [pod for pod in host.pods if pod is not running]
    if others:
        release_across_replicas(running, others[0], token, item["decision_id"], held)
    else:
        r = admin(running, token, "POST", f"/admin/api/items/{item['decision_id']}/release")
        assert r.status_code == 200 and r.json()["item"]["state"] == "released", r.text
    for pod in host.pods:
        retry(user, pod, held)
    assert sha256(held) in pds.blob_files().values()
    assert read_only_state(host, running) == frozen
    user.client.request.close()
    return running


def release_across_replicas(
    first: deployed.Running, second: deployed.Running, token: str, item_id: str, held: bytes
) -> None:
    """Behind a Service a reviewer's requests land on any replica: a reveal link made by one opens on
    another, and a form served by one (its CSRF token) is accepted when posted to another."""
    link = admin(first, token, "POST", f"/admin/api/items/{item_id}/reveal").json()["url"]
    assert admin(second, token, "GET", link).content == held
    login = httpx.post(first.admin_url + "/review/login", data={"token": token}, timeout=30)
    assert login.status_code == 303 and login.headers["Location"] == "/review", login.text
    cookie = {"Cookie": login.headers["Set-Cookie"].split(";", 1)[0]}
    page = httpx.get(f"{first.admin_url}/review/item/{item_id}", headers=cookie, timeout=30)
    assert page.status_code == 200, page.text
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert match is not None, page.text
    posted = httpx.post(
        f"{second.admin_url}/review/item/{item_id}/release",
        data={"csrf": match.group(1)},
        headers=cookie,
        timeout=30,
    )
    assert posted.status_code == 303 and posted.headers["Location"].endswith("done=released"), posted.text


def retry(user: User, running: deployed.Running, held: bytes, timeout: float = 30) -> None:
    """The uploader tries again until the gate forwards it (other replicas re-read the allowlist every
    GATE_RELOAD_INTERVAL)."""
    user.client.update_base_url(running.url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            user.post_image(held)
            return
        except BadRequestError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ---- the deployments ----------------------------------------------------------------------------------


def test_the_image_runs_as_its_dockerfile_shows(pds: Pds) -> None:
    deployment = launch.dockerfile()
    with host_for(deployment, services={"pds:3000": f"127.0.0.1:{pds.port}"}) as host:
        running = exercise(host, host.start_pod(), pds, seed=101)
        # The image's HEALTHCHECK, run inside the container, passes.
        check = deployment.main.healthcheck
        assert check is not None
        assert deployed.execute(host.world, running.sandbox, check).returncode == 0


async def create_role_and_database(address: str, user: str, password: str, database: str) -> None:
    """What the postgres image does on first start with POSTGRES_USER/PASSWORD/DB."""
    host, _, port = address.rpartition(":")
    conn = await asyncpg.connect(host=host, port=int(port), user="postgres", database="postgres")
    try:
        await conn.execute(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'")
        await conn.execute(f"CREATE DATABASE {database} OWNER {user}")
    finally:
        await conn.close()


def test_compose_runs_the_gate_as_written(pds: Pds) -> None:
    dotenv = {
        "PDS_HOSTNAME": "pds.example.com",
        "PDS_ADMIN_EMAIL": "admin@example.com",
        "GATE_DB_PASSWORD": "gate-db-" + os.urandom(6).hex(),
        "HMA_DB_PASSWORD": "hma-db-" + os.urandom(6).hex(),
        "PDS_ADMIN_PASSWORD": pds.admin_password,
    }
    postgres_env = launch.compose_service("compose.yaml", "postgres")["environment"]
    with contextlib.ExitStack() as stack, server_dir() as pg_path:
        server = EmbeddedPostgres(pg_path)
        proxy = stack.enter_context(deployed.tcp_postgres(server.start()))
        stack.callback(server.stop)
        db_address = f"127.0.0.1:{proxy.port}"
        asyncio.run(
            create_role_and_database(
                db_address,
                postgres_env["POSTGRES_USER"],
                launch.interpolate(postgres_env["POSTGRES_PASSWORD"], dotenv),
                postgres_env["POSTGRES_DB"],
            )
        )
        hma = stack.enter_context(fake_hma_in_thread())
        deployment = launch.compose("compose.yaml", "gate", dotenv)
        # The bind mounts' sources: the repo's own files (relative to the compose file), copied so the
        # operator's edit below does not touch the checkout.
        root = deployed.make_private_root()
        binds = {}
        for m in deployment.main.mounts:
            if m.kind == "bind":
                source = (launch.COMPOSE / m.source).resolve()
                binds[m.source] = copy = root / "checkout" / source.name
                copy.parent.mkdir(exist_ok=True)
                (shutil.copytree if source.is_dir() else shutil.copyfile)(source, copy)
        services = {
            "pds:3000": f"127.0.0.1:{pds.port}",
            "hma:5100": hma.url.removeprefix("http://"),
            "postgres:5432": db_address,
        }
        with host_for(deployment, root, services=services, binds=binds) as host:
            exercise(host, host.start_pod(), pds, seed=111)


def test_installer_overlay_runs_the_gate_as_written(pds: Pds) -> None:
    deployment = launch.compose("installer.yaml", "gate", {})
    root = deployed.make_private_root()
    img = launch.image()
    user = deployed.run_as(img)
    # The README's step 2: the policy and banks copied to /pds/upload-gate, the data and keys
    # directories made for uid 10001.
    binds: dict[str, Path] = {}
    for m in deployment.main.mounts:
        if m.kind != "bind":
            continue
        path = root / "pds" / m.source.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if m.read_only:
            source = launch.REPO / "config" / Path(m.source).name
            (shutil.copytree if source.is_dir() else shutil.copyfile)(source, path)
        else:
            path.mkdir()
            if user is not None:
                os.chown(path, *user)
        binds[m.source] = path
    services = {"127.0.0.1:3000": f"127.0.0.1:{pds.port}"}
    with host_for(deployment, root, services=services, binds=binds) as host:
        exercise(host, host.start_pod(), pds, seed=121)


def keys_secret(tmp: Path) -> dict[str, str]:
    """secret.yaml's generator: ``upload-gate keys init ./evidence-keys.json``, then the file's text."""
    path = tmp / "evidence-keys.json"
    done = subprocess.run(
        [str(deployed.image_venv() / "bin" / "upload-gate"), "keys", "init", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATE_")},
    )
    assert done.returncode == 0, done.stderr
    return {"evidence-keys.json": path.read_text()}


async def fresh_database(server_dsn: str, address: str) -> str:
    """The operator's database for the cluster (its DSN goes into the upload-gate Secret)."""
    name = "k8s_" + os.urandom(4).hex()
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"postgresql://postgres@{address}/{name}"


def test_kubernetes_replicas_run_as_the_manifests_say(pds: Pds, pg_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    with deployed.tcp_postgres(pg_dsn) as proxy:
        database_url = asyncio.run(fresh_database(pg_dsn, f"127.0.0.1:{proxy.port}"))
        secrets = {
            "upload-gate": {"database-url": database_url},
            "upload-gate-evidence-keys": keys_secret(tmp_path),
        }
        deployment = launch.k8s(secrets)
        with host_for(
            deployment,
            services={"pds:3000": f"127.0.0.1:{pds.port}"},
            secrets=secrets,
            config_maps=deployment.config_maps,
        ) as host:
            pods = [host.start_pod() for _ in range(deployment.replicas)]
            assert len(pods) == 2
            first = exercise(host, pods[0], pds, seed=131)
            # The keyring is the Secret's (0440, root:fsGroup), the same file in every replica.
            made = json.loads(secrets["upload-gate-evidence-keys"]["evidence-keys.json"])["active"]
            assert {keyring_id(keyring_of(host, pod)) for pod in (first, pods[1])} == {made}
