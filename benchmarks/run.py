"""`make bench`: the CPU benchmarks (train step for every xLSTM mode and backbone, the MLM data step, activation
memory of the 32k configurations, then the loader); results in results/. The slower context-length sweep is
`python -m benchmarks.context_scaling`; the GPU ones are in `benchmarks/gpu_checks.sh`."""
from benchmarks import activation_memory, data_step, loader_throughput, train_step


def main() -> None:
    train_step.main([])
    data_step.main([])
    activation_memory.main([])
    loader_throughput.main([])


if __name__ == "__main__":
    main()
