"""infra/ agrees with the code: every manifest parses, has the right apiVersion/kind and passes the
Kubernetes schema, and the fields the code relies on (image, ports, env names, CLI commands and
stages, bucket, Dagster module) match what imagintalk reads. No cluster, network or docker needed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import typer.main
import yaml
from botocore.credentials import EnvProvider

from imagintalk.config import PARAMS_ENV
from imagintalk.settings import (
    DAGSTER_PORT,
    ENV_MLFLOW_TRACKING_URI,
    ENV_RAY_ADDRESS,
    ENV_S3_ENDPOINT,
    ENV_STORAGE_ROOT,
    IMAGE,
    MLFLOW_PORT,
    SERVE_PORT,
    Settings,
)
from pipelines.cli import app

INFRA = Path(__file__).resolve().parents[1] / "infra"
# Plain Kubernetes objects live here; infra/dagster holds Helm values and Dagster's own configs.
MANIFEST_DIRS = ("k8s", "mlflow", "storage", "serve")
K8S_VERSION = "1.30.0"  # oldest Kubernetes release the manifests promise to fit
API_VERSIONS = {
    "RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "Deployment": "apps/v1",
    "StatefulSet": "apps/v1", "Job": "batch/v1", "Service": "v1", "Secret": "v1",
    "ConfigMap": "v1", "PersistentVolumeClaim": "v1",
}
FILE_KINDS = {
    "k8s/env.yaml": ["ConfigMap"],
    "k8s/raycluster.yaml": ["RayCluster"],
    "k8s/rayjob-train.yaml": ["RayJob"] * 6,  # one per training stage (imagintalk/train/graph.py)
    "mlflow/mlflow.yaml": ["Deployment", "Service"],
    "mlflow/postgres.yaml": ["ConfigMap", "Service", "StatefulSet"],
    "mlflow/secret.example.yaml": ["Secret"],
    "storage/minio.yaml": ["PersistentVolumeClaim", "Deployment", "Service"],
    "storage/bucket-job.yaml": ["Job"],
    "storage/secret.example.yaml": ["Secret"],
    "serve/serve.yaml": ["Deployment", "Service"],
}
OFFICIAL_IMAGES = {"postgres", "quay.io/minio/minio"}
PLACEHOLDER = "CHANGE_ME"
HEALTH_PATH = "/healthz"  # the serve health endpoint the brief fixes for `imagintalk serve`
# DESIGN.md section 5, used only while the code's own graph (imagintalk.train.stages) is absent.
DESIGN_NEEDS = {"expression": set(), "vocoder": set(), "unit_bert": set(), "lip_aligner": set(),
                "error_detector": {"lip_aligner", "unit_bert"}, "style_dit": {"error_detector", "expression"}}
OUR_IMAGE = f"{IMAGE}:{version('imagintalk')}"
CLI = typer.main.get_command(app)


@dataclass(frozen=True)
class Doc:
    path: str  # relative to infra/
    body: dict

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]


def load_docs() -> list[Doc]:
    docs = []
    for folder in MANIFEST_DIRS:
        for path in sorted((INFRA / folder).glob("*.yaml")):
            rel = str(path.relative_to(INFRA))
            docs += [Doc(rel, body) for body in yaml.safe_load_all(path.read_text()) if body]
    return docs


DOCS = load_docs()


def one(kind: str, name: str) -> dict:
    found = [d.body for d in DOCS if d.kind == kind and d.name == name]
    assert len(found) == 1, f"expected one {kind}/{name} in infra/, found {len(found)}"
    return found[0]


def pod_templates(doc: Doc) -> Iterator[tuple[str, dict]]:
    """(where, pod template) for every pod a manifest makes, including those inside Ray CRs."""
    spec = doc.body.get("spec", {})
    if doc.kind in ("Deployment", "StatefulSet", "Job"):
        yield f"{doc.path}:{doc.name}", spec["template"]
    elif doc.kind == "RayCluster":
        yield f"{doc.path}:{doc.name}:head", spec["headGroupSpec"]["template"]
        for group in spec["workerGroupSpecs"]:
            yield f"{doc.path}:{doc.name}:{group['groupName']}", group["template"]
    elif doc.kind == "RayJob" and "submitterPodTemplate" in spec:
        yield f"{doc.path}:{doc.name}:submitter", spec["submitterPodTemplate"]


def containers() -> Iterator[tuple[str, dict]]:
    for doc in DOCS:
        for where, template in pod_templates(doc):
            for c in template["spec"]["containers"] + template["spec"].get("initContainers", []):
                yield f"{where}:{c['name']}", c


def ours() -> list[tuple[str, dict]]:
    return [(w, c) for w, c in containers() if c["image"] == OUR_IMAGE]


def env_names(env: list[dict], env_from: list[dict]) -> set[str]:
    """Names a container sees: its env entries plus the keys of every ConfigMap/Secret it loads."""
    names = {e["name"] for e in env}
    for source in env_from:
        if "configMapRef" in source:
            names |= set(one("ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            names |= set(one("Secret", source["secretRef"]["name"])["stringData"])
    return names


def container_env(c: dict) -> dict[str, str]:
    """Literal values a container sees (ConfigMap data and env values; secrets are not literal)."""
    values: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            values |= one("ConfigMap", source["configMapRef"]["name"])["data"]
    values |= {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    return values


def names_the_code_reads() -> set[str]:
    """Settings' aliases, the params path, and the credential names botocore (under s3fs) reads."""
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    return aliases | {PARAMS_ENV, EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY}


