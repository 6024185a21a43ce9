"""The Ansible settings of ansible.cfg, each measured: the converged site.yml rerun on one simulated node with
the project's settings, then with one setting changed (pipelining off; a JSON fact cache, which would spare a fact
gathering, though site.yml gathers none: its first read returns the facts the roles need; the free strategy is not measured: site.yml's run_once tasks stage the
union of every host's models and need the linear strategy). Median of --rounds reruns each, interleaved.

    .venv/bin/python benchmarks/bench_settings.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

from common import ROOT, WORK, nodes, playbook, playbook_cpu, remove, save

VARIANTS = {
    "project settings (ansible.cfg)": {},
    "pipelining off": {"ANSIBLE_PIPELINING": "False"},
    "fact cache (jsonfile)": {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(WORK / "facts")},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    names, inv, _boot = nodes("bench-settings")
    try:
        playbook(ROOT / "site.yml", inv)
        samples = {k: [] for k in VARIANTS}
        for _ in range(rounds):
            for name, env in VARIANTS.items():
                seconds, out, cpu = playbook_cpu(ROOT / "site.yml", inv, env=env)
                assert "changed=0" in out.split("PLAY RECAP")[-1], out[-3000:]
                samples[name].append((seconds, cpu))
        base = statistics.median(s for s, _c in samples["project settings (ansible.cfg)"])
        result = {name: {"rerun_s": round(statistics.median(s for s, _c in v), 2),
                         "cpu_s": round(statistics.median(c for _s, c in v), 2),
                         "vs_project": round(statistics.median(s for s, _c in v) / base, 2)}
                  for name, v in samples.items()}
        save("settings", {"rounds": rounds, "variants": result})
    finally:
        remove(names)


if __name__ == "__main__":
    main()
