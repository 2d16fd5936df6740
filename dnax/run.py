"""Command line: resolve an experiment, mutate it, show it, build it, save it, fit it.

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
import inspect
import linecache
import os
import pkgutil
import re
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable

import fiddle as fdl
from fiddle.experimental import serialization

from dnax import fiddlers as builtin_fiddlers
from dnax.atomic import atomic_write_bytes


class UsageError(Exception):
    """A bad command line or config path: reported as one line, exit status 2."""


class ConfigBuildError(ValueError):
    """A config value that one of dnax's own classes or functions refused while the config was built (e.g.
    `model.backbone.s_lstm_at=[0, 9]` for 4 blocks): the config path, the class, and the refusal, on one line."""


_REPOSITORY = Path(__file__).resolve().parents[1]
_OWN_CODE = tuple(str(_REPOSITORY / d) + os.sep for d in ("dnax", "experiments", "kernels", "data_tools"))
_FIDDLE_CONTEXT = re.compile(r"failed to construct or call (\S+) at <root>\.?(\S*) with")


def _build(cfg: fdl.Buildable) -> Any:
    """`fdl.build(cfg)`; a ValueError / NotImplementedError that a `raise` statement in dnax's own code raised
    while building (a refusal written for users) becomes a ConfigBuildError naming the config path, e.g.
    "model.backbone (XLSTMLM): s_lstm_at [0, 9] outside 0..3". Anything else (raised in torch or a library, or by
    a builtin call inside dnax: a bug) keeps its traceback."""
    try:
        return fdl.build(cfg)
    except (ValueError, NotImplementedError) as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code.co_filename if tb is not None else ""
        refused = code.startswith(_OWN_CODE) and linecache.getline(code, tb.tb_lineno).lstrip().startswith("raise")
        if not refused or _is_user_error(e):
            raise  # not a refusal of ours (keeps its traceback), or already one line of its own (missing data)
        text = "\n".join([str(e), *getattr(e, "__notes__", [])])
        where = _FIDDLE_CONTEXT.search(text)
        prefix = f"{where.group(2) or 'config'} ({where.group(1)}): " if where else ""
        raise ConfigBuildError(prefix + (str(e).splitlines() or [type(e).__name__])[0]) from e


# -- resolution -----------------------------------------------------------------------------------------------
def _module_names(package: str) -> list[str]:
    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)
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
    try:
        args = ast.literal_eval(f"({args_text},)") if args_text else ()
    except (ValueError, SyntaxError):
        raise UsageError(f"cannot parse the arguments of fiddler {token!r}: they are Python literals, "
                         f"e.g. seq_len(2048), nan_guard('skip')") from None
    try:
        inspect.signature(fn).bind(cfg, *args)
    except TypeError as e:
        raise UsageError(f"fiddler {token!r}: {e}; it is {name}{_public_signature(fn)}") from None
    try:
        fn(cfg, *args)
    except builtin_fiddlers.FiddlerError as e:
        raise UsageError(str(e)) from None


def _public_signature(fn: Callable) -> str:
    """`fn`'s signature without its leading config parameter: `(n: int)`, `(action: str = 'stop')`, `()`."""
    try:
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
    except NameError:  # an annotation that does not resolve: show it as written
        params = list(inspect.signature(fn).parameters.values())[1:]
    return str(inspect.Signature(params))


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
    if isinstance(obj, dict):
        return [str(k) for k in obj]
    if isinstance(obj, fdl.Buildable):
        try:
            return list(inspect.signature(obj.__fn_or_cls__).parameters) + list(obj.__arguments__)
        except (TypeError, ValueError):
            return list(obj.__arguments__)
    return []


def _get(obj: Any, key: str | int, done: str) -> Any:
    try:
        return obj[key] if isinstance(key, int) or isinstance(obj, dict) else getattr(obj, key)
    except (AttributeError, IndexError, KeyError, TypeError):
        where = done or "config"
        full = _join(done, key)
        raise UsageError(f"config path {full!r} not found: {where} has no "
                         f"{'item ' + str(key) if isinstance(key, int) else repr(key)}"
                         f"{_suggest(str(key), _fields(obj))}") from None


