"""`make bench`: the CPU benchmarks (train step for every xLSTM mode, then the loader); results in results/."""
from benchmarks import loader_throughput, train_step


def main() -> None:
    train_step.main([])
    loader_throughput.main([])


if __name__ == "__main__":
    main()
