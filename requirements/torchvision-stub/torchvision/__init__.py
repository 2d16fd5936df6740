"""Import-only stand-in for torchvision.

Composer and mosaicml-streaming import torchvision when they are imported, even for text models. On CPU machines
the matching torchvision wheel links CUDA libraries and fails to import ("operator torchvision::nms does not
exist"). This stand-in satisfies those imports; any attempt to *use* a vision component raises ImportError.
Never install it where a real torchvision works (GPU images ship one).
"""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0.0+dnax.stub"
IS_DNAX_STUB = True


class _Unavailable:
    """Placeholder for any torchvision class or function: subclassable, fails when used."""

    def __init__(self, *args, **kwargs):
        raise ImportError("torchvision is a dnax stand-in on this machine; vision components are unavailable")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)


def _make_attr(name):
    return type(name, (_Unavailable,), {"__module__": "torchvision"})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _make_attr(name)
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves any torchvision.* submodule as a stub module."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
__class__ = _StubModule  # noqa: F811  (module-level __getattr__ for `from torchvision import models`)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return importlib.import_module(f"torchvision.{name}")
