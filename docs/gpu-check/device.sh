#!/bin/bash
# A GPU check on a box that reaches no network, from the kit docs/gpu-check/kit.sh makes (.gpu-bundle/): set up from
# it, build llama.cpp once with the project's CUDA flags (the library for llama-cpp-python and llama-bench /
# llama-batched-bench beside it: one CUDA compile), diagnose the model-load crash of issue 29 (each case in its own
# process), then `python -m bench.gpucheck`. Everything it reports goes under $OUT (at most 8 files).
# Run from the repository root: OUT=/some/dir bash .gpu-bundle/device.sh
set -u
# overrides for a dry run on a CPU box: PY (the interpreter), SKIP_WHEELS=1, SYNTH (the synthetic name), CHECK_ARGS
PY=${PY:-python3}
SYNTH=${SYNTH:-llama3.1-8b-q4_k_m}
CHECK_ARGS=${CHECK_ARGS:-}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
T0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
step start
python3 --version; nproc; nvidia-smi --query-gpu=name,driver_version,memory.total,power.draw,power.limit --format=csv
B=${B:-/tmp/sb}; mkdir -p $B
ls -d $B/llama_cpp_python-* >/dev/null 2>&1 || tar xzf .gpu-bundle/lcp.tgz -C $B
LCP=$(ls -d $B/llama_cpp_python-* | head -1)
[ -d $B/pylib ] || [ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install --quiet --no-index --no-deps --target $B/pylib .gpu-bundle/wheels/*.whl
export PYTHONPATH=$PWD:$B/pylib:$LCP
export SHADOWBENCH_LLAMA_CPP_SRC=$LCP/vendor/llama.cpp
export XDG_CACHE_HOME=$B/cache
ARGS=$($PY bench/buildflags.py args)
KEY=$($PY bench/buildflags.py key)
echo "project flags: $ARGS (key $KEY)"
step "synthetic GGUF in the background"
( $PY -c "from bench import synthllm; print(synthllm.ensure('$SYNTH'))" > $B/synth.out 2> $B/synth.log ) &
SYNTH_PID=$!
step cmake
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH CUDACXX=/usr/local/cuda/bin/nvcc
CMAKE=$(command -v cmake || python3 -c "import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, 'cmake'))")
GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
echo "cmake: $CMAKE $GEN; nvcc: $(command -v nvcc)"
if [ ! -x $B/build/bin/llama-bench ]; then
  $CMAKE $GEN -S $LCP/vendor/llama.cpp -B $B/build $ARGS -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON > $B/cmake.log 2>&1 \
    || { tail -40 $B/cmake.log; cp $B/cmake.log $OUT/; exit 1; }
  grep -E "CUDA Toolkit|Using CUDA architectures|CMAKE_CUDA_ARCHITECTURES" $B/cmake.log | head -5
  $CMAKE --build $B/build --target llama llama-bench llama-batched-bench -j $(nproc) > $B/build.log 2>&1 \
    || { tail -60 $B/build.log; cp $B/build.log $OUT/; exit 1; }
fi
ls $B/build/bin | head -30
[ -e $LCP/llama_cpp/lib ] || ln -s $B/build/bin $LCP/llama_cpp/lib
export LD_LIBRARY_PATH=$B/build/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SHADOWBENCH_LLAMA_CPP_TOOLS=$B/tools
TD=$($PY -c "from bench import llamacpp; print(llamacpp.tool_dir())")
mkdir -p $(dirname $TD) && ln -sfn $B/build/bin $TD && echo "tools: $TD -> $(readlink $TD)"
readelf -d $B/build/bin/libggml-cuda.so | grep -E "NEEDED|RUNPATH"
step "waiting for the synthetic GGUF"
wait $SYNTH_PID; tail -3 $B/synth.log; cat $B/synth.out
MODEL=$(tail -1 $B/synth.out)
export MODEL
diag() {  # name, python code: each in its own process, its end in diag.txt
  step "diag $1"
  timeout 240 $PY -X faulthandler -c "$2" > $B/diag-$1.log 2>&1
  rc=$?
  { echo "## $1: exit $rc"; grep -v "^\s*$" $B/diag-$1.log | tail -25; echo; } >> $OUT/diag.txt
  echo "$1: exit $rc"
}
LOAD='
import os, time, llama_cpp
t = time.time()
m = llama_cpp.Llama(model_path=os.environ["MODEL"], n_gpu_layers=-1, n_ctx=8192, flash_attn=True, verbose=False)
out = m.create_completion("Hello", max_tokens=64)
print("loaded and generated", out["usage"], f"{time.time() - t:.2f} s")
'
MAPS='
from bench.doctor import loaded_cuda_libs
print("loaded:", loaded_cuda_libs())
'
# 1. the old cudalibs.preload_llama: the first nvidia/*/lib/<soname> under site-packages, loaded RTLD_GLOBAL
diag old-preload "
import ctypes, site
from pathlib import Path
roots = [Path(p) / 'nvidia' for p in site.getsitepackages() if (Path(p) / 'nvidia').is_dir()]
for name in ('libcudart.so.13', 'libcublasLt.so.13', 'libcublas.so.13'):
    for r in roots:
        hits = sorted(r.glob('*/lib/' + name))
        if hits:
            ctypes.CDLL(str(hits[0]), mode=ctypes.RTLD_GLOBAL); print('preloaded', hits[0]); break
$LOAD
$MAPS"
# 2. the new one: only what the build NEEDs and the loader cannot find
diag new-preload "
from bench import cudalibs
print('preload_llama():', repr(cudalibs.preload_llama()))
$LOAD
$MAPS"
step gpucheck
$PY -m bench.gpucheck --out $B/check --reps 5 $CHECK_ARGS
echo "gpucheck exit $?"
cp $B/check/gpu-check.md $OUT/ 2>/dev/null
tar czf $OUT/check.tgz -C $B check 2>/dev/null
# 3. torch after llama.cpp in one process (doctor used to abort so)
diag torch-after-llama "
import llama_cpp; llama_cpp.llama_backend_init()
import torch; x = torch.ones(64, 64, device='cuda'); print((x @ x).sum().item())
$MAPS"
# 4. the harness in one process (--launcher inline) with an LLM workload, as the crash was seen
cat > $B/inline.toml <<TOML
[suite]
name = "inline-llm"
[defaults]
warmups = 1
repetitions = 2
threads = "auto"
require_gpu = ${REQUIRE_GPU:-true}
[energy]
idle_s = 2
[[workloads]]
name = "llama3.1-8b-synthetic"
kind = "llm"
model = "synthetic:$SYNTH"
n_gpu_layers = -1
n_ctx = 8192
tests = ["tg128"]
TOML
step "inline harness"
timeout 240 $PY -m shadowbench run $B/inline.toml --results-dir $B/inline-res --launcher inline --no-progress > $B/inline.log 2>&1
echo "inline harness: exit $?" | tee -a $OUT/diag.txt
tail -25 $B/inline.log | tee -a $OUT/diag.txt
step done
