# -*- coding: utf-8 -*-
"""service_containers and as_loop_results: a plan's services as one gpu_container call's elements, and that
call's results back in a loop's shape, against a plan gpu_plan makes from the a100 inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ragops.gpu_stack.plugins.filter.service_containers import service_containers
from ansible_collections.ragops.gpu_stack.plugins.filter.as_loop_results import as_loop_results
from ansible_collections.ragops.gpu_stack.plugins.module_utils import _container_options as co
from ansible_collections.ragops.gpu_stack.plugins.module_utils._gpu_plan import build_plan

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def services():
    inv = yaml.safe_load((ROOT / "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())
    return build_plan(inv["gpu_stack_services"], common_env=inv["gpu_stack_common_env"])["plan"]["services"]


def test_every_service_becomes_one_valid_element_in_the_plans_order(services):
    out = service_containers(services)
    assert [e["container"]["name"] for e in out] == [s["container_name"] for s in services]
    assert all(e["state"] == "started" and not e["recreate"] and not e["adopt"] and not e["harden"] for e in out)
    assert [e.get("health_url") for e in out] == [s.get("health_url") for s in services]
    # each element is what gpu_container's list form accepts (the module's parameters as AnsibleModule fills them)
    params = ArgumentSpecValidator(co.argument_spec()).validate({"containers": out}).validated_parameters
    assert [p["name"] for p in co.each_container(params)] == [s["container_name"] for s in services]


def test_recreate_adopt_and_harden_are_decided_per_service(services):
    llm = next(s for s in services if s["name"] == "llm")
    out = service_containers(services, restart_models=[llm["model"]["repo_id"]], adopt=[llm["container_name"]],
                             harden=True)
    assert [e["container"]["name"] for e in out if e["recreate"]] == [llm["container_name"]]
    assert [e["container"]["name"] for e in out if e["adopt"]] == [llm["container_name"]]
    assert all(e["harden"] for e in out)
    # a service changed one instance at a time through the load balancer is never recreated here
    out = service_containers(services, restart_models=[llm["model"]["repo_id"]], rolling=["llm"])
    assert not any(e["recreate"] for e in out)


def test_not_a_plan_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match="expected gpu_plan's plan.services"):
        service_containers([{"name": "x"}])


def test_results_come_back_with_their_plan_entries(services):
    results = [{"changed": False, "summary": "%s: unchanged" % s["container_name"]} for s in services]
    out = as_loop_results(results, services)
    assert [r["item"]["container_name"] for r in out] == [s["container_name"] for s in services]
    assert all(r["summary"] == "%s: unchanged" % r["item"]["container_name"] for r in out)
    with pytest.raises(AnsibleFilterError, match="1 result[(]s[)] for %d entries" % len(services)):
        as_loop_results(results[:1], services)
