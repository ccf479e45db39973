"""Content-addressed cache of bias probabilities, so a second job on the same data reuses them.

The key is the sha256 of a canonical JSON of what determines the result: bias kind (or file
digest), labels, seed, fit mode and class weighting, the HANS sets the report scores,
options, a digest of the training examples themselves (uid, texts,
gold label name — not a path, which may hold different data tomorrow) and a code version.
An entry is `<key>.npy` + `<key>.json`, each written to a temporary file and renamed into
place; the JSON (written last) records the array's sha256, so a torn or foreign entry is a
miss, never a wrong answer. A per-key file lock makes concurrent workers fit a model once.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srcore.bias.result import BiasResult
from srcore.bias.settings import BiasFit
from srcore.data.examples import Split
from srcore.files import atomic_write_bytes, exclusive_lock
from srcore.jobspec.canonical import canonical_hash

# Bump when a bias model or file reader changes its output, so old entries are not reused.
# bias-2: fit / class_weight options; per-class means and HANS scoring in the report.
BIAS_CODE_VERSION = "bias-2"


def training_digest(train: Split) -> str:
    """sha256 of the examples' (uid, text_a, text_b, gold label name) stream, in order.

    Fields are length-prefixed so that no choice of texts can make two streams collide.
    """
    digest = hashlib.sha256()
    for ex in train.examples:
        for part in (ex.uid, ex.text_a, ex.text_b, train.label_names[ex.label]):
            raw = part.encode("utf-8")
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
    return digest.hexdigest()


def cache_key_parts(
    kind: str,
    train: Split,
    labels: Sequence[str],
    settings: BiasFit,
    *,
    hans: Mapping[str, Split] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The key parts of a bias result: the bias model's fit settings, the digests of the HANS
    sets its report scores (by name), and in `options` anything else that changes it (a user
    file's sha256, the fill mode). Folds and the negation feature enter `options` only when
    they are not the defaults, so the keys of default fits stay those already on disk."""
    defaults = BiasFit()
    changed = {k: getattr(settings, k) for k in ("folds", "negation")
               if getattr(settings, k) != getattr(defaults, k)}  # fmt: skip
    return {
        "kind": kind,
        "labels": list(labels),
        "seed": settings.seed,
        "train": training_digest(train),
        "fit": settings.fit,
        "class_weight": settings.class_weight,
        "hans": {name: training_digest(split) for name, split in sorted((hans or {}).items())},
        "options": {**changed, **options},
    }


def cache_key(key_parts: dict[str, Any]) -> str:
    payload = {"code_version": BIAS_CODE_VERSION, **key_parts}
    return canonical_hash(payload)


class BiasCache:
    """Bias results stored under `root`, keyed by content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def _lock(self, key: str):
        return exclusive_lock(self.root / f".{key}.lock")

    def load(self, key: str) -> BiasResult | None:
        """The stored result, or None when absent, torn or not matching its record."""
        npy_path, json_path = self._paths(key)
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
            raw = npy_path.read_bytes()
            if meta.get("npy_sha256") != hashlib.sha256(raw).hexdigest():
                return None
            probs = np.load(io.BytesIO(raw), allow_pickle=False)
            return BiasResult(probs=probs, report=meta["report"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, key_parts: dict[str, Any], result: BiasResult) -> None:
        npy_path, json_path = self._paths(key)
        buffer = io.BytesIO()
        np.save(buffer, result.probs, allow_pickle=False)
        raw = buffer.getvalue()
        meta = {
            "key_parts": key_parts,
            "code_version": BIAS_CODE_VERSION,
            "shape": list(result.probs.shape),
            "npy_sha256": hashlib.sha256(raw).hexdigest(),
            "report": result.report,
        }
        atomic_write_bytes(npy_path, raw)
        atomic_write_bytes(json_path, json.dumps(meta, indent=1, sort_keys=True).encode("utf-8"))

    def get_or_compute(
        self, key_parts: dict[str, Any], compute: Callable[[], BiasResult]
    ) -> tuple[BiasResult, bool]:
        """(result, hit). On a miss `compute()` runs once, even with concurrent callers."""
        key = cache_key(key_parts)
        found = self.load(key)
        if found is not None:
            return found, True
        with self._lock(key):
            found = self.load(key)
            if found is not None:
                return found, True
            result = compute()
            self.store(key, key_parts, result)
            return result, False
