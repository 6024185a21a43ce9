# The drift_timer role installs this as /usr/local/bin/ragops-drift-check (with a shebang for
# drift_timer_python); scripts/drift-check runs it from this checkout.
"""ragops-drift-check: run the ragops.gpu_stack drift check and turn its report into an exit code.

  0  clean: every host matches what site.yml would make it
  2  drift found (the report lists each finding)
  1  the check itself failed (a host unreachable or not checkable, or no report written)

Usage: ragops-drift-check [-i INVENTORY] [--playbook PLAYBOOK] [--report-dir DIR] [--textfile PATH]
                          [--retention-days N] [--full-verify] [-- ANSIBLE-PLAYBOOK ARGS...]
Defaults come from the environment (the systemd unit loads /etc/ragops/drift-check.env):
RAGOPS_INVENTORY, RAGOPS_PLAYBOOK, RAGOPS_DRIFT_REPORT_DIR, RAGOPS_DRIFT_TEXTFILE,
RAGOPS_RETENTION_DAYS, RAGOPS_PROJECT_DIR (where ansible.cfg is), RAGOPS_ANSIBLE_PLAYBOOK.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def main(argv):
    env = os.environ
    p = argparse.ArgumentParser(prog="ragops-drift-check", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("-i", "--inventory", default=env.get("RAGOPS_INVENTORY"))
    p.add_argument("--playbook", default=env.get("RAGOPS_PLAYBOOK", "ragops.gpu_stack.drift_check"))
    p.add_argument("--report-dir", default=env.get("RAGOPS_DRIFT_REPORT_DIR", "reports"))
    p.add_argument("--textfile", default=env.get("RAGOPS_DRIFT_TEXTFILE"))
    p.add_argument("--retention-days", type=int, default=int(env.get("RAGOPS_RETENTION_DAYS", "30")))
    p.add_argument("--full-verify", action="store_true", help="re-hash every staged model file")
    p.add_argument("--project-dir", default=env.get("RAGOPS_PROJECT_DIR"))
    p.add_argument("--ansible-playbook", default=env.get("RAGOPS_ANSIBLE_PLAYBOOK", "ansible-playbook"))
    p.add_argument("extra", nargs="*", help="more ansible-playbook arguments (after --)")
    args = p.parse_args(argv)
    if not args.inventory:
        print("ragops-drift-check: no inventory; give -i or set RAGOPS_INVENTORY", file=sys.stderr)
        return 1
    report_dir = os.path.abspath(args.report_dir)
    os.makedirs(report_dir, exist_ok=True)
    child_env = dict(env, RAGOPS_DRIFT_REPORT_DIR=report_dir)
    if args.textfile:
        child_env["RAGOPS_DRIFT_TEXTFILE"] = os.path.abspath(args.textfile)
    cmd = [args.ansible_playbook, args.playbook, "-i", args.inventory]
    if args.full_verify:
        cmd += ["-e", "drift_full_verify=true"]
    cmd += args.extra
    started = time.time()
    proc = subprocess.run(cmd, cwd=args.project_dir or None, env=child_env, check=False)
    latest = os.path.join(report_dir, "latest.json")
    try:
        fresh = os.path.getmtime(latest) >= started - 1
        with open(latest) as fh:
            report = json.load(fh)
    except (OSError, ValueError):
        fresh, report = False, {}
    prune(report_dir, args.retention_days)
    if not fresh:
        print("ragops-drift-check: the check failed before writing a report (ansible-playbook exit %d)"
              % proc.returncode, file=sys.stderr)
        return 1
    status = report.get("status")
    print("ragops-drift-check: %s (%s)" % (status, os.path.join(report_dir, "drift-%s.json" % report.get("run_id"))))
    return {"clean": 0, "drift": 2}.get(status, 1)


def prune(report_dir, days):
    if days <= 0:
        return
    cutoff = time.time() - days * 86400
    for name in os.listdir(report_dir):
        path = os.path.join(report_dir, name)
        if name.startswith("drift-") and name.endswith(".json") and os.path.getmtime(path) < cutoff:
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
