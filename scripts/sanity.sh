#!/usr/bin/env bash
# ansible-test sanity on the collection as it ships: build the artifact (galaxy.yml's build_ignore
# leaves the site project out), install it into a physical ansible_collections/ragops/gpu_stack
# under .build/, and run the sanity tests there for the controller's Python. ansible-test makes
# one virtualenv per test (--venv) with its own pinned requirements; they are reused between runs.
# RAGOPS_VENV: the virtualenv whose ansible-test runs (default .venv; the controller matrix passes
# its own); RAGOPS_SANITY_DIR: where the collection is built and checked (default .build/sanity).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RAGOPS_VENV:-$PWD/.venv}
dir=${RAGOPS_SANITY_DIR:-.build/sanity}
export PATH="$venv/bin:$PATH"
# ansible-test bootstraps pip in its per-test virtualenvs with a script from
# ci-files.testing.ansible.com; where that host is unreachable, use the offline stand-in.
pipver=$(python - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp scripts/ansible-test-get-pip.py "$cache"
  echo "sanity: using the offline pip bootstrap for ansible-test (pip $pipver)"
fi
py=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
rm -rf "$dir"
mkdir -p "$dir/dist"
ansible-galaxy collection build --force --output-path "$dir/dist" >/dev/null
ansible-galaxy collection install --force --no-deps -p "$dir" "$dir"/dist/ragops-gpu_stack-*.tar.gz >/dev/null
root=$PWD
cd "$dir/ansible_collections/ragops/gpu_stack"
# The install adds MANIFEST.json / FILES.json; the sources' galaxy.yml is what sanity expects.
cp "$root/galaxy.yml" .
# ansible-test finds the files to check through git; a throwaway repository is enough.
printf 'tests/output/\n' > .gitignore
git init -q . && git add -A
exec ansible-test sanity --venv --python "$py" --color no "$@"
