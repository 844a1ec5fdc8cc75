#!/usr/bin/env bash
# The engine benchmark on a real GPU, in one command, for a session that has the device tool
# (see ../shared/gpu/README.md). Two halves:
#
#   bash tools/gpu-bench.sh prepare   # here: Vulkan loader debs into .gl/, a stripped release
#                                     # binary and the GPU conformance tests' binaries into .gpu/
#                                     # (both git-ignored; with the working tree, under what
#                                     # travels)
#   bash tools/gpu-bench.sh run       # there (the device tool's command, with carry [".gl", ".gpu"]):
#                                     # writes $OUT/engine-gpu.md (or ./engine-gpu.md without $OUT)
#
# The run first checks the GPU's bits: the conformance tests that compare the GPU lanes with
# the CPU engine and with the scalar oracle (tests/engine.rs, gpu.rs, dynamic.rs,
# dynamic_levels.rs, reduce.rs,
# trace.rs, built here with `cargo test --no-run`, run there under CI=true so a missing adapter
# fails), so a figure never stands without the proof that the device computes the same bits.
# Then it measures GPU lanes and the CPU engine side by side on the same machine (the GNMT-like
# stack with 64 lanes x 100 steps, the 1024 layer with 16 x 50, the tiny model), then the
# float lanes with the fma and the unflushed sums turned off (LSTM_DSE_GPU_NO_FMA=1, the A/B:
# fused fp16 and fp8, unflushed fp32) and the
# 1024 layer with its weights read from a texture (LSTM_DSE_GPU_WEIGHTS=texture, as on
# lavapipe; GPUs read them from storage buffers), and prints
# the adapter (and nvidia-smi's name and top SM clock, for the FP32 peak), so the table names
# the card that produced it. Every benchmark runs under a time limit (BENCH_TIMEOUT seconds,
# default 120) and the whole run under BENCH_DEADLINE (default 500 s: under the device tool's
# 600 s a command; give the run timeout_s 600); a failed or skipped one is reported in the
# table, not fatal, so one problem does not cost the rest of a short device session. Commit
# the table under results/bench/.
#
# QUICK=1 bash tools/gpu-bench.sh run: the same script on small workloads, to check it here (on
# lavapipe, in under a minute) before spending device time on it.
set -euo pipefail
cd "$(dirname "$0")/.."
# What travels to the device at most: the working tree (tracked and untracked files that git
# does not ignore) and the carried folders together, 64 MiB (the device tool's limits), with
# room to spare.
CARRY_MIB=62
case "${1:-}" in
  prepare)
    bash ../shared/gpu/fetch-vulkan-debs.sh
    cargo build --release
    mkdir -p .gpu
    # The release build keeps line tables (about 70 MB); stripped it is about 11 MB.
    strip -o .gpu/lstm-dse "${CARGO_TARGET_DIR:-target}/release/lstm-dse"
    # The conformance tests, stripped (about 8 MB each, which share most of their code: 5 MB
    # together in an xz tar). They find their fixtures and the CLI through paths fixed when
    # they were built (this checkout's), which `run` recreates.
    rm -f .gpu/tests.tar.xz .gpu/built-in
    tests=$(mktemp -d)
    cargo test --release --no-run --message-format=json \
      --test engine --test gpu --test dynamic --test dynamic_levels --test reduce --test trace |
      python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])' |
      while read -r name exe; do strip -o "$tests/$name" "$exe"; done
    if [ "$(ls "$tests" | wc -l)" -ne 6 ]; then
      echo "gpu-bench: expected six conformance test binaries, built: $(ls "$tests" | tr '\n' ' ')" >&2
      exit 2
    fi
    tar -C "$tests" -cJf .gpu/tests.tar.xz .
    rm -rf "$tests" .gpu/tests
    # (cargo's CARGO_MANIFEST_DIR is the physical path.)
    pwd -P > .gpu/built-in
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    # Everything that travels: what git does not ignore, and the two carried folders.
    bytes=$( { git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null;
      find .gl .gpu -type f -exec stat -c %s {} +; } | awk '{s += $1} END {print s}')
    mib=$(( (bytes + 1048575) / 1048576 ))
    if [ "$mib" -gt "$CARRY_MIB" ]; then
      echo "gpu-bench: the working tree with .gl and .gpu is $mib MiB, over the $CARRY_MIB MiB that travel" >&2
      exit 2
    fi
    echo "gpu-bench: .gl and .gpu ready ($mib MiB with the working tree); run it there with carry [\".gl\", \".gpu\"]"
    ;;
  run)
    bin=.gpu/lstm-dse
    [ -f "$bin" ] || { echo "gpu-bench: no $bin: run 'bash tools/gpu-bench.sh prepare' first" >&2; exit 2; }
    # (A copy that lost its modes still runs.)
    chmod +x "$bin" 2>/dev/null || true
    tmp=$(mktemp -d)
    # The Vulkan loader: unpacked into / where we may (root), else beside the run and found
    # through LD_LIBRARY_PATH; a failure here is reported by the first command that needs it.
    if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1 ' >/dev/null; then
      for f in .gl/*.deb; do
        [ -f "$f" ] || continue
        dpkg -x "$f" / 2>/dev/null || dpkg -x "$f" "$tmp/gl" || echo "gpu-bench: could not unpack $f" >&2
      done
      ldconfig 2>/dev/null || true
      if [ -d "$tmp/gl" ]; then
        export LD_LIBRARY_PATH="$tmp/gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      fi
    fi
    if [ -z "${VK_DRIVER_FILES:-}" ]; then
      icd=$(ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json \
        /usr/local/nvidia/share/vulkan/icd.d/nvidia*.json 2>/dev/null | head -1 || true)
      if [ -n "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
    fi
    out="${OUT:-.}/engine-gpu.md"
    # A benchmark under the time limit (its own, and what is left of the whole run's); a failure
    # is a line of the table (on stderr, which the table takes too), not the end of the run.
    deadline=${BENCH_DEADLINE:-500}
    try() {
      local rc=0 left=$((deadline - SECONDS)) limit=${BENCH_TIMEOUT:-120}
      if [ "$left" -le 5 ]; then
        echo "**skipped, the run's $deadline s are spent:** \`$*\`" >&2
        return
      fi
      [ "$left" -lt "$limit" ] && limit=$left
      # (KILL 10 s after TERM: a process stuck in a driver call may ignore TERM.)
      timeout -k 10 "$limit" "$@" || rc=$?
      if [ "$rc" != 0 ]; then
        echo >&2
        echo "**failed: exit $rc$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo ', over the time limit'):** \`$*\`" >&2
      fi
      return "$rc"
    }
    # One workload: MODEL SEQUENCES STEPS LANES (MODEL `layer-1024`: bench engine's default).
    workload() {
      echo
      echo "## $1, $2 sequences x $3 steps${NO_FMA:+, the flushing loop for every float term: no fma, no unflushed sums (LSTM_DSE_GPU_NO_FMA=1)}${WEIGHTS:+, weights read from $WEIGHTS (LSTM_DSE_GPU_WEIGHTS=$WEIGHTS)}"
      echo
      local device=both
      [ -n "${NO_FMA:-}${WEIGHTS:-}" ] && device=gpu
      local vars=(${NO_FMA:+LSTM_DSE_GPU_NO_FMA=1} ${WEIGHTS:+LSTM_DSE_GPU_WEIGHTS=$WEIGHTS})
      if [ "$1" = layer-1024 ]; then
        try env ${vars[@]+"${vars[@]}"} "$bin" bench engine --device "$device" --lanes "$4" --reps 3
      else
        rm -f "$tmp/x.npy"
        try "$bin" gen-input --model "$1" --sequences "$2" --steps "$3" --output "$tmp/x.npy" &&
          try env ${vars[@]+"${vars[@]}"} "$bin" bench engine --model "$1" --input "$tmp/x.npy" \
            --device "$device" --lanes "$4" --reps 3
      fi
    }
    # The conformance tests: their fixtures (tests/data, models) and the CLI
    # (target/release/lstm-dse) are found under the checkout they were built in; here that path
    # is made to lead to this one. At most CONF_TIME seconds (default 240) of the run, CONF_TIMEOUT
    # (default 90) a test binary, so the benchmarks keep their time whatever the tests do.
    conformance() {
      local built tests
      local deadline=$((SECONDS + ${CONF_TIME:-240} < deadline ? SECONDS + ${CONF_TIME:-240} : deadline))
      local BENCH_TIMEOUT=${CONF_TIMEOUT:-90}
      built=$(cat .gpu/built-in)
      if ! [ "$built" -ef "$PWD" ]; then
        if [ -e "$built" ] || ! { mkdir -p "$(dirname "$built")" && ln -sfn "$PWD" "$built"; }; then
          echo "**$built (where the tests were built) is not this checkout and cannot be made to lead to it: no conformance run**"
          return
        fi
      fi
      mkdir -p target/release && { [ -x target/release/lstm-dse ] || cp "$bin" target/release/lstm-dse; } ||
        echo "**could not put the CLI in target/release: the tests that run it will fail**"
      # Unpacked outside the working tree (python3's tarfile where there is no xz).
      tests=$(mktemp -d)
      if ! tar -C "$tests" -xJf .gpu/tests.tar.xz 2>/dev/null &&
        ! python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
          .gpu/tests.tar.xz "$tests"; then
        echo "**could not unpack .gpu/tests.tar.xz: no conformance run**"
        return
      fi
      echo
      echo "## Conformance: GPU lanes against the CPU engine and the scalar oracle, bit for bit"
      echo
      echo '```'
      for t in "$tests"/*; do
        [ -f "$t" ] || continue
        chmod +x "$t" 2>/dev/null || true
        echo "$(basename "$t"):"
        # (A test binary's own lines: the adapter, its results, what failed or was skipped;
        # and try's.)
        { try env CI=true "$t" --nocapture 2>&1 |
          grep -E '^adapter:|^test result|FAILED|panicked|^skipping|^\*\*(failed|skipped)' || true; } |
          sort | uniq -c
      done
      echo '```'
      rm -rf "$tests"
    }
    {
      # Every step below reports its own failure; none ends the run (try, and the checks in
      # conformance).
      set +e
      echo "# Engine on a real GPU ($(date -u +%F))"
      echo
      echo '```'
      try "$bin" devices
      if command -v nvidia-smi >/dev/null; then
        try nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv
      fi
      echo '```'
      if [ -f .gpu/tests.tar.xz ]; then
        conformance
      else
        echo "**no conformance tests in .gpu: run 'bash tools/gpu-bench.sh prepare' again**"
      fi
      if [ -n "${QUICK:-}" ]; then
        workload builtin:tiny 4 5 fp32,fp16,fx8
        workload builtin:tiny 8 10 fp32,fx8,trace8,policy
        NO_FMA=1 workload builtin:tiny 4 5 fp32,fp16,fp8e4m3
        WEIGHTS=storage workload builtin:tiny 4 5 fp32,fx8
      else
        workload builtin:gnmt 64 100 fp32,fp16,fx8,fx16
        workload layer-1024 16 50 fp32,fp16,fp8e4m3,bf16,fx8,fx16,trace8,policy
        workload builtin:tiny 64 100 fp32,fx8,trace8,policy
        NO_FMA=1 workload layer-1024 16 50 fp32,fp16,fp8e4m3
        WEIGHTS=texture workload layer-1024 16 50 fp32,fp16,fx8,fx16,trace8
      fi
    } 2>&1 | grep --line-buffered -v XDG_RUNTIME_DIR | tee "$out"
    rm -rf "$tmp"
    ;;
  *)
    echo "usage: bash tools/gpu-bench.sh prepare|run" >&2
    exit 2
    ;;
esac
