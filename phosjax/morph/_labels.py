"""Axis labels: a union-find over the axes of a traced program.

Every axis of every value gets a label. Axes that must hold the same channels (a residual
add, a contraction between an activation and a kernel) are unioned. A label may be the
product of smaller labels (a flattened ``(length, channels)`` axis) or their sum (a
concatenation); a label that cannot be pruned (an input axis, a reduced axis) is pinned
with the reason, which names the operation.
"""

import dataclasses

import numpy as np

PROD = "prod"
SUM = "sum"


@dataclasses.dataclass
class Labels:
    """The union-find; labels are ints handed out by `new`."""

    parent: list[int] = dataclasses.field(default_factory=list)
    size: list[int] = dataclasses.field(default_factory=list)
    pinned: dict[int, str] = dataclasses.field(default_factory=dict)
    parts: dict[int, tuple[str, tuple[int, ...]]] = dataclasses.field(default_factory=dict)

    def new(self, size: int, pin: str | None = None) -> int:
        """A fresh label of ``size`` channels, pinned when ``pin`` gives a reason."""
        self.parent.append(len(self.parent))
        self.size.append(int(size))
        label = len(self.parent) - 1
        if pin is not None:
            self.pinned[label] = pin
        return label

    def find(self, label: int) -> int:
        """The representative of ``label``'s class."""
        while self.parent[label] != label:
            self.parent[label] = self.parent[self.parent[label]]
            label = self.parent[label]
        return label

    def pin(self, label: int, reason: str) -> None:
        """Marks ``label`` (and everything it is made of) as not prunable."""
        root = self.find(label)
        self.pinned.setdefault(root, reason)
        for child in self.parts.get(root, (None, ()))[1]:
            self.pin(child, reason)

    def reason(self, label: int) -> str | None:
        """Why ``label`` is pinned, or ``None``."""
        return self.pinned.get(self.find(label))

    def union(self, a: int, b: int, where: str) -> None:
        """Declares that axes labelled ``a`` and ``b`` hold the same channels."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] != self.size[rb]:
            self.pin(ra, f"{where} ties axes of different sizes")
            self.pin(rb, f"{where} ties axes of different sizes")
            return
        parts_a, parts_b = self.parts.get(ra), self.parts.get(rb)
        self.parent[rb] = ra
        if rb in self.pinned:
            self.pin(ra, self.pinned.pop(rb))
        if parts_b is None:
            return
        self.parts.pop(rb)
        if parts_a is None:
            self.parts[ra] = parts_b
            if ra in self.pinned:
                self.pin(ra, self.pinned[ra])
            return
        sizes_a = [self.size[self.find(c)] for c in parts_a[1]]
        sizes_b = [self.size[self.find(c)] for c in parts_b[1]]
        if parts_a[0] == parts_b[0] and sizes_a == sizes_b:
            for child_a, child_b in zip(parts_a[1], parts_b[1], strict=True):
                self.union(child_a, child_b, where)
        else:
            for child in (*parts_a[1], *parts_b[1]):
                self.pin(child, f"{where} ties differently split axes")

    def compose(self, kind: str, children: list[int]) -> int:
        """A new label made of ``children`` (their product or their concatenation)."""
        sizes = [self.size[self.find(c)] for c in children]
        total = int(np.prod(sizes)) if kind == PROD else sum(sizes)
        label = self.new(total)
        self.parts[label] = (kind, tuple(children))
        return label

    def split(self, label: int, sizes: list[int], where: str, kind: str = PROD) -> list[int]:
        """Labels for ``label`` reshaped into axes of ``sizes`` (their product is its size),
        or, with ``kind`` `SUM`, cut into consecutive pieces of ``sizes`` along its axis
        (their sum is its size: a concatenation undone)."""
        root = self.find(label)
        current = self.parts.get(root)
        if current is not None and current[0] == kind:
            children = list(current[1])
            if [self.size[self.find(c)] for c in children] == sizes:
                return children
            if kind == PROD and (sizes[-1] == 1 or sizes[0] == 1):  # a unit axis on one side
                inner = self.split(label, [s for s in sizes if s != 1] or [1], where)
                return [self.new(1) if s == 1 else inner.pop(0) for s in sizes]
        if current is None:
            children = [self.new(s) for s in sizes]
            self.parts[root] = (kind, tuple(children))
            if root in self.pinned:
                self.pin(root, self.pinned[root])
            return children
        fresh = [self.new(s) for s in sizes]
        for child in fresh:
            self.pin(child, f"{where} splits a composite axis in a new way")
        self.pin(root, f"{where} splits a composite axis in a new way")
        return fresh

    def pin_self_products(self) -> None:
        """Pins each product of axes that share channels: an outer product of an axis with
        itself, flattened (bilinear pooling, ``(h[:, :, None] * h[:, None]).reshape(n, -1)``),
        holds two of its channels at a position, which `owners` cannot say."""
        for root, (kind, children) in list(self.parts.items()):
            atoms = [set(self.owners(child)) for child in children]
            if kind == PROD and len(set().union(*atoms)) < sum(map(len, atoms)):
                self.pin(root, "an outer product of an axis with itself holds two channels here")

    def owners(self, label: int, pinned_above: bool = False) -> dict[int, np.ndarray]:
        """``{atom: channel index per position}`` of the axis ``label`` (-1: not that atom).

        Atoms are unsplit, unpinned labels; positions of pinned atoms are left out.
        """
        root = self.find(label)
        size = self.size[root]
        pinned = pinned_above or root in self.pinned
        if root not in self.parts:
            return {} if pinned else {root: np.arange(size)}
        kind, children = self.parts[root]
        result: dict[int, np.ndarray] = {}
        if kind == SUM:
            offset = 0
            for child in children:
                child_size = self.size[self.find(child)]
                for atom, index in self.owners(child, pinned).items():
                    full = result.setdefault(atom, np.full(size, -1))
                    part = full[offset : offset + child_size]
                    full[offset : offset + child_size] = np.where(index >= 0, index, part)
                offset += child_size
            return result
        child_sizes = [self.size[self.find(c)] for c in children]
        for axis, child in enumerate(children):
            outer = int(np.prod(child_sizes[:axis]))
            inner = int(np.prod(child_sizes[axis + 1 :]))
            for atom, index in self.owners(child, pinned).items():
                tiled = np.tile(np.repeat(index, inner), outer)
                full = result.setdefault(atom, np.full(size, -1))
                result[atom] = np.where(tiled >= 0, tiled, full)
        return result
