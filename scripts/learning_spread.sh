#!/usr/bin/env bash
# The learning tests (`slow`, not ROS) under three floating-point paths, then one table of
# their per-seed figures: the spread their margins must hold against.
#   bash scripts/learning_spread.sh [out_dir]      (about 3 x 20 min on 2 cores)
# Paths: the default; torch with 2 intra-op threads (other summation orders); AVX2 kernels
# (torch's and MKL's AVX2 code paths instead of AVX-512 where the CPU has it, OpenBLAS as
# Haswell): each gives other trajectories from the same seeds.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/learning_spread}
py=.venv/bin/python
mkdir -p "$out"
select=(-q -m "slow and not ros" -p no:cacheprovider)
status=0
"$py" -m pytest "${select[@]}" --junitxml="$out/default.xml" || status=1
"$py" -m pytest "${select[@]}" --torch-threads 2 --junitxml="$out/two_threads.xml" || status=1
ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell \
  "$py" -m pytest "${select[@]}" --junitxml="$out/avx2_kernels.xml" || status=1
"$py" scripts/learning_spread.py "$out"/default.xml "$out"/two_threads.xml "$out"/avx2_kernels.xml
exit $status
