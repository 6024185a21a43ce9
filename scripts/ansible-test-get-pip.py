"""Offline stand-in for ansible-test's pip bootstrap script.

ansible-test makes a virtualenv per sanity test and bootstraps pip in it with a get-pip script it
downloads from ci-files.testing.ansible.com, a host the machines this project is built on cannot
reach. scripts/sanity.sh puts this file where ansible-test caches that script
(~/.ansible/test/cache/get_pip_<version>.py) when no real one is there. It does the same job with
what is available: pip from the interpreter's bundled ensurepip wheel, then the exact pip version
ansible-test asks for from the package index.
"""
import ensurepip
import os
import subprocess
import sys

# get-pip.py options that are not pip options
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

saved = os.environ.get("PIP_CONFIG_FILE")
ensurepip.bootstrap(upgrade=False, default_pip=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null for itself; the install below must see the
# machine's pip configuration (index, CA bundle) like any other pip run.
if saved is None:
    os.environ.pop("PIP_CONFIG_FILE", None)
else:
    os.environ["PIP_CONFIG_FILE"] = saved
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args))
