# -*- coding: utf-8 -*-
"""The gpu_container option table (_container_options) against the module's DOCUMENTATION, the way
docs/inventory-schema.md is held against _service_map.FIELDS: every parameter documented with the
type, default, choices, elements and suboptions the table gives it, and nothing documented that the
table does not declare. Plus the canonical forms the table derives, without an engine."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _container_options as co
from ansible_collections.ragops.gpu_stack.plugins.modules import gpu_container

DOC = yaml.safe_load(gpu_container.DOCUMENTATION)["options"]
IMAGE = {"Id": "sha256:" + "a" * 64,
         "Config": {"Env": ["PATH=/usr/bin", "LANG=C"], "Labels": {"vendor": "x"}, "Healthcheck": {"Test": ["CMD", "true"]}}}


def _canonical(entry, nested):
    """One parameter, from an argument spec (nested under 'options') or from DOCUMENTATION (nested
    under 'suboptions', type str when unsaid), in one vocabulary."""
    out = {"type": entry.get("type", "str")}
    for key in ("default", "elements", "choices", "aliases", "required"):
        if entry.get(key) is not None:
            out[key] = entry[key]
    if entry.get(nested):
        out["suboptions"] = dict((k, _canonical(v, nested)) for k, v in entry[nested].items())
    return out


@pytest.mark.parametrize("name", sorted(co.argument_spec()))
def test_every_parameter_is_documented_as_declared(name):
    spec = co.argument_spec()[name]
    spec.pop("fallback", None)  # docker_host: from DOCKER_HOST, documented in words
    assert name in DOC, "gpu_container option %s is in the table but not in DOCUMENTATION" % name
    assert _canonical(DOC[name], "suboptions") == _canonical(spec, "options")


def test_nothing_is_documented_that_the_table_does_not_declare():
    assert sorted(set(DOC) - set(co.argument_spec())) == []


def test_the_healthcheck_defaults_live_in_the_table_only():
    from ansible_collections.ragops.gpu_stack.plugins.module_utils import _service_map

    timing = dict((p.name, p.default) for p in co.HEALTHCHECK_TIMING)
    assert timing == {"interval": 30, "timeout": 10, "retries": 3, "start_period": 60}
    assert _service_map.DEFAULT_HEALTHCHECK == timing


def test_every_option_yields_a_finding_type_and_severity():
    assert co.OPTIONS_BY_NAME["gpus"].finding == "container.gpus"
    assert co.OPTIONS_BY_NAME["image_id"].finding == "container.image"
    assert set(o.severity for o in co.OPTIONS) == {"critical", "warning"}
    assert [o.name for o in co.OPTIONS if o.severity == "critical"] == ["image_id", "gpus", "privileged"]


def test_desired_state_fills_the_table_defaults_for_a_bare_mapping():
    d = co.desired_state({"name": "c", "image": "img:1", "gpus": [{"index": 1, "uuid": "GPU-1"}]}, IMAGE)
    assert d["healthcheck"] == {"test": ["CMD", "true"], "interval": 30, "timeout": 10, "retries": 3,
                                "start_period": 60}
    assert d["log"] == {"driver": "json-file", "options": {"max-size": "50m", "max-file": "5"}}
    assert d["restart_policy"] == "unless-stopped" and d["security_opts"] == ["no-new-privileges"]
    assert d["shm_size"] == co.DEFAULT_SHM and d["ipc"] is None and d["gpus"]["ids"] == ["GPU-1"]
    assert d["labels"] == {"io.ragops.gpu-stack.managed-by": co.MANAGED_BY,
                           "io.ragops.gpu-stack.image-id": IMAGE["Id"]}


def test_actual_state_compares_equal_to_what_was_created():
    """A container inspected as the engine reports what create_kwargs asked for compares equal; index
    requests (--gpus device=1) equal the same GPU's UUID; if_set options are ignored while unset."""
    params = {"name": "c", "image": "img:1", "gpus": [{"index": 1, "uuid": "GPU-1"}], "env": {"A": 1, "B": True},
              "ports": ["8001:8000"], "volumes": ["/m:/models:ro"], "shm_size": "1g", "ulimits": {"memlock": -1},
              "labels": {"io.ragops.gpu-stack.plan-hash": "p1", "k": "v"}}
    desired = co.desired_state(params, IMAGE)
    inspect = {"Image": IMAGE["Id"], "Config": {"Image": "img:1", "Env": ["PATH=/usr/bin", "A=1", "B=true"],
                                                "Labels": {"vendor": "x", "k": "v", "io.ragops.gpu-stack.plan-hash": "p0",
                                                           "io.ragops.gpu-stack.managed-by": co.MANAGED_BY,
                                                           "io.ragops.gpu-stack.image-id": IMAGE["Id"]},
                                                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30 * co.NS,
                                                                "Timeout": 10 * co.NS, "Retries": 3,
                                                                "StartPeriod": 60 * co.NS},
                                                "User": "1000", "Cmd": ["serve"]},
               "HostConfig": {"DeviceRequests": [{"Driver": "", "DeviceIDs": ["1"], "Capabilities": [["gpu"]]}],
                              "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8001"}]},
                              "Binds": ["/m:/models:ro"], "ShmSize": 1024 ** 3, "IpcMode": "private",
                              "Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}],
                              "RestartPolicy": {"Name": "unless-stopped"},
                              "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "5"}},
                              "SecurityOpt": ["no-new-privileges:true"], "Privileged": False},
               "State": {"Running": True}}
    actual = co.actual_state(inspect, IMAGE, desired)
    assert co.compare(desired, actual) == []
    assert actual["ipc"] is None and actual["user"] is None and actual["command"] is None
    inspect["HostConfig"]["Privileged"] = True
    inspect["HostConfig"]["RestartPolicy"] = {"Name": "always"}
    inspect["Config"]["Env"].append("A=2")
    actual = co.actual_state(inspect, IMAGE, desired)
    assert co.compare(desired, actual) == ["env", "restart_policy", "privileged"]


