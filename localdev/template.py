"""Reading template.yaml (the one source of truth): functions, routes, environment, layer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Safe YAML that keeps intrinsic functions (!Ref, !Sub, ...) as {"Ref": ...} style dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    method: str  # "GET", ..., or "ANY"
    path: str  # API Gateway syntax: /tasks/{task_id}, /{proxy+}

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves (method, path), else None."""
        if self.method not in ("ANY", method):
            return None
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                pattern += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                pattern += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                pattern += re.escape(part)
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Lower is preferred: no greedy variable, fewer variables, longer path, a named method."""
        greedy = "+}" in self.path
        variables = self.path.count("{")
        segments = len(self.path.split("/"))
        return (int(greedy), variables, -segments, int(self.method == "ANY"))


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    routes: tuple[Route, ...] = field(default_factory=tuple)
    timeout: int = 3


@dataclass(frozen=True)
class CorsConfiguration:
    """The HTTP API's CorsConfiguration (its origins are a deploy-time parameter)."""

    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    allow_methods: tuple[str, ...]
    max_age: int | None
    allow_credentials: bool


@dataclass(frozen=True)
class Template:
    functions: dict[str, Function]
    layer_paths: tuple[Path, ...]
    cors: CorsConfiguration | None = None

    def routes(self) -> list[tuple[Route, Function]]:
        return [(route, fn) for fn in self.functions.values() for route in fn.routes]

    def resolve(self, method: str, path: str) -> tuple[Route, Function, dict[str, str]] | None:
        """The function API Gateway would call for (method, path), as API Gateway chooses it."""
        candidates = []
        for route, fn in self.routes():
            params = route.match(method, path)
            if params is not None:
                candidates.append((route.specificity, route, fn, params))
        if not candidates:
            return None
        _, route, fn, params = min(candidates, key=lambda c: c[0])
        return route, fn, params


# Conditions true only in the starter profile: `make run` serves the default profile (standard),
# so a value chosen by one of them takes its other branch.
_STARTER_ONLY = {"IsStarter", "UseDeadlineGate", "StarterNetwork"}


def _scalar(value: Any, parameters: dict[str, Any]) -> str:
    """Environment values: literals as they are, !Ref to a parameter as its default, the
    default profile's branch of a starter-only !If."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, _starter, other = value["Fn::If"]
        if condition in _STARTER_ONLY:
            return _scalar(other, parameters)
    if isinstance(value, dict) and "Ref" in value:
        return str(parameters.get(value["Ref"], {}).get("Default", ""))
    if isinstance(value, dict):
        return ""
    return str(value)


def _cors(document: dict[str, Any]) -> CorsConfiguration | None:
    """The CorsConfiguration of the HTTP API, as deployed when origins are configured."""
    for resource in document["Resources"].values():
        if resource["Type"] != "AWS::Serverless::HttpApi":
            continue
        config = resource.get("Properties", {}).get("CorsConfiguration")
        if isinstance(config, dict) and "Fn::If" in config:
            config = config["Fn::If"][1]  # the branch taken when CorsAllowedOrigins is set
        if not isinstance(config, dict):
            return None
        max_age = config.get("MaxAge")
        return CorsConfiguration(
            allow_headers=tuple(str(h) for h in config.get("AllowHeaders", [])),
            expose_headers=tuple(str(h) for h in config.get("ExposeHeaders", [])),
            allow_methods=tuple(str(m) for m in config.get("AllowMethods", [])),
            max_age=int(max_age) if max_age is not None else None,
            allow_credentials=bool(config.get("AllowCredentials", False)),
        )
    return None


def load(path: Path = TEMPLATE) -> Template:
    document = yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - safe subclass
    parameters = document.get("Parameters", {})
    global_function = document.get("Globals", {}).get("Function", {})
    global_env = global_function.get("Environment", {}).get("Variables", {})
    functions: dict[str, Function] = {}
    layers: list[Path] = []
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            layers.append(ROOT / properties["ContentUri"])
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        env = {**global_env, **properties.get("Environment", {}).get("Variables", {})}
        routes = tuple(
            Route(
                method=str(event["Properties"]["Method"]).upper(), path=event["Properties"]["Path"]
            )
            for event in properties.get("Events", {}).values()
            if event["Type"] == "HttpApi"
        )
        functions[logical_id] = Function(
            logical_id=logical_id,
            code_uri=ROOT / properties["CodeUri"],
            handler=properties.get("Handler", global_function.get("Handler")),
            environment={name: _scalar(value, parameters) for name, value in env.items()},
            routes=routes,
            timeout=int(_scalar(properties.get("Timeout", global_function.get("Timeout", 3)), {})),
        )
    return Template(functions=functions, layer_paths=tuple(layers), cors=_cors(document))