def cli_call(argv: list[str]):
    """Parse argv as `imagintalk ...` with the real typer app; an unknown command/option raises."""
    assert argv[0] == "imagintalk", argv
    command = CLI.commands.get(argv[1])
    assert command is not None, f"no CLI command {argv[1]!r}; have {sorted(CLI.commands)}"
    return command.make_context(argv[1], list(argv[2:]))


def vocabulary(command: str, param: str) -> set[str]:
    """The `a | b | c` choices a CLI parameter's help text declares (the code's own list)."""
    (p,) = [p for p in CLI.commands[command].params if p.name == param]
    return {w.strip() for w in re.sub(r"^[^:]*:", "", p.help).rstrip(".").split("|")}


def stage_needs() -> dict[str, set[str]]:
    """Which registered stages each training stage builds on: the trainer's own table."""
    if importlib.util.find_spec("imagintalk.train.stages") is None:
        return DESIGN_NEEDS
    from imagintalk.train.stages import STAGES

    return {name: set(spec.needs.values()) for name, spec in STAGES.items()}


def port_of(c: dict, ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    (port,) = [p["containerPort"] for p in c["ports"] if p["name"] == ref]
    return port


def storage_bucket() -> str:
    return urlparse(one("ConfigMap", "imagintalk-env")["data"][ENV_STORAGE_ROOT]).netloc


# ---------------------------------------------------------------- every manifest, generically


def test_every_yaml_under_infra_parses_as_yaml():
    files = sorted(INFRA.rglob("*.yaml")) + sorted(INFRA.rglob("*.yml"))
    assert len(files) >= len(FILE_KINDS) + 3
    for path in files:
        assert [d for d in yaml.safe_load_all(path.read_text()) if d], f"{path}: empty"


def test_each_manifest_file_holds_the_expected_kinds_with_their_api_versions():
    by_file: dict[str, list[str]] = {}
    for doc in DOCS:
        by_file.setdefault(doc.path, []).append(doc.kind)
        assert doc.body["apiVersion"] == API_VERSIONS[doc.kind], f"{doc.path}: {doc.kind}"
    assert by_file == FILE_KINDS


def test_core_objects_pass_the_strict_kubernetes_schema():
    for doc in DOCS:
        if not doc.body["apiVersion"].startswith("ray.io/"):
            kubernetes_validate.validate(doc.body, K8S_VERSION, strict=True)


def test_pod_templates_inside_ray_resources_pass_the_strict_kubernetes_schema():
    ray_templates = [(w, t) for d in DOCS if d.kind.startswith("Ray") for w, t in pod_templates(d)]
    # head, cpu, gpu; one submitter per RayJob
    assert len(ray_templates) == 3 + len(FILE_KINDS["k8s/rayjob-train.yaml"])
    for where, template in ray_templates:
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                   "template": template}
        try:
            kubernetes_validate.validate(wrapped, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message}")


def test_a_typo_in_a_pod_spec_is_caught_by_the_schema_check():
    text = yaml.safe_dump(one("Deployment", "imagintalk-serve"))
    bad = yaml.safe_load(text.replace("containerPort:", "containerport:"))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_every_container_runs_our_versioned_image_or_a_pinned_official_one():
    for where, c in containers():
        repo, _, tag = c["image"].rpartition(":")
        if repo == IMAGE:
            assert tag == version("imagintalk"), f"{where}: tag {tag} is not the package version"
        else:
            assert repo in OFFICIAL_IMAGES, f"{where}: unexpected image {c['image']}"
            assert tag and tag != "latest", f"{where}: unpinned image {c['image']}"


