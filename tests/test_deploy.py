"""The Docker image and compose wiring, checked from the files (no Docker engine here)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path

import yaml

from gateway.config import ServerConfig

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
_SETTINGS = [line.split("#", 1)[0] for line in (ROOT / "config.yaml").read_text().splitlines()]
CONFIG_VARS = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", "\n".join(_SETTINGS)))
IMAGE_VARS = {"GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_DATA_DIR"}  # set by the Dockerfile
SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|SID|KEY")


def test_services_and_start_order() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"mongo", "redis", "gateway", "caddy"}
    assert "healthcheck" in services["mongo"]
    assert any("mongo-data:/data/db" in v for v in services["mongo"]["volumes"])
    # The gateway starts only once MongoDB answers; it creates indexes before channels.
    assert services["gateway"]["depends_on"] == {"mongo": {"condition": "service_healthy"}}
    assert services["redis"]["profiles"] == ["redis"]  # optional
    assert "443:443" in services["caddy"]["ports"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy gateway:8000" in caddyfile


def test_gateway_environment_matches_config_yaml() -> None:
    environment = COMPOSE["services"]["gateway"]["environment"]
    assert set(environment) <= CONFIG_VARS, set(environment) - CONFIG_VARS
    assert set(environment) == CONFIG_VARS - IMAGE_VARS
    assert environment["MONGODB_URI"].startswith("mongodb://mongo:27017")
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    # Every variable the gateway reads is explained in .env.example (compose sets the URI).
    assert example >= set(environment) - {"MONGODB_URI"}
    assert set(re.findall(r"\b([A-Z_]+)=", DOCKERFILE)) >= IMAGE_VARS


def test_no_secret_value_is_written_inline() -> None:
    for name, service in COMPOSE["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[-?][^}]*)?\}", str(value)), (name, key)
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if SECRET.search(key) and not line.startswith("#"):
            assert value == "", f".env.example must leave {key} empty"


def test_image_is_multi_stage_slim_non_root_and_checks_health() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert len(bases) == 2
    assert len(set(bases)) == 1  # both stages on the same base
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", bases[0])
    assert re.search(r"^USER gateway$", DOCKERFILE, re.M)
    assert "/healthz" in DOCKERFILE.split("HEALTHCHECK", 1)[1]
    assert 'ENTRYPOINT ["bot-gateway"]' in DOCKERFILE
    assert 'CMD ["serve"]' in DOCKERFILE
    assert "[test]" not in DOCKERFILE  # no test tools in the image
    assert "embedded]" not in DOCKERFILE  # production uses MongoDB
    # Dependencies from the lock with hashes, in a layer before the sources; only the
    # virtualenv reaches the final stage.
    lock = DOCKERFILE.index("--require-hashes -r /tmp/image.txt")
    assert lock < DOCKERFILE.index("COPY gateway gateway")
    assert "--no-deps --no-build-isolation ." in DOCKERFILE
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert re.findall(r"^COPY .*", final, re.M) == ["COPY --from=build /venv /venv"]
    assert "/wheels" not in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"data", ".venv", "tests"} <= set(ignored)


def _default(value: str) -> str:
    """The default of a ``${NAME:-default}`` compose value."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", value)
    assert match, value
    return match[1]


def test_mongodb_is_a_replica_set_the_gateway_names() -> None:
    mongo = COMPOSE["services"]["mongo"]
    command = mongo["command"]
    name = command[command.index("--replSet") + 1]
    check = " ".join(mongo["healthcheck"]["test"])
    assert f"rs.initiate({{_id: '{name}'" in check  # initiated by its healthcheck
    assert "isWritablePrimary" in check  # healthy once it can take writes
    uri = COMPOSE["services"]["gateway"]["environment"]["MONGODB_URI"]
    assert f"replicaSet={name}" in uri
    assert "directConnection" not in uri


def test_gateway_runs_under_an_init_and_may_finish_its_shutdown() -> None:
    gateway = COMPOSE["services"]["gateway"]
    assert gateway["init"] is True
    period = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
    assert period, gateway["stop_grace_period"]
    seconds = int(period[1])
    grace = ServerConfig().shutdown_grace_seconds
    # Requests in flight get the grace, sends under way half of it, then the clients close.
    assert seconds >= grace * 1.5 + 10


def test_trusted_proxies_cover_the_proxys_network() -> None:
    trusted = [
        ipaddress.ip_network(n.strip())
        for n in _default(COMPOSE["services"]["gateway"]["environment"]["TRUSTED_PROXIES"]).split(
            ","
        )
    ]
    [network] = COMPOSE["networks"]["default"]["ipam"]["config"]
    proxy_network = ipaddress.ip_network(network["subnet"])
    assert any(proxy_network.subnet_of(t) for t in trusted)
    assert "networks" not in COMPOSE["services"]["caddy"]  # Caddy is on that network


def _valid_for(schema: str, path: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_ci_workflow_and_dependabot_config_are_valid_for_github() -> None:
    workflow = ROOT / ".github" / "workflows" / "ci.yml"
    _valid_for("vendor.github-workflows", workflow)
    _valid_for("vendor.dependabot", ROOT / ".github" / "dependabot.yml")
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert jobs["test"]["strategy"]["matrix"]["python-version"] == ["3.11", "3.12", "3.13"]
    steps = "\n".join(str(step.get("run", "")) for job in jobs.values() for step in job["steps"])
    assert "|| true" not in steps
    assert "--require-hashes -r requirements/test.txt" in steps
    assert "bash .ci/smoke-image" in steps


def test_ci_run_and_the_readme_install_from_the_lock() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    command = (
        "pip install --require-hashes -r requirements/test.txt "
        "&& pip install --no-deps --no-build-isolation -e . && pytest"
    )
    assert command in ci_run
    assert command in readme
