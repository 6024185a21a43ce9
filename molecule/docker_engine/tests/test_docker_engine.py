"""docker_engine: pinned and held docker.io, merged daemon.json, running engine, the SDK for modules."""
import json


def test_docker_io_is_pinned_and_held(host):
    pkg = host.package("docker.io")
    assert pkg.is_installed and pkg.version.startswith("20.10.24+dfsg1")
    assert "docker.io" in host.check_output("apt-mark showhold").split()


def test_daemon_json_merged_keeping_keys_set_by_others(host):
    conf = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert conf["registry-mirrors"] == ["https://mirror.example.internal"]   # someone else's
    assert conf["log-opts"] == {"labels": "team", "max-size": "50m", "max-file": "5"}  # merged key by key
    assert conf["log-driver"] == "json-file" and conf["live-restore"] is True
    assert conf["default-ulimits"]["nofile"]["Soft"] == 65536
    assert host.file("/etc/docker/daemon.json").mode == 0o644


def test_engine_enabled_running_and_using_the_config(host):
    svc = host.service("docker")
    assert svc.is_enabled and svc.is_running
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file" and info["LiveRestoreEnabled"] is True
    assert "https://mirror.example.internal/" in info["RegistryConfig"]["Mirrors"]


def test_docker_sdk_for_the_collection_modules(host):
    out = host.check_output("/opt/ragops/venv/bin/python -c 'import docker, pynvml; print(docker.__version__)'")
    assert out.strip() == "7.2.0"
    assert host.run("/opt/ragops/venv/bin/python -c 'import docker; docker.from_env().ping()'").rc == 0