def test_only_in_place_options_update_without_a_recreate():
    import docker

    desired = co.desired_state({"name": "c", "image": "img:1", "restart_policy": "always"}, IMAGE)
    assert co.update_kwargs({"name": "c"}, desired, ["restart_policy"], docker) == {
        "restart_policy": {"Name": "always", "MaximumRetryCount": 0}}
    assert co.update_kwargs({"name": "c"}, desired, ["restart_policy", "env"], docker) is None
    assert co.update_kwargs({"name": "c"}, desired, ["recreate requested"], docker) is None


def test_the_container_mapping_is_validated_by_the_same_table():
    base = dict((k, None) for k in co.argument_spec())
    base.update(state="started", gpus=[], env={}, ports=[], volumes=[], ulimits={}, labels={}, healthcheck={},
                restart_policy="unless-stopped", default_host_ip="127.0.0.1", log_driver="json-file",
                log_options={"max-size": "50m", "max-file": "5"}, security_opts=["no-new-privileges"])
    merged = co.merge_container(dict(base, container={"name": "c", "image": "img:1", "ports": ["1:2"],
                                                      "healthcheck": {"interval": 5}}))
    assert merged["name"] == "c" and merged["ports"] == ["1:2"]
    assert merged["healthcheck"] == {"test": None, "interval": 5, "timeout": 10, "retries": 3, "start_period": 60}
    with pytest.raises(co.ContainerError, match=r"container c: the container mapping is not valid: .*prot"):
        co.merge_container(dict(base, container={"name": "c", "image": "img:1", "prot": ["1:2"]}))
    with pytest.raises(co.ContainerError, match="option env is given twice"):
        co.merge_container(dict(base, env={"A": "1"}, container={"name": "c", "image": "img:1", "env": {"A": "2"}}))
    with pytest.raises(co.ContainerError, match="container c: image is required unless state is absent or stopped"):
        co.merge_container(dict(base, container={"name": "c"}))
    assert co.merge_container(dict(base, name="c", state="stopped"))["image"] is None  # stop it as it is