def test_every_env_name_our_containers_get_is_one_the_code_reads():
    readable = names_the_code_reads()
    for where, c in ours():
        consumed_by_args = set(re.findall(r"\$\((\w+)\)", " ".join(c.get("command", []) + c.get("args", []))))
        unknown = env_names(c.get("env", []), c.get("envFrom", [])) - readable - consumed_by_args
        assert not unknown, f"{where}: sets {sorted(unknown)}, which nothing reads"


def test_every_workload_of_ours_gets_the_cluster_settings_and_credentials():
    needed = {ENV_MLFLOW_TRACKING_URI, ENV_STORAGE_ROOT, ENV_S3_ENDPOINT,
              EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY}
    workloads = [(w, c) for w, c in ours() if not w.endswith(":submitter:ray-job-submitter")]
    assert len(workloads) == 6  # ray head, cpu, gpu workers; mlflow; bucket job; serve
    for where, c in workloads:
        missing = needed - env_names(c.get("env", []), c.get("envFrom", []))
        assert not missing, f"{where}: missing {sorted(missing)}"
        assert ENV_RAY_ADDRESS not in env_names(c.get("env", []), c.get("envFrom", [])), where


def test_secret_references_resolve_and_templates_hold_only_placeholders():
    for doc in DOCS:
        if doc.kind == "Secret":
            assert "data" not in doc.body, f"{doc.path}: base64 data in a template"
            assert set(doc.body["stringData"].values()) == {PLACEHOLDER}, doc.path
    for where, c in containers():
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in one("Secret", ref["name"])["stringData"], f"{where}: {ref}"


def test_every_service_selects_pods_and_targets_a_declared_port():
    for doc in DOCS:
        if doc.kind != "Service":
            continue
        selector = doc.body["spec"]["selector"]
        pods = [(w, t) for d in DOCS for w, t in pod_templates(d)
                if selector.items() <= t.get("metadata", {}).get("labels", {}).items()]
        assert pods, f"{doc.path}: Service {doc.name} selects no pod"
        for where, t in pods:
            declared = {p.get("name"): p["containerPort"] for c in t["spec"]["containers"]
                        for p in c.get("ports", [])}
            for port in doc.body["spec"]["ports"]:
                target = port["targetPort"]
                assert target in declared or target in declared.values(), f"{where}: {target}"


# ---------------------------------------------------------------- settings values and ports


def test_tracking_uri_and_s3_endpoint_point_at_the_mlflow_and_minio_services():
    env = one("ConfigMap", "imagintalk-env")["data"]
    tracking, endpoint = urlparse(env[ENV_MLFLOW_TRACKING_URI]), urlparse(env[ENV_S3_ENDPOINT])
    assert tracking.port == MLFLOW_PORT
    assert tracking.port in [p["port"] for p in one("Service", tracking.hostname)["spec"]["ports"]]
    assert endpoint.port in [p["port"] for p in one("Service", endpoint.hostname)["spec"]["ports"]]
    assert urlparse(env[ENV_STORAGE_ROOT]).scheme == "s3"


def test_mlflow_server_command_parses_with_mlflow_and_listens_on_the_settings_port():
    from mlflow.cli import cli as mlflow_cli
    from mlflow.server.security_utils import is_allowed_host_header

    (c,) = one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["mlflow"] and c["args"][0] == "server"
    params = mlflow_cli.commands["server"].make_context("server", c["args"][1:]).params
    assert params["port"] == MLFLOW_PORT == port_of(c, "http") and params["host"] == "0.0.0.0"
    backend = urlparse(params["backend_store_uri"])
    assert backend.scheme == "postgresql" and backend.hostname == "imagintalk-postgres"
    postgres = one("StatefulSet", "imagintalk-postgres")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "POSTGRES_DB", "value": backend.path.lstrip("/")} in postgres["env"]
    assert urlparse(params["artifacts_destination"]).netloc == storage_bucket()
    # MLflow 3 refuses unknown Host headers: the in-cluster tracking URI must be accepted.
    tracking = urlparse(one("ConfigMap", "imagintalk-env")["data"][ENV_MLFLOW_TRACKING_URI])
    assert is_allowed_host_header(params["allowed_hosts"].split(","), tracking.netloc)


