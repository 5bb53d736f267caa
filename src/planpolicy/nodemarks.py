"""Node positions of a loaded YAML document, found from its node tree when asked.

:mod:`planpolicy.loader` builds plain data from a composed node tree. Where
each value came from is only read when something is reported, so instead of
recording a position per node while building, the document keeps its node
tree and these read-only mappings walk it along the asked path:

- :class:`ValueMarks` maps a JSON path (``()`` is the root) to the position of
  the value node there;
- :class:`KeyMarks` maps the path of a mapping entry to the position of its key.

They hold exactly the paths the data is built along: a mapping entry is
reached through the first key the loader keeps (:func:`key_text`), a
collection with a refused tag has no entries below it, and a value refused
for its tag still has its own position. Both pickle as plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from planpolicy.yamltags import MAP, SEQ, STR, TIMESTAMP, VALUE

__all__ = ["JsonPath", "KeyMarks", "NodeMark", "ValueMarks", "key_text", "node_mark"]

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class NodeMark:
    """Where a node is in its file: 1-based start and end, and the scalar style.

    ``style`` is ``None`` for plain scalars and for collections, otherwise one of
    ``'``, ``"``, ``|`` or ``>``. The end is exclusive (one past the last
    character), as PyYAML reports it; for block scalars and block collections it
    is usually the start of the following line.
    """

    line: int
    column: int
    end_line: int
    end_column: int
    style: str | None


def node_mark(node: Node) -> NodeMark:
    """The position of ``node`` (1-based; a collection has no style)."""
    start, end = node.start_mark, node.end_mark
    style = (node.style or None) if isinstance(node, ScalarNode) else None
    return NodeMark(start.line + 1, start.column + 1, end.line + 1, end.column + 1, style)


def key_text(node: Node) -> str | None:
    """The string a mapping key node stands for, or ``None`` if the loader refuses it.

    Strings (and timestamps, which stay text) are keys, and so is a plain
    ``=``; anything else (numbers, booleans, null, merge keys, collections,
    other tags) is skipped with a diagnostic by the loader.
    """
    if not isinstance(node, ScalarNode):
        return None
    tag = node.tag
    if tag in (STR, TIMESTAMP):
        return node.value  # type: ignore[no-any-return]
    if tag == VALUE and not node.style and node.value == "=":
        return "="
    return None


class _Tree:
    """The node tree of one document and, per mapping walked, its kept entries."""

    __slots__ = ("entries", "root")

    def __init__(self, root: Node) -> None:
        self.root = root
        self.entries: dict[int, dict[str, tuple[Node, Node]]] = {}

    def mapping(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """Key -> (key node, value node) of the entries the loader keeps (first wins)."""
        found = self.entries.get(id(node))
        if found is None:
            found = {}
            for key_node, value_node in node.value:
                key = key_text(key_node)
                if key is not None and key not in found:
                    found[key] = (key_node, value_node)
            self.entries[id(node)] = found
        return found

    def children(self, node: Node) -> Iterator[tuple[str | int, Node, Node | None]]:
        """(path part, value node, key node or None) of the entries below ``node``."""
        if isinstance(node, SequenceNode):
            if node.tag == SEQ:
                for index, child in enumerate(node.value):
                    yield index, child, None
        elif isinstance(node, MappingNode) and node.tag == MAP:
            for key, (key_node, value_node) in self.mapping(node).items():
                yield key, value_node, key_node

    def entry(self, path: object) -> tuple[Node, Node | None] | None:
        """(value node, key node or None) at ``path``; ``None`` when there is none."""
        if type(path) is not tuple:
            return None
        node = self.root
        key_node: Node | None = None
        for part in path:
            if isinstance(node, SequenceNode):
                if node.tag != SEQ or not isinstance(part, int):
                    return None
                items = node.value
                if not 0 <= part < len(items):
                    return None
                node, key_node = items[part], None
            elif isinstance(node, MappingNode):
                if node.tag != MAP or not isinstance(part, str):
                    return None
                pair = self.mapping(node).get(part)
                if pair is None:
                    return None
                key_node, node = pair
            else:
                return None
        return node, key_node

    def walk(self) -> Iterator[tuple[JsonPath, Node, Node | None]]:
        """Every (path, value node, key node or None), parents first, in document order."""
        stack: list[tuple[JsonPath, Node, Node | None]] = [((), self.root, None)]
        while stack:
            path, node, key_node = stack.pop()
            yield path, node, key_node
            below = [((*path, part), child, key) for part, child, key in self.children(node)]
            stack.extend(reversed(below))


class _Marks(Mapping[JsonPath, NodeMark]):
    __slots__ = ("_tree",)

    def __init__(self, tree: _Tree) -> None:
        self._tree = tree

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __reduce__(self) -> tuple[type[dict[JsonPath, NodeMark]], tuple[dict[JsonPath, NodeMark]]]:
        return (dict, (dict(self.items()),))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} marks)"


class ValueMarks(_Marks):
    """Path -> position of the value node there (see the module docstring)."""

    __slots__ = ()

    def __init__(self, root: Node) -> None:
        super().__init__(_Tree(root))

    def __getitem__(self, path: JsonPath) -> NodeMark:
        found = self._tree.entry(path)
        if found is None:
            raise KeyError(path)
        return node_mark(found[0])

    def __contains__(self, path: object) -> bool:
        return self._tree.entry(path) is not None

    def __iter__(self) -> Iterator[JsonPath]:
        return (path for path, _node, _key in self._tree.walk())

    def keys_of(self) -> KeyMarks:
        """The key positions of the same document (sharing what was walked)."""
        return KeyMarks(self._tree)


class KeyMarks(_Marks):
    """Path of a mapping entry -> position of its key (see the module docstring)."""

    __slots__ = ()

    def _key_node(self, path: object) -> Node | None:
        found = self._tree.entry(path)
        return None if found is None else found[1]

    def __getitem__(self, path: JsonPath) -> NodeMark:
        key_node = self._key_node(path)
        if key_node is None:
            raise KeyError(path)
        return node_mark(key_node)

    def __contains__(self, path: object) -> bool:
        return self._key_node(path) is not None

    def __iter__(self) -> Iterator[JsonPath]:
        return (path for path, _node, key in self._tree.walk() if key is not None)
