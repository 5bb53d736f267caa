"""The YAML core-schema tags the loader and the node positions look at."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BOOL",
    "CORE",
    "FLOAT",
    "INT",
    "MAP",
    "MERGE",
    "NULL",
    "SEQ",
    "STR",
    "TIMESTAMP",
    "VALUE",
]

CORE: Final = "tag:yaml.org,2002:"
STR: Final = CORE + "str"
INT: Final = CORE + "int"
FLOAT: Final = CORE + "float"
BOOL: Final = CORE + "bool"
NULL: Final = CORE + "null"
TIMESTAMP: Final = CORE + "timestamp"
MERGE: Final = CORE + "merge"
VALUE: Final = CORE + "value"
SEQ: Final = CORE + "seq"
MAP: Final = CORE + "map"
