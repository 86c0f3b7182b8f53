"""Selectors: patterns that pick paths such as ``"blocks_1/choice/pre_act"``.

Syntax, matched against the whole path:

* ``*`` one path segment (or part of one: ``blocks_*``),
* ``**`` any number of segments, none included,
* ``[1-3]``, ``?`` character classes and single characters within a segment,
* ``re:<regex>`` a Python regular expression (full match).

An empty segment (a ``/`` at an end, or ``//``) is an error: no path has one.

A class also matches its own text, and a selector equal to a path matches it, so a name
with brackets (a channel group ``qkv[2]``) selects itself, in a glob too
(``blocks_*/qkv[2]``).
"""

import difflib
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from phosjax._callables import a_type, cut_repr, shown
from phosjax._listing import listing
from phosjax.core._paths import SEP


class SelectorError(KeyError):
    """A selector matched no path; the message lists the closest existing paths.

    Examples:
      >>> import phosjax as px
      >>> px.select(["a/pre_act", "b/out"], "a/pre_ac")
      Traceback (most recent call last):
      ...
      phosjax.core._selectors.SelectorError: Selector 'a/pre_ac' matched no path among 2; ...
    """

    selector: str | None = None
    """The selector that matched nothing, where `select` raised it."""
    what: str | None = None
    """What it was to match (``"tagged value"``, ``"knob"``...), where `select` raised it."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def misgiven_paths(paths: Any) -> str | None:
    """What ``paths`` is, for an error, where a list of paths goes: one path (a str, whose
    characters would be taken for paths) or no iterable (None); None where it is a list
    of them (any iterable but a str).

    Examples:
      >>> misgiven_paths("a/l1"), misgiven_paths(None), misgiven_paths(["a/l1"])
      ("the str 'a/l1' as the paths: give ['a/l1'] for one path", 'None as the paths', None)
    """
    if isinstance(paths, str):
        return f"the str {paths!r} as the paths: give [{paths!r}] for one path"
    return None if isinstance(paths, Iterable) else f"{shown(paths)} as the paths"


def _segment_regex(segment: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", i + 1)
            if end < 0:
                raise ValueError(f"Selector segment {segment!r} has an unclosed '['.")
            body = segment[i + 1 : end]
            negated = body[:1] in ("!", "^")
            if not body[negated:]:
                raise ValueError(f"Selector segment {segment!r} has an empty class '[]'.")
            members = body[negated:].replace("[", "\\[")  # '[[]' is '[', as in fnmatch
            try:
                re.compile(f"[{members}]")
            except re.error as error:
                raise ValueError(
                    f"Selector segment {segment!r} has a malformed class '[{body}]': {error.msg}."
                ) from None
            # a class stays within its segment: it never matches '/', not even as part
            # of a range such as '+-0'; it also matches its own text, as in a channel
            # group's name ('*/qkv[2]' selects 'blocks_0/qkv[2]')
            literal = re.escape(segment[i : end + 1])
            out.append(f"(?:(?!/)[{'^' if negated else ''}{members}]|{literal})")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def compile_selector(selector: str) -> re.Pattern[str]:
    """Compiles a selector to a regular expression over whole paths.

    Raises:
      TypeError: ``selector`` is no str (a list of them too), named.
      ValueError: ``selector`` is empty, or is malformed (an empty segment, which no
        path has, named with what to write).

    Examples:
      >>> bool(compile_selector("blocks_[1-3]/**/T").fullmatch("blocks_2/choice/T"))
      True
      >>> bool(compile_selector("**/T").fullmatch("T"))
      True
      >>> [bool(compile_selector("*/qkv[2]").fullmatch(p)) for p in ("b/qkv[2]", "b/qkv[1]")]
      [True, False]
    """
    if not isinstance(selector, str):  # checked before the cache hashes it
        raise _not_a_selector(selector, "a selector (a str)")
    if not selector:
        raise ValueError("A selector must be a non-empty string, got ''.")
    return _compile(selector)


@functools.lru_cache(maxsize=1024)
def _compile(selector: str) -> re.Pattern[str]:
    """`compile_selector` of a non-empty string, cached."""
    if selector.startswith("re:"):
        try:
            return re.compile(selector[3:])
        except re.error as error:
            raise ValueError(f"Selector {selector!r} is no regular expression: {error}.") from None
    _check_segments(selector)
    pattern, need_sep = "", False
    parts = selector.split(SEP)  # "**/**" is "**": both match any number of segments
    segments = [s for i, s in enumerate(parts) if not (s == "**" and parts[i - 1 : i] == ["**"])]
    for i, segment in enumerate(segments):
        sep = SEP if need_sep else ""
        if segment != "**":
            pattern, need_sep = pattern + sep + _segment_regex(segment), True
        elif i < len(segments) - 1:  # "**/" : zero or more whole segments
            pattern, need_sep = pattern + sep + "(?:[^/]+/)*", False
        else:  # trailing "**": anything below, or nothing
            pattern += "(?:/[^/]+)*" if need_sep else "(?:[^/]+(?:/[^/]+)*)?"
    return re.compile(pattern)


def _check_segments(selector: str) -> None:
    """Raises unless every segment of ``selector`` is non-empty: no path has an empty one,
    so it would match nothing. A trailing ``/`` reads as "everything below", so the
    message offers ``/**`` for it (which matches the path before it too).

    Examples:
      >>> _check_segments("blocks_0//T")
      Traceback (most recent call last):
      ValueError: Selector 'blocks_0//T' has an empty segment ('//' after 'blocks_0'), which ...
      >>> _check_segments("blocks_0/")
      Traceback (most recent call last):
      ValueError: ... write 'blocks_0/**'.
    """
    segments = selector.split(SEP)
    if all(segments):
        return
    kept = [s for s in segments if s]
    below = not segments[-1] and kept[-1:] != ["**"]  # 'a/' is 'a/**'; '**/' is '**'
    meant = SEP.join(kept + ["**"] * below) or "**"
    at = segments.index("")
    if at == 0:
        place = f"a {SEP!r} at its start"
    elif at == len(segments) - 1:
        place = f"a {SEP!r} at its end"
    else:
        place = f"{SEP * 2!r} after {segments[at - 1]!r}"
    raise ValueError(
        f"Selector {selector!r} has an empty segment ({place}), which no path has; write {meant!r}."
    )


