"""Reading YAML configs: PyYAML's safe loader, with ``1e-3`` read as a number.

PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``), so its safe loader reads
``1e-3`` as the string ``'1e-3'``. YAML 1.2 and the command line (jsonargparse) read a
number; every phosjax config file is read the same way, so a number anywhere in a config
(an option, a regularizer's threshold) is a number.
"""

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` (never runs code) that also reads an exponent without a dot."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str) -> Any:
    """The data of the YAML document ``text`` (raises `yaml.YAMLError` if malformed).

    Examples:
      >>> safe_load("lr: 1e-3\\nname: 1e-3x\\n")
      {'lr': 0.001, 'name': '1e-3x'}
    """
    return yaml.load(text, Loader=_Loader)
