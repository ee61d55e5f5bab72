#!/usr/bin/env bash
# Build deploy/lambda/package/ for template.yaml: X-Ray with the [lambda] extra and its
# dependencies as Linux wheels for the function's runtime (Python 3.12, arm64).
#
#   bash deploy/lambda/build.sh            # PLATFORM / PYTHON_VERSION override the target
set -euo pipefail
cd "$(dirname "$0")/../.."
PLATFORM=${PLATFORM:-manylinux2014_aarch64}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
OUT=deploy/lambda/package
rm -rf "$OUT" deploy/lambda/dist
# A pure-Python wheel of X-Ray: the SDK's C fast path is not built (the server does not
# use it), so the wheel installs on any platform.
XRAY_SDK_PURE_PYTHON=1 python3 -m pip wheel --quiet --no-deps --wheel-dir deploy/lambda/dist .
wheel=$(ls deploy/lambda/dist/xray-*.whl)
python3 -m pip install --quiet --target "$OUT" --platform "$PLATFORM" \
  --python-version "$PYTHON_VERSION" --implementation cp --only-binary=:all: \
  "xray[lambda] @ file://$PWD/$wheel"
echo "built $OUT"
