"""Command line: resolve an experiment, mutate it, show it, save it, build it, fit it.

    python -m dnax.run <experiment import path> [fiddler ...] [a.b.c=value ...] [--dry-run]
    python -m dnax.run --config-file runs/<name>/config.json [fiddler ...] [a.b=value ...]
    python -m dnax.run --list

An experiment is a nullary function returning a fiddle config, found by import path: `experiments.hg38_xlstm`
names the function `hg38_xlstm` in module `experiments.hg38_xlstm`; `experiments.hg38_xlstm.hg38_xlstm_clm` names
another function there. A fiddler is a function `(cfg, *args)` that mutates the config, looked up first in the
experiment's module, then in `dnax.fiddlers`; it may take literal arguments: `seq_len(2048)`. An override
`path=value` sets one field (`model.backbone.n_layer=8`, `trainer.algorithms[0].p=0.3`); the value is a Python
literal, or a plain string. Fiddlers and overrides apply in command-line order.

From Python: `cfg = experiments.hg38_xlstm.hg38_xlstm(); cfg.model.backbone.n_layer = 8; dnax.run.run(cfg)`.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import os
import pkgutil
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import fiddle as fdl
from fiddle.experimental import serialization

from dnax import fiddlers as builtin_fiddlers
from dnax.atomic import atomic_write_bytes


class UsageError(Exception):
    """A bad command line or config path: reported as one line, exit status 2."""


# -- resolution -----------------------------------------------------------------------------------------------
def _module_names(package: str) -> list[str]:
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _import_module(path: str):
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name and path.startswith(e.name) or path == e.name:
            return None
        raise


def resolve_experiment(path: str) -> tuple[Callable[[], Any], Any]:
    """Import path -> (experiment function, its module)."""
    module = _import_module(path)
    if module is not None:
        fn_name = path.rsplit(".", 1)[-1]
    else:
        parent, _, fn_name = path.rpartition(".")
        module = _import_module(parent) if parent else None
        if module is None:
            top = path.split(".")[0]
            known = _module_names(top) + [f"{m}.{f}" for m in _module_names(top) for f in _functions_of(m)]
            raise UsageError(f"no experiment module {path!r}{_suggest(path, known or _module_names('experiments'))}")
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        candidates = [f"{module.__name__}.{n}" for n in _functions_of(module.__name__)]
        if hasattr(module, "__path__"):  # a package: the path may name a misspelt module in it
            candidates += _module_names(module.__name__)
        raise UsageError(f"no experiment {path!r}{_suggest(path, candidates)}")
    return fn, module


def _functions_of(module_name: str) -> list[str]:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - only used for suggestions
        return []
    return [n for n, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == module_name]


def list_experiments(package: str = "experiments") -> list[tuple[str, str]]:
    """(import path, first docstring line) of every registered experiment in `package`."""
    from experiments.common import registered

    for name in _module_names(package):
        importlib.import_module(name)
    return [(path, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
            for path, fn in sorted(registered().items())]


# -- mutation ---------------------------------------------------------------------------------------------------
_FIDDLER_RE = re.compile(r"^([A-Za-z_]\w*)(?:\((.*)\))?$", re.S)
_PATH_RE = re.compile(r"([A-Za-z_]\w*)|\[(-?\d+)\]")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _fiddler_sources(module) -> list:
    """Where fiddlers are looked up, in order: the experiment's module, experiments.common, dnax.fiddlers."""
    sources = [module] if module is not None else []
    common = _import_module("experiments.common")
    return sources + ([common] if common is not None else []) + [builtin_fiddlers]