def test_diffs_show_only_allow_listed_env_values_and_hash_the_rest():
    """A token in a service's env never reaches a --diff or a drift report; a change to it still shows."""
    state = {"env": {"HF_TOKEN": "hf_s3cr3t", "API_KEY": "k1", "MAX_NUM_SEQS": "256", "HF_HUB_OFFLINE": "1"},
             "refs": object()}
    shown = co.public(state)
    assert "refs" not in shown and "hf_s3cr3t" not in str(shown) and "k1" not in str(shown.values())
    assert shown["env"]["MAX_NUM_SEQS"] == "256" and shown["env"]["HF_HUB_OFFLINE"] == "1"
    assert shown["env"]["HF_TOKEN"].startswith("<hidden sha256:") and len(shown["env"]["HF_TOKEN"]) == 28
    assert co.shown_env({"HF_TOKEN": "hf_other"})["HF_TOKEN"] != shown["env"]["HF_TOKEN"]  # a change is visible
    assert state["env"]["HF_TOKEN"] == "hf_s3cr3t"  # the state itself (what is compared and hashed) is untouched


def _module_params(**given):
    """gpu_container's parameters as AnsibleModule fills them in."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    return ArgumentSpecValidator(co.argument_spec()).validate(given).validated_parameters


def test_the_list_form_checks_every_element_before_any_container_is_touched():
    good = {"name": "a", "image": "img:1"}
    out = co.each_container(_module_params(containers=[good, {"container": {"name": "b", "image": "img:2"}, "recreate": True}]))
    got = [(p["name"], p["image"], p["recreate"], p["state"]) for p in out]
    assert got == [("a", "img:1", False, "started"), ("b", "img:2", True, "started")]
    assert out[0]["docker_host"] == _module_params(containers=[])["docker_host"]
    with pytest.raises(co.ContainerError) as exc:
        co.each_container(_module_params(containers=[
            good, {"name": "b", "image": "img:1", "gpus": ["1"], "gpu_count": 1}, {"image": "img:1"},
            {"name": "d", "state": "started"}]))
    msg = str(exc.value)
    assert "containers[1] (b): parameters are mutually exclusive: gpus|gpu_count" in msg
    assert "containers[2] (?): one of the following is required: name, container" in msg
    assert "containers[3]: container d: image is required unless state is absent or stopped" in msg
    assert msg.endswith("Fix those elements; nothing was changed.") and "containers[0]" not in msg


def test_the_list_form_takes_no_container_option_at_the_top_level_and_each_container_once():
    with pytest.raises(co.ContainerError, match=r"option\(s\) env, ports given at the top level as well"):
        co.each_container(_module_params(containers=[{"name": "a", "image": "i"}], env={"A": "1"}, ports=["1:2"]))
    with pytest.raises(co.ContainerError, match="containers: a named more than once"):
        co.each_container(_module_params(containers=[{"name": "a", "image": "i"}, {"container": {"name": "a", "image": "i"}}]))


def test_a_mapping_option_given_in_the_container_only_is_not_given_twice():
    """The top level holds a mapping option's suboption defaults when it was not given: that is not a second value."""
    params = _module_params(container={"name": "x", "image": "i", "healthcheck": {"interval": 5}})
    assert co.merge_container(params)["healthcheck"] == {"interval": 5, "timeout": 10, "retries": 3, "start_period": 60,
                                                         "test": None}
    with pytest.raises(co.ContainerError, match="option healthcheck is given twice"):
        co.merge_container(_module_params(container={"name": "x", "image": "i", "healthcheck": {"interval": 5}},
                                          healthcheck={"interval": 7}))