def _join(done: str, key: str | int) -> str:
    return f"{done}[{key}]" if isinstance(key, int) else f"{done}.{key}" if done else key


def set_path(cfg: fdl.Buildable, path: str, value: Any) -> None:
    """Set `a.b[0].c = value` on a fiddle config, failing with a one-line error on an unknown field. A dict in the
    config (e.g. Mamba's `ssm_cfg`) takes `...ssm_cfg.d_state=128` for a key it already has."""
    parts = _split_path(path)
    obj, done = cfg, ""
    for key in parts[:-1]:
        obj = _get(obj, key, done)
        done = _join(done, key)
    last = parts[-1]
    try:
        if isinstance(last, int):
            obj[last] = value
        elif isinstance(obj, dict):
            if last not in obj:
                raise KeyError(last)
            obj[last] = value
        else:
            if isinstance(obj, fdl.Buildable) and last not in _fields(obj):
                raise AttributeError
            if isinstance(obj, fdl.Buildable):
                _check_type(obj, last, value, path)
            setattr(obj, last, value)
    except (AttributeError, TypeError, IndexError, KeyError):
        what = (f"has no key {last!r}{_suggest(str(last), _fields(obj))} (to replace the whole dict: {done}={{...}})"
                if isinstance(obj, dict) else f"has no field {last!r}{_suggest(str(last), _fields(obj))}")
        raise UsageError(f"cannot set {path!r}: {done or 'config'} {what}") from None


def _type_hint(obj: fdl.Buildable, field: str) -> Any:
    """The annotation of `field` on the config's function or class; None where there is none or it cannot resolve."""
    target = obj.__fn_or_cls__
    try:
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    except Exception:  # noqa: BLE001 - unresolvable forward references, builtins: no check
        return None
    return hints.get(field)


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether `value` fits the annotation `hint`: True, False, or None where the hint is beyond this check
    (modules, sequences, Composer types); only a definite False is an error."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(h, value) for h in typing.get_args(hint)]
        return True if True in verdicts else None if None in verdicts else False
    return None


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def _check_type(obj: fdl.Buildable, field: str, value: Any, path: str) -> None:
    """A UsageError when an override's value cannot fit the field's annotation (`d_model='abc'`, `d_model=[3`)."""
    if isinstance(value, fdl.Buildable):
        return
    hint = _type_hint(obj, field)
    if hint is not None and _accepts(hint, value) is False:
        owner = getattr(obj.__fn_or_cls__, "__name__", "the config")
        raise UsageError(f"cannot set {path!r} to {value!r}: {owner}'s {field} is {_describe(hint)}")


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


def run_dir_of(cfg: fdl.Buildable, run_name: str | None = None) -> Path:
    """The run directory (of `run_name`, default the config's): the parent of the trainer's checkpoint folder."""
    return Path(cfg.trainer.save_folder.format(run_name=run_name or cfg.trainer.run_name)).parent


def _default_run_name(experiment: str, tokens: list[str], cfg: fdl.Buildable) -> str:
    """`<experiment>-<fiddlers>-<time>`, with `-2`, `-3`, ... when a run directory of that name exists (two runs
    started in one second would otherwise share it, the second resuming the first); under a multi-process launch
    (WORLD_SIZE > 1) rank 0's name, broadcast over the process group (initialized here for the device the trainer
    will use), so all ranks share one run."""
    tag = "-".join(t for t in tokens if "=" not in t and "(" not in t)
    base = "-".join(filter(None, [experiment.rsplit(".", 1)[-1], tag, time.strftime("%Y%m%d-%H%M%S")]))
    name, n = base, 2
    while cfg.trainer.save_folder and run_dir_of(cfg, name).exists():
        name, n = f"{base}-{n}", n + 1
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from composer.utils import dist

        dist.initialize_dist(cfg.trainer.device)
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
    """Seed, build `cfg`, save it to `<run_dir>/config.json` and call it; returns what the run returns (a Trainer).

    A config without `trainer.run_name` gets one from the current time.
    """
    from composer.utils import reproducibility

    from dnax.train import CheckpointMismatchError, TrainerArgumentError

    if cfg.trainer.run_name is None:
        cfg.trainer.run_name = _default_run_name(getattr(cfg, "__name__", "run"), [], cfg)
    reproducibility.seed_all(cfg.trainer.seed if cfg.trainer.seed is not None else 17)
    built = _build(cfg)  # before saving: a config that does not build (bad value, missing data) leaves no run dir
    run_dir = run_dir_of(cfg)
    previous = (run_dir / "config.json").read_bytes() if save and (run_dir / "config.json").is_file() else None
    if save:
        print(f"config: {save_config(cfg, run_dir)}", flush=True)
    try:
        return built() if callable(built) else built
    except (CheckpointMismatchError, TrainerArgumentError):  # raised before any training: leave the run dir as it was
        if save:
            _restore_run_dir(run_dir, previous)
        raise