def matches(selector: str, path: str) -> bool:
    """Whether ``selector`` matches the whole of ``path``.

    Examples:
      >>> matches("blocks_*/pre_act", "blocks_2/pre_act")
      True
      >>> matches("blocks_*/pre_act", "blocks_2/choice/pre_act")  # * is one segment
      False
      >>> matches("**/pre_act", "blocks_2/choice/pre_act")
      True

    Raises:
      TypeError: ``path`` is no str (a list of paths: `select` takes those).
    """
    if not isinstance(path, str):
        raise TypeError(
            f"matches takes one path, a str, got {shown(path)}; for a list of paths, "
            "select(paths, selector) gives those the selector matches."
        )
    return selector == path or compile_selector(selector).fullmatch(path) is not None


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _nearest(selector: str, paths: list[str], n: int = 5) -> list[str]:
    """Paths ranked by likeness of the first segment, the last segment and the whole."""
    literal = selector[3:] if selector.startswith("re:") else selector
    first, last = literal.split(SEP)[0], literal.split(SEP)[-1]

    def score(path: str) -> float:
        segments = path.split(SEP)
        return (
            _similarity(first, segments[0])
            + _similarity(last, segments[-1])
            + _similarity(literal, path)
        )

    return sorted(paths, key=score, reverse=True)[:n]


_LIFTED = (
    "nn.scan (or nn.vmap) keeps a {what} made inside it only if its variable_axes list "
    "phosjax's collections: variable_axes=px.scan_axes(params=0)."
)
"""How a {what} (tagged value, knob) is lost: a lifted transform drops the collections its
``variable_axes`` do not list, silently."""

_MADE_BY = {
    "tagged value": "px.tag(self, name, value) tags one; if the model tags some",
    "knob": "px.knob(self, name, default) declares one; if the model declares some",
}
"""The kinds of path a lifted transform can drop (see `_LIFTED`): how a module makes one,
and the start of the hint where none was made, or all were dropped, none can tell."""


def dropped_hint(selector: str, dropped: Iterable[str], what: str, where: str = "") -> str:
    """`` It matches 'path'{where}, which a lifted transform dropped: ...``, naming the
    first of the ``dropped`` paths (of a {what}) that ``selector`` matches; '' where it
    matches none.

    Examples:
      >>> print(dropped_hint("**/T", ["layers/T"], "knob", " in model 'net'"))
       It matches 'layers/T' in model 'net', which a lifted transform dropped: nn.scan (or
      nn.vmap) keeps a knob made inside it only if its variable_axes list phosjax's
      collections: variable_axes=px.scan_axes(params=0).
      >>> dropped_hint("**/h", ["layers/T"], "knob")
      ''
    """
    lost = next((path for path in dropped if matches(selector, path)), None)
    if lost is None:
        return ""
    return (
        f" It matches {lost!r}{where}, which a lifted transform dropped: "
        f"{_LIFTED.format(what=what)}"
    )


