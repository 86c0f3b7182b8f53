"""Reading YAML configs: PyYAML's safe loader, with ``1e-3`` read as a number.

PyYAML follows YAML 1.1, where a float's exponent needs a dot before it and a sign
(``1.0e-3``), so its safe loader reads ``1e-3``, ``1.0e3`` and ``.5e3`` as strings. YAML
1.2 and the command line (jsonargparse) read a number; every phosjax config file is read
the same way, so a number anywhere in a config (an option, a regularizer's threshold) is a
number.
"""

import os
import pathlib
import re
from collections.abc import Hashable
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` (never runs code) that also reads an exponent without a dot or a sign, and
    refuses a key given twice in one mapping (PyYAML keeps the later silently: a second
    ``grid:`` block would drop the first)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()  # the mapping nodes whose own keys were checked

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Checks the keys of ``node`` the first time, before merging (``<<``) adds keys
        that it may replace: a merged node is flattened in place, and an alias of it
        read later holds its merged keys beside its own."""
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<`: its keys may be replaced
                    continue
                key = self.construct_object(key_node)
                if not isinstance(key, Hashable):  # PyYAML refuses it ("unhashable key")
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice (the second would replace the first)",
                        key_node.start_mark,
                    )
                seen.add(key)
        super().flatten_mapping(node)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def safe_load(text: str, name: str = "<unicode string>") -> Any:
    """The data of the YAML document ``text`` (raises `yaml.YAMLError` if malformed, saying
    where in ``name``: the file it was read from).

    Examples:
      >>> safe_load("lr: 1e-3\\nname: 1e-3x\\n")
      {'lr': 0.001, 'name': '1e-3x'}
      >>> safe_load("grid: {steps: 3}\\ngrid: {batch_size: 8}\\n")
      Traceback (most recent call last):
      ...
      yaml.constructor.ConstructorError: while reading a mapping
      ...
      found the key 'grid' twice (the second would replace the first)
      ...
    """
    loader = _Loader(text)
    loader.name = name  # the marks of its errors: the line, the column and the text there
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_file(path: str | pathlib.Path) -> Any:
    """The data of the YAML file at ``path`` (`safe_load`), a leading ``~`` the home
    directory.

    Examples:
      >>> read_file("/no/such.yaml")
      Traceback (most recent call last):
      ...
      ValueError: config file '/no/such.yaml' does not exist.

    Raises:
      ValueError: naming the file and why it cannot be read: an empty path, missing, a
        directory, not readable, not UTF-8 text or not valid YAML.
    """
    if str(path) == "":  # a Path would read it as ".", the working directory
        raise ValueError("config file path is empty; give a YAML file's path.")
    path = pathlib.Path(os.path.expanduser(path))  # "~/cfg.yaml" as a shell reads it
    try:
        return safe_load(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError as error:
        raise ValueError(f"config file {str(path)!r} does not exist.") from error
    except IsADirectoryError as error:
        raise ValueError(f"config file {str(path)!r} is a directory, not a file.") from error
    except OSError as error:
        raise ValueError(f"config file {str(path)!r} cannot be read: {error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text: {error}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {error}") from error
