# -*- coding: utf-8 -*-
"""gpu_container against the real dockerd of a simulated node (with the simulator's container hook),
through ansible-playbook and the docker connection: the quartet per option (check reports a change,
apply changes, apply again reports none, check again reports none), recreation rules, adoption of a
hand-started container, and each error with its message. No mocked engine."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "rag-embedding-server:1.0.0"
VENV_PY = "/opt/ragops/venv/bin/python"


def play(node, ansible, tmp_path, steps, python=VENV_PY):
    """Run gpu_container tasks in order; returns each task's result. A failed task's result carries the
    module's `msg` (the tasks set failed_when: false so that every step runs)."""
    out = tmp_path / "results.json"
    tasks = []
    for i, step in enumerate(steps):
        args = dict(step["args"])
        task = {"name": "step %d" % i, "ragops.gpu_stack.gpu_container": args, "register": "r%d" % i,
                "failed_when": False, "vars": {"ansible_python_interpreter": python}}
        if step.get("check"):
            task["check_mode"] = True
        if step.get("diff"):
            task["diff"] = True
        tasks.append(task)
    tasks.append({"name": "collect", "ansible.builtin.copy": {
        "content": "{{ [%s] | to_json }}" % ", ".join("r%d" % i for i in range(len(steps))),
        "dest": str(out), "mode": "0644"}, "delegate_to": "localhost"})
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump([{"name": "gpu_container", "hosts": node.name, "gather_facts": False,
                                   "tasks": tasks}], sort_keys=False))
    run = ansible(pb, node.inventory)
    assert run.rc == 0, run
    return json.loads(out.read_text())


def base(name, **extra):
    args = {"name": name, "image": IMAGE, "healthcheck": {"interval": 5, "start_period": 1},
            "env": {"HF_HUB_OFFLINE": "1"}}
    args.update(extra)
    return args


def quartet(node, ansible, tmp_path, name, before, after):
    r = play(node, ansible, tmp_path, [
        {"args": dict(before, state="absent")},
        {"args": before},
        {"args": after, "check": True, "diff": True},
        {"args": after},
        {"args": after},
        {"args": after, "check": True},
    ])
    for res in r:
        assert not res.get("failed"), res
    return r[2:]


def uuid_of(node, index):
    return node.sh("nvidia-smi -i %d --query-gpu=uuid --format=csv,noheader" % index).stdout.strip()


@pytest.fixture(scope="module")
def node(converged_node):
    return converged_node


OPTIONS = [
    ("gpus", {}, lambda n: {"gpus": [{"index": 6, "uuid": uuid_of(n, 6)}]}),
    ("env", {}, lambda n: {"env": {"HF_HUB_OFFLINE": "1", "BATCH_SIZE": "32"}}),
    ("ports", {}, lambda n: {"ports": ["18201:8000"]}),
    ("volumes", {}, lambda n: {"volumes": ["/opt/models/hf:/models:ro"]}),
    ("shm", {}, lambda n: {"shm_size": "1g"}),
    ("healthcheck", {}, lambda n: {"healthcheck": {"interval": 7, "timeout": 3, "retries": 5, "start_period": 2}}),
    ("cpus", {}, lambda n: {"cpus": 1.5}),  # a service in its CPU mode (failover)
    ("memory", {}, lambda n: {"memory": "256m"}),
]


