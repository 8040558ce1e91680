"""What each shipped deployment file starts, read from the file itself: the command, the environment,
the mounts (read-only or not) and the user. ``tests/e2e/deployed.py`` runs what this renders.

Nothing about a deployment is restated here; only the container runtimes' own rules are:

* the image is the one ``Dockerfile`` builds (compose builds it; the installer's ``upload-gate:local``
  and the Kubernetes image are that build, as the README's steps make them);
* a container's environment is the image's ``ENV`` overlaid by the file's; its command is the file's
  ``command`` (Kubernetes: ``command`` replaces ENTRYPOINT and CMD, ``args`` replaces CMD), else the
  image's ``ENTRYPOINT`` + ``CMD``; its user the file's, else the image's ``USER``;
* files the image ``COPY``s are root's (unwritable for the image's user); directories a ``RUN`` makes
  for that user (``useradd --create-home``, ``install -d -o``) are the user's; a named volume starts as a
  copy of the image's directory it is mounted on; a bind or volume with ``:ro`` (Kubernetes:
  ``readOnly``, and every ConfigMap or Secret volume) is read-only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.dockerfile import Stage, parse

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose"
K8S = REPO / "deploy" / "k8s"

# What python:3.11-slim-bookworm (the final stage's base) itself sets: the image's ENV builds on it.
BASE_IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Image names the deployment files use for the image built from ./Dockerfile (README: `docker build -t
# upload-gate:local`; the Kubernetes manifest names where an operator pushes that build).
IMAGE_NAMES = re.compile(r"^(upload-gate|upload-gate:local|ghcr\.io/example/upload-gate:[\w.-]+)$")


@dataclass(frozen=True)
class Mount:
    """One path in the container and where its contents come from.

    kind: ``image`` (a COPY: ``source`` is the repo path), ``image-dir`` (made for the user at build
    time), ``build`` (``COPY --from`` a build stage: the installed project), ``bind`` (``source`` as
    written), ``volume`` (named; ``source`` is its name), ``configMap`` / ``secret`` (``source`` is the
    object's name, ``items`` its keys → file names), ``emptyDir``.
    """

    target: str
    kind: str
    read_only: bool
    source: str = ""
    mode: int | None = None  # image-dir: install -d -m; secret: defaultMode
    items: dict[str, str] | None = None  # configMap/secret items: key -> path (None: every key)


@dataclass(frozen=True)
class Container:
    name: str
    command: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    user: tuple[int, int]
    workdir: str
    fs_group: int | None = None
    read_only_root: bool = False
    healthcheck: list[str] | None = None


@dataclass(frozen=True)
class Deployment:
    name: str
    main: Container
    init: list[Container] = field(default_factory=list)
    replicas: int = 1
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> key -> text
    source: Path = REPO


# ---- the image --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    user: tuple[int, int]
    workdir: str
    mounts: list[Mount]  # what the image itself holds: COPYs, the build, directories made for the user
    username: str
    groupname: str
    home: str
    healthcheck: list[str] | None

    @property
    def command(self) -> list[str]:
        return self.entrypoint + self.cmd


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def _user_dirs(stage: Stage, uid: int) -> tuple[list[Mount], str, str, str]:
    """Directories a RUN makes for the image's user, and that user's name, group and home."""
    dirs: list[Mount] = []
    username = groupname = home = ""
    for inst in stage.all("RUN"):
        for command in re.split(r"\s*&&\s*", inst.args):
            words = shlex.split(command)
            if words[:1] == ["groupadd"]:
                groupname = words[-1]
            if words[:1] == ["useradd"] and words[words.index("--uid") + 1] == str(uid):
                username = words[-1]
                home = words[words.index("--home-dir") + 1]
                if "--create-home" in words:
                    dirs.append(Mount(home, "image-dir", False))
            if words[:2] == ["install", "-d"] and words[words.index("-o") + 1] == str(uid):
                mode = int(words[words.index("-m") + 1], 8) if "-m" in words else None
                dirs.append(Mount(words[-1], "image-dir", False, mode=mode))
    assert username and groupname and home, "the Dockerfile's useradd/groupadd were not recognised"
    return dirs, username, groupname, home


def image() -> Image:
    final = parse(DOCKERFILE)[1][-1]
    env = dict(BASE_IMAGE_ENV)
    for key, value in final.env().items():
        env[key] = _expand(value, env)
    uid, _, gid = final.all("USER")[-1].args.partition(":")
    user = (int(uid), int(gid or uid))
    mounts, username, groupname, home = _user_dirs(final, user[0])
    for inst in final.all("COPY"):
        *sources, target = inst.args.split()
        if sources[0].startswith("--from="):
            mounts.append(Mount(target, "build", True, sources[1]))
        else:
            (source,) = sources
            mounts.append(Mount(target, "image", True, source))
    entrypoint = final.all("ENTRYPOINT")
    checks = final.all("HEALTHCHECK")
    return Image(
        env=env,
        entrypoint=entrypoint[-1].exec_form() if entrypoint else [],
        cmd=final.all("CMD")[-1].exec_form(),
        user=user,
        workdir=final.all("WORKDIR")[-1].args,
        mounts=mounts,
        username=username,
        groupname=groupname,
        home=home,
        healthcheck=checks[-1].exec_form() if checks else None,
    )


def docker_run_line() -> list[str]:
    """The ``docker run …`` the Dockerfile's header shows, as words."""
    text, joined = "", False
    for line in DOCKERFILE.read_text().splitlines():
        body = line.removeprefix("#").strip()
        if body.startswith("docker run") or joined:
            text += " " + body.removesuffix("\\")
            joined = body.endswith("\\")
    assert text, "the Dockerfile's header shows no docker run line"
    return shlex.split(text)


def dockerfile() -> Deployment:
    """The image run as the Dockerfile's header shows: ``-e`` over its ENV, ``-v`` over its paths."""
    img = image()
    env, mounts = dict(img.env), list(img.mounts)
    words = docker_run_line()[2:]
    while words and words[0].startswith("-"):
        flag, value = words.pop(0), words.pop(0)
        if flag == "-e":
            key, _, val = value.partition("=")
            env[key] = val
        elif flag == "-v":
            source, target, *opts = value.split(":")
            kind = "bind" if source.startswith((".", "/")) else "volume"
            mounts.append(Mount(target, kind, "ro" in opts, source))
        else:
            assert flag == "-p", flag  # published ports: each test container gets its own anyway
    assert len(words) == 1 and IMAGE_NAMES.match(words[0]), words
    main = Container("gate", img.command, env, mounts, img.user, img.workdir, healthcheck=img.healthcheck)
    return Deployment("dockerfile", main, source=DOCKERFILE)


# ---- compose ----------------------------------------------------------------------------------------


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` against the ``.env`` values."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        value = dotenv.get(name, "")
        if op == ":?" and not value:
            raise AssertionError(f"compose would refuse: {arg}")
        return value if value or op != ":-" else arg

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def compose(file: str, service: str, dotenv: dict[str, str]) -> Deployment:
    path = COMPOSE / file
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    svc = spec["services"][service]
    assert "build" in svc or IMAGE_NAMES.match(svc["image"]), svc.get("image")
    if "build" in svc:
        assert (path.parent / svc["build"]["context"] / "Dockerfile").resolve() == DOCKERFILE
    img = image()
    env = dict(img.env)
    env.update({k: interpolate(str(v), dotenv) for k, v in (svc.get("environment") or {}).items()})
    command = svc.get("command") or img.command
    if isinstance(command, str):
        command = shlex.split(command)
    mounts = list(img.mounts)
    for volume in svc.get("volumes", []):
        source, target, *opts = volume.split(":")
        kind = "bind" if source.startswith((".", "/")) else "volume"
        mounts.append(Mount(target, kind, "ro" in opts, source))
    user = tuple(int(x) for x in str(svc["user"]).split(":")) if "user" in svc else img.user
    main = Container(
        service,
        list(command),
        env,
        mounts,
        (user[0], user[-1]),
        svc.get("working_dir", img.workdir),
        healthcheck=img.healthcheck,
    )
    # network_mode: host changes nothing for these tests: every address a file names is mapped anyway.
    return Deployment(f"compose:{file}", main, source=path)


def compose_service(file: str, service: str) -> dict[str, Any]:
    spec: dict[str, dict[str, dict[str, Any]]] = yaml.safe_load((COMPOSE / file).read_text())
    return spec["services"][service]


# ---- kubernetes -------------------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s_applied() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/k8s`` creates: the kustomization's resources."""
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [d for name in listed for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _k8s_container(
    spec: dict[str, Any], pod: dict[str, Any], img: Image, secrets: dict[str, dict[str, str]]
) -> Container:
    if "command" in spec:  # replaces ENTRYPOINT and CMD
        command = spec["command"] + spec.get("args", [])
    elif "args" in spec:  # replaces CMD only
        command = img.entrypoint + spec["args"]
    else:
        command = img.entrypoint + img.cmd
    env = dict(img.env)
    for var in spec.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{var['name']}: Secret {ref['name']}/{ref['key']} is required"
            continue
        env[var["name"]] = value
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = list(img.mounts)
    for vm in spec.get("volumeMounts", []):
        assert "subPath" not in vm
        vol = volumes[vm["name"]]
        if "configMap" in vol:
            src = vol["configMap"]
            items = {i["key"]: i["path"] for i in src["items"]} if "items" in src else None
            mounts.append(
                Mount(vm["mountPath"], "configMap", True, src["name"], src.get("defaultMode"), items)
            )
        elif "secret" in vol:
            src = vol["secret"]
            items = {i["key"]: i["path"] for i in src["items"]} if "items" in src else None
            mounts.append(
                Mount(vm["mountPath"], "secret", True, src["secretName"], src.get("defaultMode"), items)
            )
        elif "emptyDir" in vol:
            mounts.append(Mount(vm["mountPath"], "emptyDir", bool(vm.get("readOnly")), vm["name"]))
        else:
            raise AssertionError(f"volume kind of {vm['name']} is not rendered here")
    ctx = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
    user = (int(ctx.get("runAsUser", img.user[0])), int(ctx.get("runAsGroup", img.user[1])))
    return Container(
        spec["name"],
        list(command),
        env,
        mounts,
        user,
        spec.get("workingDir", img.workdir),
        fs_group=pod.get("securityContext", {}).get("fsGroup"),
        read_only_root=bool(spec.get("securityContext", {}).get("readOnlyRootFilesystem")),
    )


def k8s(secrets: dict[str, dict[str, str]]) -> Deployment:
    """The Deployment of ``kubectl apply -k deploy/k8s``; ``secrets`` are the ones the operator made
    (name → key → value), as secret.yaml tells them to."""
    applied = k8s_applied()
    (deployment,) = [d for d in applied if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    img = image()
    assert IMAGE_NAMES.match(pod["containers"][0]["image"])
    (main,) = [_k8s_container(c, pod, img, secrets) for c in pod["containers"]]
    init = [_k8s_container(c, pod, img, secrets) for c in pod.get("initContainers", [])]
    config_maps = {d["metadata"]["name"]: dict(d["data"]) for d in applied if d["kind"] == "ConfigMap"}
    return Deployment(
        "k8s",
        main,
        init,
        replicas=int(deployment["spec"]["replicas"]),
        config_maps=config_maps,
        source=K8S / "deployment.yaml",
    )
