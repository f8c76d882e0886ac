"""The authors' FreqFusion module under PyTorch at the sizes of FreqFusionStageBenchmarks (issue 16's module goal).

Same stages, options and protocol as benchmarks/MLNetFreqFusion.Benchmarks/FreqFusionStageBenchmarks.cs: the module's
defaults with feature_resample=True, compressed channels (hr + lr) / 4, batch 1; "forward" is eval mode without
autograd, "forward+backward" is train mode with gradients of random cotangents into hr, lr and every parameter.
Without mmcv the module falls back to its own unfold CARAFE, as it does for anyone without mmcv on a CPU.

For measurements only, never part of the build or the tests:
    FREQFUSION_REF=/path/to/FreqFusion.py THREADS=2 /usr/bin/python3 benchmarks/baseline/freqfusion_module.py
STAGES="issue 16,1/16" times only those stages (names as in STAGES below).
"""
import importlib.util
import os
import statistics
import time

import torch

STAGES = [("issue 16", 64, 64, 64), ("1/16", 160, 256, 32), ("1/8", 64, 416, 64), ("1/4", 32, 480, 128)]


def load_reference():
    spec = importlib.util.spec_from_file_location("freqfusion_ref", os.environ["FREQFUSION_REF"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The unfold fallback prints both shapes on every call; timing should not include that.
    module.print = lambda *args, **kwargs: None
    return module


def median_ms(step, warmup, iterations):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    warmup, iterations = int(os.environ.get("WARMUP", "1")), int(os.environ.get("ITERATIONS", "5"))
    reference = load_reference()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, warm-up {warmup}, {iterations} iterations, "
          f"load {open('/proc/loadavg').read().strip()}")
    print("| stage | forward, median (min) | forward+backward, median (min) |")
    print("|---|---:|---:|")
    torch.manual_seed(9)
    wanted = os.environ.get("STAGES")
    stages = [s for s in STAGES if wanted is None or s[0] in wanted.split(",")]
    # Whichever stage a process times first measured ~110 ms slower forward, warm-up or not (1/16: 122–133 ms first,
    # 18 ms later; the 64-channel case: 128–130 ms first, 23 ms later), so the first stage is timed twice and its first
    # timing dropped.
    for index, (name, hr_channels, lr_channels, hr_size) in enumerate([stages[0]] + stages):
        module = reference.FreqFusion(hr_channels, lr_channels, compressed_channels=(hr_channels + lr_channels) // 4,
                                      feature_resample=True)
        hr = torch.randn(1, hr_channels, hr_size, hr_size)
        lr = torch.randn(1, lr_channels, hr_size // 2, hr_size // 2)
        hr_grad = torch.randn(1, hr_channels, hr_size, hr_size)
        lr_grad = torch.randn(1, lr_channels, hr_size, hr_size)

        def forward():
            module.eval()
            with torch.no_grad():
                module(hr, lr)

        def forward_backward():
            module.train()
            module.zero_grad()
            _, hr_out, lr_out = module(hr.detach().requires_grad_(), lr.detach().requires_grad_())
            torch.autograd.backward([hr_out, lr_out], [hr_grad, lr_grad])

        fwd, fwd_min = median_ms(forward, warmup, iterations)
        both, both_min = median_ms(forward_backward, warmup, iterations)
        if index == 0:
            continue
        print(f"| {name} hr{hr_channels}@{hr_size} lr{lr_channels}@{hr_size // 2} | {fwd:.1f} ms ({fwd_min:.1f}) | "
              f"{both:.1f} ms ({both_min:.1f}) |", flush=True)


if __name__ == "__main__":
    main()
