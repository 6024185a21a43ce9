#!/usr/bin/env bash
# make setup: the development environment, idempotent. Prints one line per step.
#   .venv/                         Python 3.11+ virtualenv with the pinned toolchain
#   collections/ansible_collections  third-party collections (requirements.yml), and
#   collections/ansible_collections/ragops/gpu_stack -> this checkout (the collection itself)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "setup: $PYTHON is missing or older than 3.11; install Python 3.11+ (Debian 12: apt install python3 python3-venv) or run: make setup PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || {
    echo "setup: could not create .venv; on Debian/Ubuntu install the venv module: apt install python3-venv" >&2
    exit 1
  }
  echo "setup: created .venv with $("$PYTHON" --version)"
else
  echo "setup: .venv exists ($(.venv/bin/python --version))"
fi

# pip prints nothing for requirements already satisfied; count what changed instead.
before=$(.venv/bin/python -m pip freeze --exclude pip | sort)
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r requirements/requirements-dev.txt -c requirements/constraints.txt 2> >(grep -v "^WARNING: Location" >&2)
after=$(.venv/bin/python -m pip freeze --exclude pip | sort)
changed=$(comm -13 <(echo "$before") <(echo "$after") | wc -l)
echo "setup: python packages pinned by requirements/constraints.txt ($changed installed or changed, $(echo "$after" | wc -l) in all)"

.venv/bin/python scripts/install_collections.py

# The collection reaches itself through collections_path as ragops.gpu_stack. A symlink, made
# here and ignored by git: ansible-test sanity rejects committed directory symlinks.
mkdir -p collections/ansible_collections/ragops
link=collections/ansible_collections/ragops/gpu_stack
if [ "$(readlink "$link" 2>/dev/null)" != "../../.." ]; then
  rm -rf "$link"
  ln -s ../../.. "$link"
  echo "setup: linked $link -> this checkout"
else
  echo "setup: $link -> this checkout (already linked)"
fi
echo "setup: done. Next: make test (everything), make demo (the stack on a simulated A100 node)"