def _no_match(selector: str, paths: list[str], what: str, dropped: Iterable[str] | None) -> str:
    """The message of `select` when ``selector`` matches none of ``paths``: the nearest,
    and how a lifted transform loses a {what} where it can have: the selector matches one
    of the ``dropped`` paths, there are none at all as all were ``dropped`` (named), or
    there are none and what was dropped is unknown (``dropped`` None).

    Examples:
      >>> print(_no_match("blocks/h", ["pre"], "tagged value", ["blocks/h"]))
      Selector 'blocks/h' matched no tagged value among 1; nearest: 'pre'. It matches
      'blocks/h', which a lifted transform dropped: nn.scan (or nn.vmap) keeps a tagged
      value made inside it only if its variable_axes list phosjax's collections:
      variable_axes=px.scan_axes(params=0).
      >>> print(_no_match("pree", ["pre"], "tagged value", []))
      Selector 'pree' matched no tagged value among 1; nearest: 'pre'.
      >>> print(_no_match("T", [], "knob", []))  # none made: none dropped
      Selector 'T' matched no knob: there are none.
      >>> print(_no_match("hh", [], "tagged value", ["scan/h"]))  # all dropped
      Selector 'hh' matched no tagged value: there are none. A lifted transform dropped
      every one made ('scan/h'): nn.scan (or nn.vmap) keeps a tagged value made inside it
      only if its variable_axes list phosjax's collections: variable_axes=px.scan_axes(params=0).
    """
    dropped = None if dropped is None else list(dropped)
    lost = dropped_hint(selector, dropped or (), what)
    unknown = dropped is None and not paths and what in _MADE_BY  # none made, or all dropped
    if lost:
        hint = lost
    elif dropped and not paths:  # "there are none" alone would be false
        shown = listing([repr(p) for p in dropped])
        hint = f" A lifted transform dropped every one made ({shown}): "
        hint += _LIFTED.format(what=what)
    elif unknown:
        hint = f" {_MADE_BY[what]}, a lifted transform dropped them: {_LIFTED.format(what=what)}"
    else:
        hint = ""
    if not paths:
        return f"Selector {selector!r} matched no {what}: there are none.{hint}"
    nearest = ", ".join(repr(p) for p in _nearest(selector, paths))
    return (
        f"Selector {selector!r} matched no {what} among {len(paths)}; nearest: "
        f"{nearest}.{what_was_meant(selector, paths)}{hint}"
    )


def what_was_meant(selector: str, paths: Iterable[str]) -> str:
    """Hints, each a sentence after a space, at what ``selector``, which matches none of
    ``paths``, was meant to be, where it can tell: the end or the start of paths, a space
    at an end; "" where it cannot.

    Examples:
      >>> what_was_meant("T", ["blocks_0/T", "head"])
      " A selector matches whole paths; '**/T' would match 'blocks_0/T'."
      >>> what_was_meant("U", ["blocks_0/T"])
      ''
    """
    paths = list(paths)
    return (
        f"{_at_any_depth(selector, paths)}{_the_start_of_paths(selector, paths)}"
        f"{_spaces(selector, paths)}"
    )


def _spaces(selector: str, paths: list[str]) -> str:
    """A hint for a selector with a space at an end of a segment (``"blocks_0/T "``), which
    no path has there: what the selector without them would match; "" otherwise.

    Examples:
      >>> _spaces(" blocks_0/T", ["blocks_0/T"]), _spaces("T", ["T"])
      (" It has a space at an end; 'blocks_0/T' would match 'blocks_0/T'.", '')
    """
    stripped = SEP.join(segment.strip() for segment in selector.split(SEP))
    # a segment of spaces alone would be empty: that selector would be refused
    if stripped == selector or not all(stripped.split(SEP)) or selector.startswith("re:"):
        return ""
    return _would_match(paths, stripped, "It has a space at an end")


def _the_start_of_paths(selector: str, paths: list[str]) -> str:
    """A hint for a selector naming a module, the start of paths (``"blocks_1"`` for
    ``"blocks_1/T"``): it matches whole paths, and ``"/**"`` after it would match those;
    "" otherwise.

    Examples:
      >>> print(_the_start_of_paths("b_*", ["b_0/T", "b_1/m/T", "head/T"]))
       A selector matches whole paths, not their start; 'b_*/**' would match 'b_0/T', 'b_1/m/T'.
      >>> _the_start_of_paths("head", ["heads/T"]), _the_start_of_paths("re:head", ["head/T"])
      ('', '')
    """
    if selector.startswith("re:") or selector.endswith(("**", SEP)):
        return ""
    below = f"{selector}{SEP}**"
    return _would_match(paths, below, "A selector matches whole paths, not their start")


