#!/bin/bash
# Makes the offline kit for a GPU box that reaches no network (docs/gpu-check/README.md): the pinned
# llama-cpp-python sdist stripped to what a CUDA build uses (~8 MB), and the wheels the harness needs there that a
# CUDA PyTorch box may lack (diffusers, gguf, ...), for CPython 3.12 on manylinux_2_28 x86_64.
# Usage: bash docs/gpu-check/kit.sh [KIT_DIR]   (default .gpu-bundle, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=${1:-.gpu-bundle}
PY=${PYTHON:-python3}
VERSION=$($PY bench/buildflags.py version)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$KIT/wheels"
$PY -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$TMP"
tar xzf "$TMP"/llama_cpp_python-*.tar.gz -C "$TMP"
SRC="$TMP/llama_cpp_python-$VERSION"
L="$SRC/vendor/llama.cpp"
rm -rf "$SRC/.git" "$L"/{docs,media,benches,app,ci,pocs,skills,scripts,requirements,tests,conversion,gguf-py} \
  "$L"/examples/{llama.android,llama.swiftui,model-conversion} "$L"/tools/ui "$L"/tools/server/webui \
  "$L"/tools/mtmd/*.mp4
for b in cann et hexagon metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
  rm -rf "$L/ggml/src/ggml-$b"
done
find "$L/models" -mindepth 1 -maxdepth 1 ! -name 'ggml-vocab-llama-bpe.gguf' ! -name 'ggml-vocab-llama-spm.gguf' \
  ! -name 'ggml-vocab-phi-3.gguf' -exec rm -rf {} +
tar czf "$KIT/lcp.tgz" -C "$TMP" "llama_cpp_python-$VERSION"
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
  -d "$KIT/wheels" diffusers==0.42.1 gguf==0.19.0 importlib_metadata zipp tomlkit pillow requests urllib3 idna \
  certifi charset_normalizer
cp docs/gpu-check/device.sh "$KIT/device.sh"
du -sh "$KIT"
