"""Loading each function's handler from its own folder, as Lambda would, without module clashes."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from localdev.template import Function, Template

Handler = Callable[[dict[str, Any], Any], Any]


def add_layers(template: Template) -> None:
    """Make the layer importable (`from taskline import ...`), as /opt/python is in Lambda."""
    for path in template.layer_paths:
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


# Requests arrive on several threads of the local server; the first ones for a function must
# not see its module half-imported (in sys.modules before its code has run).
_IMPORT_LOCK = threading.Lock()


def load_module(function: Function) -> ModuleType:
    """Import the handler's module under a name unique to the function (every one is `app.py`)."""
    module_file, _, _ = function.handler.rpartition(".")
    source = Path(function.code_uri) / f"{module_file.replace('.', '/')}.py"
    name = f"_taskline_fn_{function.logical_id}"
    with _IMPORT_LOCK:
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def load_handler(function: Function) -> Handler:
    module = load_module(function)
    handler: Handler = getattr(module, function.handler.rpartition(".")[2])
    return handler