def _at_any_depth(selector: str, paths: list[str]) -> str:
    """A hint for a selector that names the end of paths (``"T"`` for ``"blocks_0/T"``):
    it matches whole paths, and ``"**/"`` before it would match those; "" otherwise.

    Examples:
      >>> _at_any_depth("T", ["blocks_0/T", "blocks_1/T", "head"])
      " A selector matches whole paths; '**/T' would match 'blocks_0/T', 'blocks_1/T'."
      >>> _at_any_depth("U", ["blocks_0/T"]), _at_any_depth("re:T", ["blocks_0/T"])
      ('', '')
    """
    if selector.startswith(("re:", "**")):
        return ""
    return _would_match(paths, f"**{SEP}{selector}", "A selector matches whole paths")


def _would_match(paths: list[str], selector: str, said: str) -> str:
    """`` {said}; {selector!r} would match`` the ``paths`` it matches, where it matches
    any (a hint's end); "" otherwise."""
    found = select(paths, selector, allow_empty=True)
    if not found:
        return ""
    return f" {said}; {selector!r} would match {listing([repr(p) for p in found], 3)}."


def select(
    paths: Iterable[str],
    selector: str,
    *,
    what: str = "path",
    allow_empty: bool = False,
    dropped: Iterable[str] | None = None,
) -> list[str]:
    """The paths that ``selector`` matches, in their original order.

    Args:
      paths: candidate paths.
      selector: see the module docstring.
      what: what the paths are (``"tagged value"``, ``"knob"``...), for the error.
      allow_empty: return ``[]`` instead of raising when nothing matches.
      dropped: paths that a lifted transform dropped (made, but not among ``paths``):
        the error says how to keep one the selector matches, or, where all were dropped,
        names them; None: unknown (the error then says how a lifted transform drops them
        where there are none at all).

    Raises:
      SelectorError: nothing matched; the message lists the nearest paths (and says how
        a lifted transform loses one where it can have: see `_no_match`).
      TypeError: ``paths`` is a str (one path, whose characters would be taken for
        paths; or the selector, the arguments swapped), no iterable (None), or holds a
        non-str (an array of numbers).

    Examples:
      >>> select(["a/pre_act", "b/pre_act", "b/out"], "*/pre_act")
      ['a/pre_act', 'b/pre_act']
      >>> select("a/pre_act", "*/pre_act")
      Traceback (most recent call last):
      TypeError: select takes the candidate paths first, a list of them (or a dict, by its
      keys), then the selector; got the str 'a/pre_act' as the paths: give ['a/pre_act']
      for one path.
    """
    given = misgiven_paths(paths)
    if isinstance(paths, str) and not isinstance(selector, str):  # select("**/h", paths)
        given = f"the str {paths!r} as the paths and {shown(selector)} as the selector: swap them"
    listed = [] if given is not None else list(paths)
    given = given or _stray_path(paths, listed)
    if given is not None:
        raise TypeError(
            "select takes the candidate paths first, a list of them (or a dict, by its keys), "
            f"then the selector; got {given}."
        )
    paths = listed
    regex = compile_selector(selector)
    found = [p for p in paths if p == selector or regex.fullmatch(p)]
    if not found and not allow_empty:
        error = SelectorError(_no_match(selector, paths, what, dropped))
        error.selector, error.what = selector, what
        raise error
    return found


def _stray_path(given: Any, paths: list[Any]) -> str | None:
    """What in ``given``, listed as ``paths``, is no path, for `select`'s error: an array
    of numbers, or the first item that is no str; None where each is a str.

    Examples:
      >>> _stray_path(["a", 2], ["a", 2]), _stray_path(["a"], ["a"])
      ('paths whose item 1 is 2 (an int), not a path (a str)', None)
    """
    index = next((i for i, path in enumerate(paths) if not isinstance(path, str)), None)
    if index is None:
        return None
    if hasattr(given, "dtype"):  # an array, whose rows or numbers its items are
        return f"{cut_repr(given)} as the paths, not a list of them (strs)"
    stray = paths[index]
    return f"paths whose item {index} is {cut_repr(stray)} ({a_type(stray)}), not a path (a str)"