def test_serve_runs_the_cli_serve_command_on_the_settings_port_with_health_probes():
    spec = one("Deployment", "imagintalk-serve")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    params = cli_call(c["command"] + c["args"]).params
    assert params["port"] == SERVE_PORT == port_of(c, "http") and params["host"] == "0.0.0.0"
    assert [p["port"] for p in one("Service", "imagintalk-serve")["spec"]["ports"]] == [SERVE_PORT]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == HEALTH_PATH
        assert port_of(c, c[probe]["httpGet"]["port"]) == SERVE_PORT
    served = importlib.util.find_spec("imagintalk.serve.app")
    if served is not None and hasattr(module := importlib.import_module(served.name), "HEALTH_PATH"):
        assert module.HEALTH_PATH == HEALTH_PATH


def test_the_bucket_is_the_same_everywhere_it_is_named():
    bucket = storage_bucket()
    tf = (INFRA / "storage/bucket.tf").read_text()
    terraform = re.search(r'variable "bucket" \{[^}]*default\s*=\s*"([^"]+)"', tf)
    assert terraform and terraform.group(1) == bucket
    for doc in DOCS:
        if doc.kind == "RayJob":
            shards = cli_call(shlex.split(doc.body["spec"]["entrypoint"])).params["shards"]
            assert urlparse(shards).netloc == bucket, doc.name


# ---------------------------------------------------------------- Ray


def test_raycluster_has_a_cpu_head_a_cpu_group_and_a_gpu_group_on_gpu_nodes():
    import ray

    spec = one("RayCluster", "imagintalk")["spec"]
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    limits = {name: g["template"]["spec"]["containers"][0]["resources"]["limits"] for name, g in groups.items()}
    gpu = [g for name, g in groups.items() if "nvidia.com/gpu" in limits[name]]
    cpu = [g for g in groups.values() if g not in gpu]
    assert len(gpu) == 1 and len(cpu) == 1
    pod = gpu[0]["template"]["spec"]
    assert pod["nodeSelector"], "GPU group needs a nodeSelector for GPU nodes"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    for g in groups.values():
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]


def test_rayjobs_train_every_stage_once_through_the_cli_on_our_cluster_in_dependency_order():
    stages, sizes, needs = vocabulary("train", "stage"), vocabulary("train", "config"), stage_needs()
    assert stages == set(needs), "the CLI's and the trainer's stage lists differ"
    waves = {}
    for doc in DOCS:
        if doc.kind != "RayJob":
            continue
        assert doc.body["spec"]["clusterSelector"] == {"ray.io/cluster": "imagintalk"}
        argv = shlex.split(doc.body["spec"]["entrypoint"])
        params = cli_call(argv).params
        assert argv[1] == "train" and params["stage"] in stages and params["config"] in sizes
        labels = doc.body["metadata"]["labels"]
        assert labels["imagintalk.io/stage"] == params["stage"]
        assert params["stage"] not in waves, f"{params['stage']} trained twice"
        waves[params["stage"]] = int(labels["imagintalk.io/wave"])
    assert set(waves) == stages, "every stage needs its RayJob"
    for stage, wave in waves.items():
        assert all(waves[dep] < wave for dep in needs[stage]), f"{stage} runs before what it needs"
    assert min(waves.values()) == 1


def test_entrypoint_check_refuses_unknown_commands_and_options():
    with pytest.raises(Exception, match="No such option: --shard"):
        cli_call(shlex.split("imagintalk train vocoder --shard s3://imagintalk/shards"))
    with pytest.raises(AssertionError):
        cli_call(["imagintalk", "fit", "vocoder"])


# ---------------------------------------------------------------- storage