def apply_fiddler(cfg: fdl.Buildable, token: str, module=None) -> None:
    match = _FIDDLER_RE.match(token)
    if not match:
        raise UsageError(f"cannot parse fiddler {token!r}: expected name or name(args)")
    name, args_text = match.groups()
    fn = None
    for source in _fiddler_sources(module):
        fn = getattr(source, name, None)
        if callable(fn):
            break
    if not callable(fn) or name.startswith("_"):
        known = [n for source in _fiddler_sources(module) for n in _functions_of(source.__name__)]
        raise UsageError(f"unknown fiddler {name!r}{_suggest(name, known)}")
    args = ast.literal_eval(f"({args_text},)") if args_text else ()
    try:
        fn(cfg, *args)
    except builtin_fiddlers.FiddlerError as e:
        raise UsageError(str(e)) from None


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for chunk in path.split("."):
        pos = 0
        for m in _PATH_RE.finditer(chunk):
            if m.start() != pos:
                raise UsageError(f"cannot parse config path {path!r}")
            parts.append(m.group(1) if m.group(1) else int(m.group(2)))
            pos = m.end()
        if pos != len(chunk) or not chunk:
            raise UsageError(f"cannot parse config path {path!r}")
    return parts


def _fields(obj: Any) -> list[str]:
    if isinstance(obj, fdl.Buildable):
        import inspect

        try:
            return list(inspect.signature(obj.__fn_or_cls__).parameters) + list(obj.__arguments__)
        except (TypeError, ValueError):
            return list(obj.__arguments__)
    return []


def _get(obj: Any, key: str | int, done: str) -> Any:
    try:
        return obj[key] if isinstance(key, int) else getattr(obj, key)
    except (AttributeError, IndexError, KeyError, TypeError):
        where = done or "config"
        full = _join(done, key)
        raise UsageError(f"config path {full!r} not found: {where} has no "
                         f"{'item ' + str(key) if isinstance(key, int) else repr(key)}"
                         f"{_suggest(str(key), _fields(obj))}") from None


def _join(done: str, key: str | int) -> str:
    return f"{done}[{key}]" if isinstance(key, int) else f"{done}.{key}" if done else key


def set_path(cfg: fdl.Buildable, path: str, value: Any) -> None:
    """Set `a.b[0].c = value` on a fiddle config, failing with a one-line error on an unknown field."""
    parts = _split_path(path)
    obj, done = cfg, ""
    for key in parts[:-1]:
        obj = _get(obj, key, done)
        done = _join(done, key)
    last = parts[-1]
    try:
        if isinstance(last, int):
            obj[last] = value
        else:
            if isinstance(obj, fdl.Buildable) and last not in _fields(obj):
                raise AttributeError
            setattr(obj, last, value)
    except (AttributeError, TypeError, IndexError):
        raise UsageError(f"cannot set {path!r}: {done or 'config'} has no field {last!r}"
                         f"{_suggest(str(last), _fields(obj))}") from None


def mutate(cfg: fdl.Buildable, tokens: list[str], module=None) -> fdl.Buildable:
    for token in tokens:
        if "=" in token and not token.split("=", 1)[0].endswith(")"):
            path, _, text = token.partition("=")
            set_path(cfg, path.strip(), _parse_value(text.strip()))
        else:
            apply_fiddler(cfg, token, module)
    return cfg


# -- showing and saving -------------------------------------------------------------------------------------------
def flatten(cfg: Any, prefix: str = "") -> list[str]:
    """`path = value` lines for every explicitly set field (defaults omitted)."""
    if isinstance(cfg, fdl.Buildable):
        kind = "Partial" if isinstance(cfg, fdl.Partial) else "Config"
        fn = cfg.__fn_or_cls__
        lines = [f"{prefix or '<root>'} = {kind}({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)})"]
        for name, value in cfg.__arguments__.items():
            lines += flatten(value, f"{prefix}.{name}" if prefix else name)
        return lines
    if isinstance(cfg, (list, tuple)) and any(isinstance(v, fdl.Buildable) for v in cfg):
        return [line for i, v in enumerate(cfg) for line in flatten(v, f"{prefix}[{i}]")]
    return [f"{prefix} = {cfg!r}"]


def run_dir_of(cfg: fdl.Buildable) -> Path:
    """The run directory: the parent of the trainer's checkpoint folder."""
    return Path(cfg.trainer.save_folder.format(run_name=cfg.trainer.run_name)).parent