def selector_list(selectors: str | Iterable[str]) -> list[str]:
    """``selectors`` as a list: one selector, or several.

    Raises:
      ValueError: there are none (an empty list would select nothing, silently).
      TypeError: ``selectors`` are neither a str nor an iterable (a number).

    Examples:
      >>> selector_list("**/T"), selector_list(("a", "b"))
      (['**/T'], ['a', 'b'])
      >>> selector_list([])
      Traceback (most recent call last):
      ValueError: No selector given (an empty list): give one, such as '**/pre_act', or '**' ...
      >>> selector_list(3)
      Traceback (most recent call last):
      TypeError: The selector is 3 (of type int), not a selector (a str) or a list of them; ...
    """
    if not isinstance(selectors, str | Iterable):
        raise _not_a_selector(selectors, "a selector (a str) or a list of them")
    found = [selectors] if isinstance(selectors, str) else list(selectors)
    if not found:
        raise ValueError(
            f"No selector given (an empty {type(selectors).__name__}): give one, such as "
            "'**/pre_act', or '**' for every path."
        )
    return found


def _not_a_selector(given: Any, taken: str) -> TypeError:
    """The error for ``given`` where ``taken`` (a selector, or a list of them) goes."""
    return TypeError(
        f"The selector is {cut_repr(given)} (of type {type(given).__name__}), not {taken}; "
        "give one such as '**/pre_act', or '**' for every path."
    )


def select_items(
    flat: Mapping[str, Any],
    selectors: str | Iterable[str],
    *,
    what: str = "path",
    dropped: Iterable[str] | None = None,
) -> dict[str, Any]:
    """``{path: value}`` for the paths any of ``selectors`` match (each must match;
    `selector_list` says what they may be; ``dropped`` as `select` takes it)."""
    chosen: set[str] = set()
    dropped = None if dropped is None else list(dropped)
    for selector in selector_list(selectors):
        chosen.update(select(flat, selector, what=what, dropped=dropped))
    return {p: v for p, v in flat.items() if p in chosen}


_EXAMPLES = {"tagged value": "**/pre_act", "knob": "**/T"}
"""A selector of each kind of path, for an error's example."""


def check_values(values: Any, what: str) -> None:
    """Raises unless ``values`` is a mapping ``{selector: value}`` (see `selector_per_path`).

    Raises:
      TypeError: ``values`` is a bare value or a selector, naming it and an example.

    Examples:
      >>> check_values(3.0, "knob")
      Traceback (most recent call last):
      TypeError: The values are 3.0 (of type float), not a dict {selector: value} giving ...
    """
    if not isinstance(values, Mapping):
        selector = values if isinstance(values, str) else _EXAMPLES.get(what, "**")
        raise TypeError(
            f"The values are {cut_repr(values)} (of type {type(values).__name__}), not a dict "
            f"{{selector: value}} giving each {what} it selects its value, e.g. "
            f"{{{selector!r}: value}}."
        )


def selector_per_path(
    values: Mapping[str, Any], find: Callable[[str], list[str]], *, what: str = "path"
) -> dict[str, str]:
    """``{path: selector}`` for ``{selector: value}``, ``find(selector)`` giving each one's
    paths (in the selectors' order).

    Raises:
      ValueError: two selectors match one path (both and the path named): which value
        was meant is unclear.
      TypeError: ``values`` are no mapping (a bare value, a selector).

    Examples:
      >>> paths = ["a/T", "b/T"]
      >>> selector_per_path({"a/T": 1, "b/*": 2}, lambda s: select(paths, s))
      {'a/T': 'a/T', 'b/T': 'b/*'}
      >>> selector_per_path({"**/T": 1, "b/T": 2}, lambda s: select(paths, s), what="knob")
      Traceback (most recent call last):
      ValueError: Selectors '**/T' and 'b/T' both match knob 'b/T'; give each knob one ...
    """
    check_values(values, what)
    matched_by: dict[str, str] = {}
    for selector in values:
        for path in find(selector):
            if path in matched_by:
                raise ValueError(
                    f"Selectors {matched_by[path]!r} and {selector!r} both match {what} "
                    f"{path!r}; give each {what} one value (narrow a selector so that it "
                    "leaves the other's paths out)."
                )
            matched_by[path] = selector
    return matched_by


def selected(path: str, selector: str | None) -> str:
    """``path`` as an error names it, with the ``selector`` that matched it where that is
    another (``"**"`` may match more than was meant).

    Examples:
      >>> selected("a/T", "**"), selected("a/T", "a/T"), selected("a/T", None)
      ("'a/T' (selected by '**')", "'a/T'", "'a/T'")
    """
    return repr(path) if selector in (None, path) else f"{path!r} (selected by {selector!r})"
