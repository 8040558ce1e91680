"""deploy/k8s: schema-valid offline (kubernetes-validate ships the schemas) and wired the way the gate
needs: probes on its health endpoints, a hot-reloadable policy that the gate accepts, secrets from a
Secret, an HPA on CPU, Prometheus annotations that point at the metrics port."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gate.cli import build_parser
from gate.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}
SECRET_ENV = {f.metadata["env"] for f in fields(Settings) if f.metadata["secret"]} | {"DATABASE_URL"}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]


def container() -> dict[str, Any]:
    gate: dict[str, Any]
    (gate,) = find("Deployment")["spec"]["template"]["spec"]["containers"]
    return gate


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_schema_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert listed == present


def test_probes_hit_the_health_endpoints_on_the_metrics_port() -> None:
    gate = container()
    ports = {p["name"]: p["containerPort"] for p in gate["ports"]}
    env = {e["name"]: e.get("value") for e in gate["env"]}
    assert env["GATE_METRICS_LISTEN"].endswith(f":{ports['metrics']}")
    assert env["GATE_LISTEN"].endswith(f":{ports['http']}")
    assert gate["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert gate["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    requests, limits = gate["resources"]["requests"], gate["resources"]["limits"]
    assert {"cpu", "memory"} <= requests.keys() and {"cpu", "memory"} <= limits.keys()


def test_prometheus_annotations_point_at_metrics() -> None:
    template = find("Deployment")["spec"]["template"]
    notes = template["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert (
        int(notes["prometheus.io/port"])
        == {p["name"]: p["containerPort"] for p in container()["ports"]}["metrics"]
    )
    assert notes["prometheus.io/path"] == "/metrics"


def test_only_known_settings_and_secrets_from_a_secret() -> None:
    gate = container()
    for var in gate["env"]:
        assert var["name"] in SETTINGS_ENV or var["name"] == "DATABASE_URL", var["name"]
        if var["name"] in SECRET_ENV:
            assert "value" not in var, f"{var['name']} must come from a Secret"
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in find("Secret", ref["name"])["stringData"]


def test_every_replica_mounts_the_one_keyring_secret_read_only() -> None:
    """Evidence sealed by one replica is reviewed on another: the keyring is a Secret (documented in
    secret.yaml), never made per pod; a missing Secret keeps pods from starting."""
    gate = container()
    env = {e["name"]: e.get("value") for e in gate["env"]}
    keys = Path(env["GATE_EVIDENCE_KEYS_FILE"])
    [mount] = [m for m in gate["volumeMounts"] if m["mountPath"] == str(keys.parent)]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in find("Deployment")["spec"]["template"]["spec"]["volumes"]}
    source = volumes[mount["name"]]["secret"]
    assert not source.get("optional") and source["defaultMode"] & 0o077 in (0, 0o040)
    assert keys.name in find("Secret", source["secretName"])["stringData"]
    # Not the image's command (which creates a keyring when there is none): the gate itself.
    assert gate["command"] == ["upload-gate", "serve"]


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = find("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == find("Deployment")["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


def test_policy_configmap_is_mounted_for_hot_reload_and_the_gate_accepts_it(tmp_path: Path) -> None:
    gate = container()
    volumes = {v["name"]: v for v in find("Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in gate["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in gate["env"]}
    files: dict[str, Path] = {}
    for name in ("policy", "banks"):
        assert "subPath" not in mounts[name], "subPath mounts are never updated: no hot reload"
        configmap = find("ConfigMap", volumes[name]["configMap"]["name"])
        folder = tmp_path / name
        folder.mkdir()
        for key, text in configmap["data"].items():
            (folder / key).write_text(text)
        files[name] = folder
    policy_file = Path(env["GATE_POLICY"])
    assert policy_file.parent == Path(mounts["policy"]["mountPath"])
    assert env["GATE_BANKS_DIR"] == mounts["banks"]["mountPath"]
    assert check_policy(str(files["policy"] / policy_file.name), "--banks-dir", str(files["banks"])) == 0


def check_policy(*argv: str) -> int:
    """``upload-gate check-policy ARGV…`` as the command line parses and runs it."""
    args = build_parser().parse_args(["check-policy", *argv])
    result: int = args.func(args)
    return result
