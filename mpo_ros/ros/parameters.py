"""
ROS parameters declared from the config dataclasses, so defaults and ranges live in one place.

Each dataclass field becomes a parameter ``<prefix><field>`` (e.g. ``mpo.epsilon``) whose
descriptor carries the field's ``help`` text, its choices and its ``range`` as a
FloatingPointRange / IntegerRange. Values are read back into the dataclass, whose validation
(ConfigError) decides; a bad value becomes a :class:`ParameterError` naming the parameter.

At run time a parameter either takes effect or is refused: only the sections a node names in
``live`` can change (validated the same way, then handed to the node's callback, which applies
them before the next message is handled; a ValueError from it refuses the change with its
reason). Every other parameter is declared read-only (``ros2 param describe`` shows it) and
rclpy refuses a change with "Trying to set a read-only parameter".
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

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


def descriptor(name: str, f: dataclasses.Field, read_only: bool = False) -> ParameterDescriptor:
    """Descriptor with the field's help, choices, range and whether it is read-only."""
    text = f.metadata.get('help', '')
    if 'choices' in f.metadata:
        text += f" (one of: {', '.join(f.metadata['choices'])})"
    if read_only:
        text += ' [read-only at run time: set it at start]'
    desc = ParameterDescriptor(name=name, type=parameter_type(f), description=text,
                               read_only=read_only)
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

    def __init__(self, node: Node, sections: dict[str, type],
                 live: dict[str, Callable[[Any], None]] | None = None,
                 read_only: tuple[str, ...] = ()) -> None:
        """
        Declare every field of every section; ``sections`` maps prefix -> dataclass type.

        The prefix is '' for node-level settings or e.g. 'mpo.' for MPOConfig. ``live`` maps
        the prefixes that may change at run time to a callback taking the new, validated
        section; parameters of other sections, and those named in ``read_only``, are
        declared read-only.
        """
        self.node = node
        self.sections = sections
        self.live = dict(live or {})
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
                fixed = prefix not in self.live or name in read_only
                try:
                    node.declare_parameter(name, value, descriptor(name, f, fixed))
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
        """Validate a runtime change and apply it through the live callbacks, or refuse it."""
        overrides = {p.name: p.value for p in params if p.name in self.owner}
        if not overrides:
            return SetParametersResult(successful=True)
        try:
            sections = self.read(overrides)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        touched = {self.owner[name][0] for name in overrides}
        for prefix in touched:
            if prefix not in self.live:      # read-only: rclpy refuses before this callback
                return SetParametersResult(successful=False,
                                           reason=f'{prefix}* is read-only at run time')
            try:
                self.live[prefix](sections[prefix])
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)


def declare_config(node: Node, sections: dict[str, type],
                   live: dict[str, Callable[[Any], None]] | None = None,
                   read_only: tuple[str, ...] = ()) -> tuple[ConfigParameters, dict]:
    """Declare and read ``sections`` in one go (raises ParameterError); see ConfigParameters."""
    params = ConfigParameters(node, sections, live, read_only)
    return params, params.read()