def _default_run_name(experiment: str, tokens: list[str], device: str | None = None) -> str:
    """`<experiment>-<fiddlers>-<time>`; under a multi-process launch (WORLD_SIZE > 1) rank 0's name, broadcast
    over the process group (initialized here for the `device` the trainer will use), so all ranks share one run."""
    tag = "-".join(t for t in tokens if "=" not in t and "(" not in t)
    name = "-".join(filter(None, [experiment.rsplit(".", 1)[-1], tag, time.strftime("%Y%m%d-%H%M%S")]))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from composer.utils import dist

        dist.initialize_dist(device)
        names = [name]
        dist.broadcast_object_list(names, src=0)
        name = names[0]
    return name


def save_config(cfg: fdl.Buildable, run_dir: Path) -> Path:
    path = run_dir / "config.json"
    atomic_write_bytes(path, serialization.dump_json(cfg, indent=2).encode())
    return path


# -- running ----------------------------------------------------------------------------------------------------
def run(cfg: fdl.Buildable, *, save: bool = True):
    """Save `cfg` to `<run_dir>/config.json`, seed, build and call it; returns what the run returns (a Trainer).

    A config without `trainer.run_name` gets one from the current time.
    """
    from composer.utils import reproducibility

    if cfg.trainer.run_name is None:
        cfg.trainer.run_name = _default_run_name(getattr(cfg, "__name__", "run"), [], cfg.trainer.device)
    if save:
        print(f"config: {save_config(cfg, run_dir_of(cfg))}", flush=True)
    reproducibility.seed_all(cfg.trainer.seed if cfg.trainer.seed is not None else 17)
    built = fdl.build(cfg)
    return built() if callable(built) else built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnax.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", help="import path of an experiment function")
    parser.add_argument("mutations", nargs="*", help="fiddlers (name or name(args)) and overrides (path=value)")
    parser.add_argument("--config-file", help="replay a saved run_dir/config.json instead of an experiment")
    parser.add_argument("--dry-run", action="store_true", help="print the final config and stop")
    parser.add_argument("--list", action="store_true", help="list the registered experiments")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for path, doc in list_experiments():
                print(f"{path:55s} {doc}")
            return 0
        tokens = list(args.mutations)
        if args.config_file:
            if args.experiment:
                tokens.insert(0, args.experiment)
            path = Path(args.config_file)
            if not path.is_file():
                raise UsageError(f"config file {str(path)!r} not found")
            try:
                cfg = serialization.load_json(path.read_text())
            except Exception as e:  # noqa: BLE001
                raise UsageError(f"cannot read config file {str(path)!r}: {e}") from None
            module, name = None, path.parent.name
        elif args.experiment:
            fn, module = resolve_experiment(args.experiment)
            cfg = fn()
            name = args.experiment
        else:
            parser.print_usage()
            raise UsageError("give an experiment import path, --config-file or --list")
        mutate(cfg, tokens, module)
        if cfg.trainer.run_name is None:
            cfg.trainer.run_name = _default_run_name(name, tokens, cfg.trainer.device)
        print("\n".join(flatten(cfg)), flush=True)
        if args.dry_run:
            return 0
        run(cfg)
    except UsageError as e:
        print(f"dnax.run: error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as e:
        # bad input found while building or reading (missing data, malformed files, object store): one line
        if not _is_user_error(e):
            raise
        # fiddle appends its build context on further lines; the first line is the message written for users
        print(f"dnax.run: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def _is_user_error(e: BaseException) -> bool:
    """Errors whose message is written for users: data_tools.InputError, the loaders' missing-data errors, the
    object store's (unreachable, refused, no such bucket; a shard that cannot be downloaded), and a reference model
    that cannot be fetched or does not fit (dnax.convert, dnax.download)."""
    from dnax.convert import ConversionError
    from dnax.data.object_store import ObjectStoreError, ShardDownloadError
    from dnax.download import DownloadError

    try:
        from data_tools import InputError
    except ImportError:
        InputError = ()  # noqa: N806
    return (isinstance(e, (InputError, ObjectStoreError, ShardDownloadError, ConversionError, DownloadError))
            or (isinstance(e, FileNotFoundError) and "data_tools" in str(e)))


if __name__ == "__main__":
    sys.exit(main())