def _restore_run_dir(run_dir: Path, previous_config: bytes | None) -> None:
    """Put back the config.json a failed start replaced; a run dir that this start created goes if nothing else was
    written into it."""
    config = run_dir / "config.json"
    if previous_config is not None:
        atomic_write_bytes(config, previous_config)
        return
    config.unlink(missing_ok=True)
    for d in sorted((p for p in [run_dir, *run_dir.rglob("*")] if p.is_dir()), key=lambda p: len(p.parts),
                    reverse=True):
        if not any(d.iterdir()):
            d.rmdir()


def _fiddlers_help() -> str:
    """The fiddlers every experiment takes (experiments.common, dnax.fiddlers), one line each, and examples: the
    epilog of --help (an experiment's module may add its own)."""
    lines = ["fiddlers (an experiment's module may add more):"]
    for source in _fiddler_sources(None):
        for name in _functions_of(source.__name__):
            fn = getattr(source, name)
            if name.startswith("_") or isinstance(fn, type):
                continue
            params = list(inspect.signature(fn).parameters.values())
            if not params or params[0].name != "cfg" or any(p.kind in (p.VAR_KEYWORD, p.KEYWORD_ONLY)
                                                            for p in params):
                continue  # not a fiddler, or not one a command line can call (keyword arguments)
            doc = (inspect.getdoc(fn) or "").split("\n")[0].split(". ")[0].split(" (")[0].rstrip(".")
            lines.append(f"  {name}{_public_signature(fn)}".ljust(34) + f" {doc}")
    lines += ["", "examples:",
              "  python -m dnax.run experiments.hg38_xlstm sample                  # bundled DNA, CPU",
              "  python -m dnax.run experiments.hg38_mamba tiny model.backbone.ssm_cfg.d_state=128 --dry-run",
              "  python -m dnax.run experiments.hg38_xlstm bf16 'steps(10000)' trainer.run_name=my_run"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnax.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_fiddlers_help())
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
            cfg.trainer.run_name = _default_run_name(name, tokens, cfg)
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
    """Errors whose message is written for users: data_tools.InputError, the loaders' missing-data errors (hg38
    shards; a fine-tuning task's files, or the hub offline without a cache: TaskDataError), the
    object store's (unreachable, refused, no such bucket; a shard that cannot be downloaded), a reference model
    that cannot be fetched or does not fit (dnax.convert, dnax.download), and a trainer argument Composer rejects or
    a resumed checkpoint that does not fit (dnax.train), a config value dnax's own code refused (ConfigBuildError)."""
    from dnax.convert import ConversionError
    from dnax.data.downstream import TaskDataError
    from dnax.data.object_store import ObjectStoreError, ShardDownloadError
    from dnax.data.sources import BatchSizeError
    from dnax.download import DownloadError
    from dnax.train import CheckpointMismatchError, TrainerArgumentError

    try:
        from data_tools import InputError
    except ImportError:
        InputError = ()  # noqa: N806
    return (isinstance(e, (InputError, ObjectStoreError, ShardDownloadError, ConversionError, DownloadError,
                           CheckpointMismatchError, TrainerArgumentError, BatchSizeError, TaskDataError,
                           ConfigBuildError))
            or (isinstance(e, FileNotFoundError) and "data_tools" in str(e)))


if __name__ == "__main__":
    sys.exit(main())
