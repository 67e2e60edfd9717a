#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.py needs on the device machine (Python 3.12, x86-64, no internet) beyond what
# it has (torch, transformers, numpy, scipy, pandas, pyarrow, matplotlib, pyyaml, pytest, ...), into .whl/.
# Versions are those of the project's .venv. Run from the repository root: bash tools/device_wheels.sh
# On the device: python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#   --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src && python3 benchmarks/gpu_check.py
set -euo pipefail

PACKAGES=(
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0  # the store (io.store, stream.driver)
    polars==2.1.0 polars-runtime-32==2.1.0                                   # token tables
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
    screenot==0.0.2                                                          # posctx.metrics, via the registry
)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${PACKAGES[@]}"

# Re-compress the large wheels with LZMA, which pip's zipfile reads (RECORD hashes cover the uncompressed files):
# polars' runtime shrinks from 51 to 31 MiB, so the set travels well within the device's 64 MiB.
python3 - .whl/*.whl <<'PY'
import os, sys, zipfile
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as wheel:
        infos = wheel.infolist()
        if os.path.getsize(path) < 4 << 20 or all(i.compress_type == zipfile.ZIP_LZMA for i in infos):
            continue
        with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_LZMA) as packed:
            for info in infos:
                packed.writestr(info, wheel.read(info), compress_type=zipfile.ZIP_LZMA)
    os.replace(path + ".tmp", path)
PY
du -ch .whl/*.whl