@pytest.mark.parametrize("option,before,change", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_quartet(node, ansible, tmp_path, option, before, change):
    name = "t-quartet-%s" % option
    b = base(name, **before)
    a = dict(b, **change(node))
    check, apply, again, check_again = quartet(node, ansible, tmp_path, name, b, a)
    assert (check["changed"], apply["changed"], again["changed"], check_again["changed"]) == (True, True, False, False)
    assert check["actions"] == ["recreate"] and again["actions"] == []
    assert check["diff"]["before"] != check["diff"]["after"]
    field = {"shm": "shm_size"}.get(option, option)
    assert field in check["changes"]
    node.sh("docker rm -f %s" % name)


def test_gpu_request_by_uuid_is_pinned_and_canonical(node, ansible, tmp_path):
    uuids = [uuid_of(node, 6), uuid_of(node, 7)]
    r = play(node, ansible, tmp_path, [
        {"args": base("t-pin", gpus=[uuids[1], uuids[0]])},
        {"args": base("t-pin", gpus=[uuids[0], uuids[1]])},  # order does not matter
    ])
    assert r[0]["changed"] and not r[1]["changed"]
    assert node.inspect("t-pin")["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == sorted(uuids)
    node.sh("docker rm -f t-pin")


def test_recreated_when_the_gpus_change_and_only_then(node, ansible, tmp_path):
    g6, g7 = uuid_of(node, 6), uuid_of(node, 7)
    play(node, ansible, tmp_path, [{"args": base("t-recreate", gpus=[g6])}])
    first = node.inspect("t-recreate")["Id"]
    r = play(node, ansible, tmp_path, [
        {"args": base("t-recreate", gpus=[g6])},                               # nothing
        {"args": base("t-recreate", gpus=[g6], restart_policy="always")},      # in place
    ])
    assert (r[0]["changed"], r[1]["actions"]) == (False, ["update"])
    assert node.inspect("t-recreate")["Id"] == first
    r = play(node, ansible, tmp_path, [{"args": base("t-recreate", gpus=[g7], restart_policy="always")}])
    assert r[0]["actions"] == ["recreate"] and r[0]["changes"] == ["gpus"]
    assert node.inspect("t-recreate")["Id"] != first
    assert node.inspect("t-recreate")["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] == [g7]
    node.sh("docker rm -f t-recreate")


def started_as_before(node, name, flags=""):
    """`docker run` of IMAGE with gpu_container's default options and its managed-by and image-id
    labels, as a release before the hardening options made its containers; returns the container ID."""
    image_id = node.sh("docker image inspect -f '{{.Id}}' %s" % IMAGE).stdout.strip()
    node.sh("docker rm -f %s >/dev/null 2>&1 || true" % name)
    node.sh("docker run -d --name %s %s -e HF_HUB_OFFLINE=1 --restart unless-stopped --security-opt no-new-privileges "
            "--log-opt max-size=50m --log-opt max-file=5 --health-interval 30s --health-timeout 10s "
            "--health-retries 3 --health-start-period 60s "
            "--label io.ragops.gpu-stack.managed-by=ragops.gpu_stack.gpu_container "
            "--label io.ragops.gpu-stack.image-id=%s %s" % (name, flags, image_id, IMAGE))
    return node.inspect(name)["Id"]


def test_equivalent_hand_started_container_is_adopted(node, ansible, tmp_path):
    """Started by hand with --gpus device=1 (an index): equal to the same GPU's UUID, so adopted."""
    g1 = uuid_of(node, 1)
    started = started_as_before(node, "t-adopt", "--gpus '\"device=1\"' -p 127.0.0.1:18202:8000")
    r = play(node, ansible, tmp_path, [{"args": {"name": "t-adopt", "image": IMAGE, "env": {"HF_HUB_OFFLINE": "1"},
                                                 "ports": ["18202:8000"], "gpus": [{"index": 1, "uuid": g1}]}}])
    assert r[0]["changed"] is False and r[0]["actions"] == [], r[0]
    assert node.inspect("t-adopt")["Id"] == started
    node.sh("docker rm -f t-adopt")


def test_a_container_made_before_hardening_runs_on_until_harden_recreates_it(node, ansible, tmp_path):
    """A container an earlier release made (managed-by label, no hardening label): its hardening
    options are named, not compared, so an upgrade restarts nothing; harden=true recreates it hardened."""
    old = started_as_before(node, "t-old")
    want = {"name": "t-old", "image": IMAGE, "env": {"HF_HUB_OFFLINE": "1"}, "read_only": True,
            "tmpfs": {"/tmp": "size=64m", "/run": "size=16m"}, "pids_limit": 512, "memory": "512m"}
    r = play(node, ansible, tmp_path, [{"args": want}, {"args": dict(want, harden=True), "check": True}])
    assert r[0]["changed"] is False and r[0]["actions"] == [], r[0]
    assert r[0]["unhardened"] == ["memory", "cap_drop", "read_only", "tmpfs", "pids_limit"], r[0]
    assert r[0]["findings"] == [
        "container t-old predates the collection's hardened defaults (memory, cap_drop, read_only, tmpfs, pids_limit "
        "differ): it runs as it is and these are not compared; recreate it hardened with harden=true (site.yml -e "
        "gpu_stack_harden_existing=true, one container at a time, the old one back if the new one is not healthy)"]
    assert r[1]["actions"] == ["recreate"] and r[1]["changes"] == ["hardening"]
    assert node.inspect("t-old")["Id"] == old
    r = play(node, ansible, tmp_path, [{"args": dict(want, harden=True)}, {"args": want}])
    assert r[0]["actions"] == ["recreate"] and r[1]["changed"] is False and r[1]["unhardened"] == []
    new = node.inspect("t-old")
    assert new["Id"] != old and new["Config"]["Labels"]["io.ragops.gpu-stack.hardening"] == "1"
    host = new["HostConfig"]
    assert (host["CapDrop"], host["ReadonlyRootfs"], host["PidsLimit"], host["Memory"], host["Tmpfs"]) == (
        ["ALL"], True, 512, 512 * 1024 * 1024, {"/tmp": "size=64m", "/run": "size=16m"})
    # from now on compared: a hand-made change to one of them is drift the module repairs
    r = play(node, ansible, tmp_path, [{"args": dict(want, pids_limit=1024), "check": True}])
    assert r[0]["changes"] == ["pids_limit"], r[0]
    node.sh("docker rm -f t-old")


def test_seed_embedding_line_is_reported_and_replaced(node, ansible, tmp_path):
    """The guide's own docker run line (with the container name its other commands use)."""
    node.sh("docker rm -f rag-embedding-server-seed >/dev/null 2>&1 || true; docker tag %s "
            "rag-embedding-server:latest" % IMAGE)
    node.sh("docker run -d --name rag-embedding-server-seed --gpus '\"device=1\"' -e CUDA_VISIBLE_DEVICES=1 "
            "-e MODEL_NAME=sentence-transformers/all-MiniLM-L6-v2 rag-embedding-server:latest")
    g1 = uuid_of(node, 1)
    want = {"name": "rag-embedding-server-seed", "image": IMAGE, "gpus": [{"index": 1, "uuid": g1}],
            "env": {"MODEL_NAME": "sentence-transformers/all-MiniLM-L6-v2", "CUDA_VISIBLE_DEVICES": "0",
                    "HF_HUB_OFFLINE": "1"}}
    seed_id = node.inspect("rag-embedding-server-seed")["Id"]
    # not made by the collection (no managed-by label): left alone unless adopted
    refused = play(node, ansible, tmp_path, [{"args": want}])[0]
    assert refused["msg"] == (
        "container rag-embedding-server-seed exists and was not made by this collection (no "
        "io.ragops.gpu-stack.managed-by=ragops.gpu_stack.gpu_container label); it is left alone rather than "
        "replaced. Remove or rename it (docker rm -f rag-embedding-server-seed), or let the collection take it over: "
        "adopt: true (in the roles, gpu_stack_adopt_containers: [rag-embedding-server-seed])")
    assert node.inspect("rag-embedding-server-seed")["Id"] == seed_id
    gone = play(node, ansible, tmp_path, [{"args": {"name": "rag-embedding-server-seed", "state": "absent"}}])[0]
    assert "rather than removed" in gone["msg"]
    want["adopt"] = True
    r = play(node, ansible, tmp_path, [{"args": want, "check": True}, {"args": want}, {"args": want}])
    assert r[0]["findings"] == [
        "container rag-embedding-server-seed: CUDA_VISIBLE_DEVICES=1 names GPU ordinal(s) 1, but the container sees 1 "
        "GPU(s) numbered from 0 (host indices do not apply inside a container); CUDA sees no usable GPU"]
    assert "gpus" not in r[0]["changes"]  # device=1 is GPU 1's UUID: the GPU part is equivalent
    assert "env" in r[0]["changes"] and r[0]["actions"] == ["recreate"]
    assert r[1]["changed"] and r[2]["changed"] is False and r[2]["findings"] == []
    node.sh("docker rm -f rag-embedding-server-seed; docker rmi rag-embedding-server:latest")


def test_a_recreate_keeps_the_old_container_until_the_new_one_answers_its_health_url(node, ansible, tmp_path):
    """Issue 16: the replacement must answer with 200 within its healthcheck's bounds; when it does not,
    it is removed and the old container runs again, unchanged."""
    timing = {"interval": 2, "timeout": 2, "retries": 2, "start_period": 1}  # bound: 1 + 2 x 2 + 2 = 7 s
    old = base("t-gate", ports=["18220:8000"], healthcheck=timing)
    new = dict(old, env={"HF_HUB_OFFLINE": "1", "BATCH_SIZE": "64"})
    node.sh("docker rm -f t-gate >/dev/null 2>&1 || true")
    r = play(node, ansible, tmp_path, [
        {"args": old},
        {"args": dict(new, health_url="http://127.0.0.1:18220/no-such-path")},
    ])
    assert not r[0].get("failed"), r[0]
    first = node.inspect("t-gate")["Id"]
    assert r[1]["msg"] == (
        "container t-gate: the replacement did not answer http://127.0.0.1:18220/no-such-path with 200 within 7s (its "
        "healthcheck's start period, retries x interval and timeout; last: HTTP 404). The previous container t-gate "
        "was kept and is running again."), r[1]
    kept = node.inspect("t-gate")
    assert kept["Id"] == first and kept["State"]["Running"] and "BATCH_SIZE=64" not in kept["Config"]["Env"]
    assert node.inspect("t-gate" + "-ragops-next") is None
    # the stand-in has no model here (its /health says 503); its index answers 200
    r = play(node, ansible, tmp_path, [{"args": dict(new, health_url="http://127.0.0.1:18220/")}])
    assert r[0]["changed"] and not r[0].get("failed"), r[0]
    assert "BATCH_SIZE=64" in node.inspect("t-gate")["Config"]["Env"]
    node.sh("docker rm -f t-gate")


def test_errors(node, ansible, tmp_path):
    g6 = uuid_of(node, 6)
    node.sh("docker rm -f t-port-holder t-port >/dev/null 2>&1 || true; "
            "docker run -d --name t-port-holder -p 127.0.0.1:18210:8000 %s" % IMAGE)
    r = play(node, ansible, tmp_path, [
        {"args": base("t-err", docker_host="unix:///run/nonexistent.sock")},
        {"args": base("t-err", image="rag-missing:9.9.9")},
        {"args": base("t-err", gpus=["9"])},
        {"args": base("t-port", ports=["18211:8000"])},
        {"args": base("t-port", ports=["18210:8000"])},
    ])
    assert r[0]["msg"].startswith("cannot reach the Docker engine at unix:///run/nonexistent.sock")
    assert r[1]["msg"] == (
        "container t-err: image rag-missing:9.9.9 is not on this host's Docker engine; nothing is pulled. Stage it "
        "first: the ragops.gpu_stack.gpu_services role loads image tarballs (gpu_stack_image_sources) or pulls from "
        "your registry; by hand: docker load -i <tarball>")
    assert r[2]["msg"].startswith("container t-err: the container runtime does not know GPU(s) 9 (")
    assert node.inspect("t-err") is None  # nothing left behind
    assert r[3]["changed"] and not r[3].get("failed")
    # moving t-port onto a taken port fails, and the running container is kept and running
    assert "a published host port is already in use by container t-port-holder" in r[4]["msg"]
    assert "The previous container t-port was kept and is running again" in r[4]["msg"]
    kept = node.inspect("t-port")
    assert kept["State"]["Running"] and kept["HostConfig"]["PortBindings"]["8000/tcp"][0]["HostPort"] == "18211"
    assert node.inspect("t-port-ragops-next") is None
    node.fault("lost", gpu=6)
    try:
        r = play(node, ansible, tmp_path, [{"args": base("t-lost", gpus=[g6])}])
        assert "a requested GPU is lost (fell off the bus)" in r[0]["msg"]
    finally:
        node.clear_faults()
    node.sh("docker rm -f t-port-holder t-port t-lost >/dev/null 2>&1 || true")


def test_several_containers_in_one_call(node, ansible, tmp_path):
    """containers: each element handled as a call of its own would (created, left alone, changed), the results
    in order, one diff per element; a bad element refuses the whole call before any container is touched; a
    container that fails does not stop the others, and the task fails naming it."""
    g6, g7 = uuid_of(node, 6), uuid_of(node, 7)
    node.sh("docker rm -f t-many-a t-many-b t-many-c >/dev/null 2>&1 || true")
    a, b = base("t-many-a", gpus=[g6]), {"container": base("t-many-b", gpus=[g7])}
    r = play(node, ansible, tmp_path, [
        {"args": {"containers": [a, b]}},
        {"args": {"containers": [a, b]}},
        {"args": {"containers": [a, {"container": base("t-many-b", gpus=[g7], env={"HF_HUB_OFFLINE": "1", "X": "1"})}]},
         "check": True, "diff": True},
    ])
    assert r[0]["changed"] and [x["actions"] for x in r[0]["results"]] == [["create", "start"], ["create", "start"]], r[0]
    assert [x["container"]["gpus"] for x in r[0]["results"]] == [[g6], [g7]]
    assert not r[1]["changed"] and [x["summary"] for x in r[1]["results"]] == ["t-many-a: unchanged", "t-many-b: unchanged"]
    assert r[2]["changed"] and [x["changes"] for x in r[2]["results"]] == [[], ["env"]]
    assert r[2]["diff"][1]["after_header"] == "container t-many-b, recreate (env)"
    b_id = node.inspect("t-many-b")["Id"]
    # one bad element: nothing is touched, each bad one is named
    r = play(node, ansible, tmp_path, [
        {"args": {"containers": [base("t-many-c"), base("t-many-b", gpus=[g7], shm_size="2g", bogus=1)]}},
        {"args": {"containers": [base("t-many-c")], "image": IMAGE}},
        {"args": {"containers": [base("t-many-c"), base("t-many-c")]}},
    ])
    assert "containers[1] (t-many-b): " in r[0]["msg"] and "bogus" in r[0]["msg"], r[0]
    assert r[0]["msg"].endswith("Fix those elements; nothing was changed.")
    assert "option(s) image given at the top level as well" in r[1]["msg"]
    assert "t-many-c named more than once" in r[2]["msg"]
    assert node.inspect("t-many-c") is None and node.inspect("t-many-b")["Id"] == b_id
    # a container that fails (an image not on the host) does not stop the one after it
    r = play(node, ansible, tmp_path, [
        {"args": {"containers": [base("t-many-c", image="rag-missing:9.9.9"), base("t-many-b", gpus=[g7], shm_size="1g")]}},
    ])
    assert r[0]["msg"].startswith("1 of 2 container(s) failed: container t-many-c: image rag-missing:9.9.9 is not on")
    assert r[0]["results"][0]["failed"] and r[0]["results"][1]["actions"] == ["recreate"]
    assert node.inspect("t-many-c") is None and node.inspect("t-many-b")["HostConfig"]["ShmSize"] == 1024 ** 3
    node.sh("docker rm -f t-many-a t-many-b >/dev/null 2>&1 || true")


def test_docker_sdk_missing_on_the_host(node, ansible, tmp_path):
    r = play(node, ansible, tmp_path, [{"args": base("t-nosdk")}], python="/usr/bin/python3")
    assert "Failed to import the required Python library (docker (the Docker SDK for Python))" in r[0]["msg"]


def test_runtime_without_the_nvidia_driver(node, ansible, tmp_path):
    """dockerd started without the toolkit's hook on its PATH has no 'nvidia' device driver."""
    hook = "/usr/bin/nvidia-container-runtime-hook"
    node.sh("mv %s %s.off && systemctl restart docker" % (hook, hook))
    try:
        r = play(node, ansible, tmp_path, [{"args": base("t-nodriver", gpus=[uuid_of(node, 6)])}])
        assert r[0]["msg"].startswith("container t-nodriver: the Docker engine has no 'nvidia' device driver (")
        assert "run the ragops.gpu_stack.nvidia_container_toolkit role" in r[0]["msg"]
    finally:
        node.sh("mv %s.off %s && systemctl restart docker" % (hook, hook))
        node.sh("docker rm -f t-nodriver >/dev/null 2>&1 || true")
