#!/usr/bin/env bash
# The engine benchmark on a real GPU, in one command, for a session that has the device tool
# (see ../shared/gpu/README.md). Two halves:
#
#   bash tools/gpu-bench.sh prepare   # here: Vulkan loader debs into .gl/, release binary into .gpu/
#   bash tools/gpu-bench.sh run       # there (the device tool's command, with carry [".gl", ".gpu"]):
#                                     # writes $OUT/engine-gpu.md (or ./engine-gpu.md without $OUT)
#
# The run measures GPU lanes and the CPU engine side by side on the same machine (the GNMT-like
# stack with 64 lanes x 100 steps, the 1024 layer with 16 x 50, the tiny model) and prints the
# adapter, so the table names the card that produced it. Commit the table under results/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    bash ../shared/gpu/fetch-vulkan-debs.sh
    cargo build --release
    mkdir -p .gpu && cp target/release/lstm-dse .gpu/
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    ;;
  run)
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    if [ -z "${VK_DRIVER_FILES:-}" ]; then
      icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
        /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json 2>/dev/null | head -1 || true)
      [ -n "$icd" ] && export VK_DRIVER_FILES="$icd"
    fi
    out="${OUT:-.}/engine-gpu.md"
    bin=.gpu/lstm-dse
    tmp=$(mktemp -d)
    {
      echo "# Engine on a real GPU ($(date -u +%F))"
      echo
      echo '```'
      "$bin" devices
      echo '```'
      for w in "builtin:gnmt 64 100 fp32,fp16,fx8,fx16" "gnmt-layer 16 50 fp32,fp16,fp8e4m3,bf16,fx8,fx16,trace8" "builtin:tiny 64 100 fp32,fx8,trace8,policy"; do
        set -- $w
        echo
        echo "## $1, $2 sequences x $3 steps"
        echo
        if [ "$1" = gnmt-layer ]; then
          "$bin" bench engine --device both --lanes "$4" --reps 3
        else
          "$bin" gen-input --model "$1" --sequences "$2" --steps "$3" --output "$tmp/x.npy" >/dev/null
          "$bin" bench engine --model "$1" --input "$tmp/x.npy" --device both --lanes "$4" --reps 3
        fi
      done
      echo
      echo "## gnmt-layer, 16 sequences x 50 steps, one fma a term turned off (LSTM_DSE_GPU_NO_FMA=1)"
      echo
      echo "The A/B of the fused narrow-float lanes: compare fp16 and fp8e4m3 with the table above."
      echo
      LSTM_DSE_GPU_NO_FMA=1 "$bin" bench engine --device gpu --lanes fp16,fp8e4m3 --reps 3
    } 2>&1 | grep -v XDG_RUNTIME_DIR | tee "$out"
    ;;
  *)
    echo "usage: bash tools/gpu-bench.sh prepare|run" >&2
    exit 2
    ;;
esac
