"""`make bench`: the CPU benchmarks (train step for every xLSTM mode and backbone, the MLM data step, activation
memory of the 32k configurations, then the loader) at their default sizes (long: the reference-emulation rows take
about a minute each); results in benchmarks/results/. Each one alone, at other sizes: `python -m benchmarks.<name>
--help`. The slower context-length sweep is `python -m benchmarks.context_scaling`; the GPU ones are in
`benchmarks/gpu_checks.sh`."""
import argparse
import sys

from benchmarks import activation_memory, data_step, loader_throughput, train_step


def main(argv=None) -> int:
    """Run them all; exit status 1 if any of them reported a failure."""
    argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__).parse_args(argv)
    failed = bool(train_step.main([]))
    data_step.main([])
    activation_memory.main([])
    failed |= bool(loader_throughput.main([]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
