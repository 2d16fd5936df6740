"""`dnax-launch`: Composer's multi-process launcher, for dnax runs.

    dnax-launch -n 8 -m dnax.run experiments.hg38_xlstm            # 8 processes on this node
    dnax-launch -n 8 --world_size 16 --node_rank 0 --master_addr HOST -m dnax.run experiments.hg38_xlstm

It is `composer` (composer.cli.launcher) under a dnax name: the same flags (`-n/--nproc`, `--world_size`,
`--node_rank`, `--master_addr`, `--master_port`, `-m` for a module) and environment variables. On CPU machines the
torchvision stand-in (requirements/torchvision-stub) is an installed package, so every child process imports
composer cleanly.
"""
import sys


def main() -> int:
    from composer.cli.launcher import main as composer_main

    return composer_main() or 0


if __name__ == "__main__":
    sys.exit(main())
