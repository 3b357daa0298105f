"""
ROS parameters declared from the config dataclasses, so defaults and ranges live in one place.

Each dataclass field becomes a parameter ``<prefix><field>`` (e.g. ``mpo.epsilon``) whose
descriptor carries the field's ``help`` text, its choices and its ``range`` as a
FloatingPointRange / IntegerRange. Values are read back into the dataclass, whose validation
(ConfigError) decides; a bad value becomes a :class:`ParameterError` naming the parameter.
Runtime changes are checked the same way by an on-set-parameters callback and rejected with
the reason.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from mpo_ros.core.config import ConfigError
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rcl_interfaces.msg import ParameterType, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter


class ParameterError(ValueError):
    """A parameter value is invalid; ``name`` is the ROS parameter name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f'invalid parameter {name!r}: {reason}')
        self.name = name


def _element_type(f: dataclasses.Field) -> type:
    """Return the scalar Python type of a field (the element type for tuples)."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
        else f.default
    if isinstance(default, tuple):
        text = str(f.type)
        return int if 'int' in text else float if 'float' in text else str
    return type(default)


def parameter_type(f: dataclasses.Field) -> int:
    """ROS ParameterType of a dataclass field."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
        else f.default
    kind = _element_type(f)
    if isinstance(default, tuple):
        return {int: ParameterType.PARAMETER_INTEGER_ARRAY,
                float: ParameterType.PARAMETER_DOUBLE_ARRAY}.get(
                    kind, ParameterType.PARAMETER_STRING_ARRAY)
    return {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE}.get(kind, ParameterType.PARAMETER_STRING)


def descriptor(name: str, f: dataclasses.Field) -> ParameterDescriptor:
    """Descriptor with the field's help, choices and range."""
    text = f.metadata.get('help', '')
    if 'choices' in f.metadata:
        text += f" (one of: {', '.join(f.metadata['choices'])})"
    desc = ParameterDescriptor(name=name, type=parameter_type(f), description=text)
    rng = f.metadata.get('range')
    if rng is not None:
        if desc.type == ParameterType.PARAMETER_DOUBLE:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
        elif desc.type == ParameterType.PARAMETER_INTEGER:
            desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]),
                                               step=0)]
        else:
            desc.additional_constraints = f'each element in [{rng[0]}, {rng[1]}]'
    return desc


class ConfigParameters:
    """Declares dataclass sections as parameters on a node and reads them back."""

    def __init__(self, node: Node, sections: dict[str, type]) -> None:
        """
        Declare every field of every section; ``sections`` maps prefix -> dataclass type.

        The prefix is '' for node-level settings or e.g. 'mpo.' for MPOConfig.
        """
        self.node = node
        self.sections = sections
        self.owner: dict[str, tuple[str, dataclasses.Field]] = {}
        for prefix, cls in sections.items():
            for f in dataclasses.fields(cls):
                name = prefix + f.name
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                    else f.default
                value = list(default) if isinstance(default, tuple) else default
                if value == []:
                    # An empty list has no element type: declare by type, unset means ().
                    value = Parameter.Type(parameter_type(f))
                try:
                    node.declare_parameter(name, value, descriptor(name, f))
                except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                    raise ParameterError(name, str(exc).strip()) from exc
                self.owner[name] = (prefix, f)
        node.add_on_set_parameters_callback(self._on_set)

    def read(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return {prefix: validated dataclass instance}; ParameterError names the culprit."""
        overrides = overrides or {}
        out = {}
        for prefix, cls in self.sections.items():
            kwargs = {}
            for f in dataclasses.fields(cls):
                name = prefix + f.name
                try:
                    value = overrides[name] if name in overrides else \
                        self.node.get_parameter(name).value
                except ParameterUninitializedException:
                    value = ()
                kwargs[f.name] = tuple(value) if isinstance(value, (list, tuple)) or \
                    hasattr(value, 'tolist') else value
            try:
                out[prefix] = cls(**kwargs)
            except ConfigError as exc:
                match = re.match(r'(\w+)\.(\w+)', str(exc))
                field = match.group(2) if match and match.group(1) == cls.__name__ else None
                raise ParameterError(prefix + field if field else prefix + '*',
                                     str(exc)) from exc
        return out

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        """Reject a runtime change that the dataclass validation refuses."""
        overrides = {p.name: p.value for p in params if p.name in self.owner}
        if not overrides:
            return SetParametersResult(successful=True)
        try:
            self.read(overrides)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)


def declare_config(node: Node, sections: dict[str, type]) -> tuple[ConfigParameters, dict]:
    """Declare and read ``sections`` in one go (raises ParameterError)."""
    params = ConfigParameters(node, sections)
    return params, params.read()