def test_bucket_job_creates_the_storage_root_bucket_once_on_an_s3_endpoint():
    from moto.server import ThreadedMotoServer

    (c,) = one("Job", "imagintalk-bucket")["spec"]["template"]["spec"]["containers"]
    assert c["command"][0] == "python"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = base | container_env(c) | {ENV_S3_ENDPOINT: f"http://{host}:{port}",
                                          EnvProvider.ACCESS_KEY: "k", EnvProvider.SECRET_KEY: "s"}
        runs = [subprocess.run([sys.executable, *c["command"][1:]], env=env, capture_output=True,
                               text=True, timeout=120) for _ in range(2)]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:]
        assert "created" in runs[0].stdout and "already exists" in runs[1].stdout
        bad = subprocess.run([sys.executable, *c["command"][1:]], env=env | {ENV_STORAGE_ROOT: "/data"},
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1 and "not an s3:// URL" in bad.stderr
    finally:
        server.stop()


# ---------------------------------------------------------------- Dagster


def dagster_file(name: str) -> dict:
    return yaml.safe_load((INFRA / "dagster" / name).read_text())


def workspace_module() -> str:
    (entry,) = dagster_file("workspace.yaml")["load_from"]
    return entry["python_module"]["module_name"]


def test_dagster_workspace_loads_dagster_project_definitions_which_exposes_defs():
    from dagster import Definitions
    from dagster._core.workspace.config_schema import ensure_workspace_config

    ensure_workspace_config(dagster_file("workspace.yaml"), str(INFRA / "dagster/workspace.yaml"))
    assert workspace_module() == "dagster_project.definitions"
    if importlib.util.find_spec(workspace_module()) is not None:
        assert isinstance(importlib.import_module(workspace_module()).defs, Definitions)


def test_dagster_values_run_our_image_on_the_workspace_module_with_our_settings():
    values = dagster_file("values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"] == IMAGE
    assert deployment["image"]["tag"] == version("imagintalk")
    assert deployment["dagsterApiGrpcArgs"] == ["-m", workspace_module()]
    assert values["dagsterWebserver"]["service"]["port"] == DAGSTER_PORT
    names = env_names(deployment["env"], [{"configMapRef": r} for r in deployment["envConfigMaps"]]
                      + [{"secretRef": r} for r in deployment["envSecrets"]])
    assert names <= names_the_code_reads()
    assert {ENV_MLFLOW_TRACKING_URI, ENV_STORAGE_ROOT, ENV_S3_ENDPOINT, ENV_RAY_ADDRESS} <= names
    ray_address = urlparse({e["name"]: e["value"] for e in deployment["env"]}[ENV_RAY_ADDRESS])
    head = one("RayCluster", "imagintalk")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert ray_address.scheme == "ray" and ray_address.hostname == "imagintalk-head-svc"
    assert ray_address.port == port_of(head, "client")


def test_dagster_storage_and_logs_use_the_shared_postgres_secret_and_bucket():
    values, instance = dagster_file("values.yaml"), dagster_file("dagster.yaml")
    pg = values["postgresql"]
    assert not pg["enabled"] and not values["generatePostgresqlPasswordSecret"]
    assert pg["service"]["port"] in [p["port"] for p in one("Service", pg["postgresqlHost"])["spec"]["ports"]]
    assert "postgresql-password" in one("Secret", values["global"]["postgresqlSecretName"])["stringData"]
    init = one("ConfigMap", "imagintalk-postgres-init")["data"]
    assert any(f"CREATE DATABASE {pg['postgresqlDatabase']};" in sql for sql in init.values())
    db = instance["storage"]["postgres"]["postgres_db"]
    assert (db["hostname"], db["username"], db["db_name"]) == (
        pg["postgresqlHost"], pg["postgresqlUsername"], pg["postgresqlDatabase"])
    s3_logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert s3_logs["bucket"] == instance["compute_logs"]["config"]["bucket"] == storage_bucket()
    assert s3_logs["endpointUrl"] == {"env": ENV_S3_ENDPOINT}


def test_dagster_instance_yaml_passes_dagsters_own_config_validation(tmp_path):
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(INFRA / "dagster"))
    assert {"storage", "run_launcher", "compute_logs"} <= set(config)
    (tmp_path / "dagster.yaml").write_text(
        (INFRA / "dagster/dagster.yaml").read_text().replace("db_name:", "db_nmae:"))
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


# ---------------------------------------------------------------- README


def test_readme_names_every_setting_and_only_files_that_exist():
    readme = (INFRA / "README.md").read_text()
    for name in (ENV_RAY_ADDRESS, ENV_MLFLOW_TRACKING_URI, ENV_STORAGE_ROOT, ENV_S3_ENDPOINT,
                 EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY):
        assert name in readme, name
    mentioned = {m.rstrip("./") for m in re.findall(r"infra/[\w./-]+", readme)}
    assert len(mentioned) >= 8
    for rel in mentioned:
        assert (INFRA.parent / rel).exists(), f"README mentions missing {rel}"
