import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import phosjax as px
from phosjax.core import compile_selector, matches
from phosjax.core._selectors import _no_match

PATHS = [
    "stem/pre_act",
    "blocks_0/choice/branch_0/pre_act",
    "blocks_1/choice/branch_1/pre_act",
    "blocks_2/choice/T",
    "blocks_12/out",
    "head/logits",
]


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("stem/pre_act", ["stem/pre_act"]),
        ("*/pre_act", ["stem/pre_act"]),
        ("**/pre_act", [p for p in PATHS if p.endswith("pre_act")]),
        ("blocks_[0-1]/**", PATHS[1:3]),
        ("blocks_?/**", PATHS[1:4]),
        ("blocks_*/out", ["blocks_12/out"]),
        ("blocks_[!0]/**/T", ["blocks_2/choice/T"]),
        ("**", PATHS),
        ("re:blocks_\\d+/choice/.*", PATHS[1:4]),
        ("head/**", ["head/logits"]),
    ],
)
def test_select(selector, expected):
    assert px.select(PATHS, selector) == expected


def test_double_star_matches_zero_segments():
    assert matches("a/**/b", "a/b")
    assert matches("a/**/b", "a/x/y/b")
    assert not matches("a/**/b", "ax/b")
    assert matches("**/T", "T")
    assert matches("a/**/**", "a") and matches("a/**", "a")  # "**/**" is "**"
    assert matches("**/**/b", "b") and matches("a/**/**/b", "a/x/y/b")


def test_wildcards_and_classes_stay_within_one_segment():
    assert not matches("*", "a/b")
    assert not matches("blocks_*", "blocks_1/out")
    assert not matches("a?b", "a/b")
    for negated in ("a[!_]b", "a[^_]b"):
        assert not matches(negated, "a/b") and not matches(negated, "a_b")
        assert matches(negated, "axb")
    assert not matches("a[+-0]b", "a/b") and matches("a[+-0]b", "a-b")  # '/' lies in '+'..'0'
    for negated in ("a[!-_]b", "a[^-_]b"):  # not '-' and not '_', whatever follows '!'
        matched = [matches(negated, path) for path in ("aBb", "a7b", "a-b", "a_b", "a/b")]
        assert matched == [True, True, False, False, False]


def test_a_glob_selects_names_with_brackets_by_their_text():
    """A channel group's name holds brackets (``qkv[2]``); only the whole path selected it,
    since in a glob ``[2]`` is a class: ``*/qkv[2]`` matched no group."""
    groups = ["blocks_0/qkv[2]", "blocks_1/qkv[2]", "blocks_1/qkv[1]", "blocks_1/out"]
    assert px.select(groups, "blocks_*/qkv[2]") == ["blocks_0/qkv[2]", "blocks_1/qkv[2]"]
    assert px.select(groups, "blocks_[1]/*") == groups[1:]  # still a class
    assert not matches("a[!-_]b", "a-b") and not matches("x/qkv[2]", "x/qkv[1]")


def test_a_class_holding_a_bracket_matches_it_without_a_warning():
    """fnmatch's escape '[[]' compiled to the regex '[[]', on which Python warns of a
    nested set (a FutureWarning, an error under the test suite's settings)."""
    assert px.select(["x/qkv[1]", "x/qkv1"], "**/qkv[[]1]") == ["x/qkv[1]"]


def test_a_malformed_class_is_a_value_error_naming_the_selector():
    with pytest.raises(ValueError, match=r"segment 'blocks_\[9-0\]' has a malformed class "):
        px.select(["blocks_1/T"], "blocks_[9-0]/T")


def test_no_match_lists_nearest_paths():
    with pytest.raises(
        px.SelectorError, match=r"'blocks_3/pre_act'.*nearest: 'blocks_[01]/"
    ) as err:
        px.select(PATHS, "blocks_3/pre_act", what="tagged value")
    assert "matched no tagged value among 6" in str(err.value)


@pytest.mark.parametrize(
    "selector, hint",
    [
        ("T", " A selector matches whole paths; '**/T' would match 'a/T', 'b/c/T'."),
        ("c/T", " A selector matches whole paths; '**/c/T' would match 'b/c/T'."),
        ("U", ""),
        ("**/U", ""),
    ],
)
def test_a_selector_naming_the_end_of_paths_is_told_to_start_with_any_depth(selector, hint):
    # 'T' matched none of 'a/T', 'b/c/T': the nearest were listed, not that '**/T' selects them
    with pytest.raises(px.SelectorError) as error:
        px.select(["a/T", "b/c/T", "d"], selector, what="knob")
    assert str(error.value).endswith(f".{hint}")
    assert ("would match" in str(error.value)) == bool(hint)


@pytest.mark.parametrize(
    "selector, place, meant",
    [
        ("a//T", "'//' after 'a'", "a/T"),
        ("/a/T", "a '/' at its start", "a/T"),
        ("b/c/", "a '/' at its end", "b/c/**"),  # 'b/c' and the paths below it
        ("**/", "a '/' at its end", "**"),
        ("/", "a '/' at its start", "**"),
    ],
)
def test_a_selector_with_an_empty_segment_is_refused_saying_what_to_write(selector, place, meant):
    # compile_selector("a//T") compiled to a pattern that matches no path: matches() was
    # False and select(..., allow_empty=True) [], silently
    message = (
        f"Selector {selector!r} has an empty segment ({place}), which no path has; write {meant!r}."
    )
    for call in (compile_selector, lambda s: matches(s, "a/T"), lambda s: px.select(["a/T"], s)):
        with pytest.raises(ValueError) as error:
            call(selector)
        assert str(error.value) == message


@pytest.mark.parametrize(
    "selector, hint",
    [
        ("b", " A selector matches whole paths, not their start; 'b/**' would match 'b/c/T'."),
        ("[ab]", " ... not their start; '[ab]/**' would match 'a/T', 'b/c/T'."),
        ("b/c/T", None),
    ],
)
def test_a_selector_naming_a_module_is_told_to_end_with_any_depth(selector, hint):
    # tweak({'blocks_1': 10.0}) listed the nearest knobs, not that 'blocks_1/**' selects them
    paths = ["a/T", "b/c/T", "d"]
    if hint is None:
        assert px.select(paths, selector) == [selector]
        return
    with pytest.raises(px.SelectorError) as error:
        px.select(paths, selector, what="knob")
    assert str(error.value).endswith(hint.split("... ")[-1])
    assert "not their start" in str(error.value)


@pytest.mark.parametrize("selector", ["b/c/T ", " b/c/T", "b /c/T"])
def test_a_selector_with_a_space_at_an_end_is_told_what_it_would_match_without(selector):
    # 'b/c/T ' (a value pasted from a table) listed the nearest paths alone
    with pytest.raises(px.SelectorError) as error:
        px.select(["a/T", "b/c/T", "d"], selector, what="knob")
    assert str(error.value).endswith(". It has a space at an end; 'b/c/T' would match 'b/c/T'.")


def test_many_paths_dropped_are_named_five_and_counted():
    """It ended "'h4', ...)", without a count."""
    message = _no_match("hh", [], "tagged value", [f"h{i}" for i in range(7)])
    assert "dropped every one made ('h0', 'h1', 'h2', 'h3', 'h4' and 2 more): " in message


def test_no_paths_at_all():
    with pytest.raises(px.SelectorError, match="there are none"):
        px.select([], "**", what="knob")


@pytest.mark.parametrize(
    ("paths", "selector", "given"),
    [
        ("a/b", "*", r"the str 'a/b' as the paths: give \['a/b'\] for one path\.$"),
        (None, "*", r"None as the paths\.$"),
        ("*", ["a/b"], r"the str '\*' as the paths and a list as the selector: swap them\.$"),
    ],
)
def test_paths_that_are_one_str_or_none_are_refused_naming_them(paths, selector, given):
    # a str was taken for a list of its characters: select('a/b', '*') gave ['a', 'b'];
    # select('*', ['a/b']), its arguments swapped, was told to give ['*'] for one path
    with pytest.raises(TypeError, match=rf"^select takes the candidate paths first, .*got {given}"):
        px.select(paths, selector)


@pytest.mark.parametrize(
    ("paths", "given"),
    [
        (
            jnp.zeros((40, 40)),
            "Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), "
            "dtype float32) as the paths, not a list of them (strs)",
        ),
        (["a/b", 2], "paths whose item 1 is 2 (an int), not a path (a str)"),
        ({("a", "b"): 0}, "paths whose item 0 is ('a', 'b') (a tuple), not a path (a str)"),
    ],
    ids=["array", "list", "dict"],
)
def test_paths_that_are_no_strs_are_refused_naming_them(paths, given):
    """Each failed matching, 'cannot use a string pattern on a bytes-like object' (the
    array's rows) or 'expected string or bytes-like object, got 'int''."""
    with pytest.raises(TypeError) as error:
        px.select(paths, "a/b")
    assert str(error.value) == (
        "select takes the candidate paths first, a list of them (or a dict, by its keys), "
        f"then the selector; got {given}."
    )
    assert px.select(np.array(["a/b", "c"]), "*") == ["c"]  # an array of strs is a list


def test_matches_refuses_a_list_of_paths_naming_select():
    # it failed in re: "expected string or bytes-like object, got 'list'"
    with pytest.raises(TypeError, match=r"^matches takes one path, a str, got a list; .*select"):
        matches("a/*", ["a/b"])


def test_bad_selectors():
    with pytest.raises(ValueError, match="unclosed"):
        compile_selector("blocks_[0")
    with pytest.raises(ValueError, match="non-empty"):
        compile_selector("")
    with pytest.raises(ValueError, match=r"'a\[\]' has an empty class"):
        compile_selector("x/a[]")
    with pytest.raises(ValueError, match=r"Selector 're:\(' is no regular expression"):
        compile_selector("re:(")


@pytest.mark.parametrize("flat", [{"a/b": 1, "a": 2}, {"a": 2, "a/b": 1}])
def test_unflatten_refuses_a_path_below_a_value_in_either_order(flat):
    """A value at 'a' overwrote the subtree of 'a/b' (after it) silently, or failed with
    "'int' object does not support item assignment" (before it)."""
    with pytest.raises(ValueError, match=r"Paths 'a' and 'a/b' cannot both be in one tree"):
        px.core.unflatten(flat)


def test_unflatten_names_a_path_that_is_no_str():
    # it said "'int' object has no attribute 'split'"
    with pytest.raises(TypeError, match=r"^unflatten takes .*got the path 1 \(int\); give str"):
        px.core.unflatten({"a": 0, 1: 2})
    # Flax's flatten_dict gives tuples of keys, for which str(path) was the advice
    with pytest.raises(TypeError, match=r"got the path \('a', 'b'\) \(tuple\); give 'a/b', its"):
        px.core.unflatten({("a", "b"): 1})


@pytest.mark.parametrize(("tree", "said"), [(None, "None"), (jnp.ones(2), "an ArrayImpl")])
def test_flatten_refuses_a_value_at_the_root_naming_it(tree, said):
    # it gave {'': tree}, a path no selector can match, and unflatten makes {'': tree} of it
    with pytest.raises(TypeError) as error:
        px.core.flatten(tree)
    assert str(error.value) == (
        "flatten takes a nested mapping of values by name, such as a Flax collection "
        f"(variables['params']), got {said}."
    )
    assert px.core.flatten({}) == {} and px.core.flatten({"a": None}) == {"a": None}


def test_unflatten_never_merges_into_a_value_that_is_a_dict():
    value = {"z": 1}
    with pytest.raises(ValueError, match=r"Paths 'a' and 'a/b' cannot both"):
        px.core.unflatten({"a": value, "a/b": 2})
    assert value == {"z": 1}
    assert px.core.unflatten({"a/b": 1, "a/c/d": 2, "e": value}) == {
        "a": {"b": 1, "c": {"d": 2}},
        "e": {"z": 1},
    }


class Tagged(nn.Module):
    @nn.compact
    def __call__(self, x):
        return px.tag(self, "h", x)


@pytest.mark.parametrize(
    "call",
    [
        lambda: px.regularize({"a": jnp.ones(2)}, [], jnp.sum),
        lambda: px.probe(Tagged(), {}, jnp.ones(2), []),
        lambda: px.grad_of(jnp.sum, Tagged(), {}, jnp.ones(2), wrt=()),
    ],
    ids=["regularize", "probe", "grad_of"],
)
def test_an_empty_list_of_selectors_is_refused(call):
    """It selected nothing, silently: regularize gave 0, probe {} and grad_of no gradient."""
    with pytest.raises(ValueError, match=r"No selector given \(an empty (list|tuple)\)"):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: px.regularize({"a": jnp.ones(2)}, 3, jnp.sum),
        lambda: px.probe(Tagged(), {}, jnp.ones(2), 3),
        lambda: px.grad_of(jnp.sum, Tagged(), {}, jnp.ones(2), wrt=3),
    ],
    ids=["regularize", "probe", "grad_of"],
)
def test_a_selector_that_is_no_str_nor_list_is_named(call):
    """It was Python's own "TypeError: 'int' object is not iterable"."""
    message = r"^The selector is 3 \(of type int\), not a selector \(a str\) or a list of them"
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda: px.select(["a"], jnp.zeros((40, 40))),
            "Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), "
            "dtype float32)",
        ),
        (  # an array is a list of selectors, its rows
            lambda: px.probe(Tagged(), {}, jnp.ones(2), jnp.zeros((40, 40))),
            "Array([0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., … (shape (40,), "
            "dtype float32)",
        ),
    ],
    ids=["select", "probe"],
)
def test_an_array_given_as_the_selector_is_named_in_one_short_line(call, said):
    """The message held the whole array's repr, 7 lines for select, 3 for probe."""
    with pytest.raises(TypeError) as error:
        call()
    assert str(error.value) == (
        f"The selector is {said} (of type ArrayImpl), not a selector (a str); give one such "
        "as '**/pre_act', or '**' for every path."
    )


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda: compile_selector(["a/b"]), "The selector is ['a/b'] (of type list)"),
        (lambda: px.select(["a/b"], ["a/b"]), "The selector is ['a/b'] (of type list)"),
        (
            lambda: px.train.Regularizer(["a/b"], "l2"),
            "Regularizer selector: The selector is ['a/b'] (of type list)",
        ),
        (
            lambda: px.train.HParams(knobs={("a", "b"): 1.0}),
            "HParams knobs: The selector is ('a', 'b') (of type tuple)",
        ),
    ],
    ids=["compile_selector", "select", "Regularizer", "HParams"],
)
def test_a_selector_that_is_no_str_is_a_type_error_as_in_a_list_of_selectors(call, said):
    """A list where one selector goes was a ValueError, where 3 for one or more selectors
    (selector_list) was a TypeError."""
    with pytest.raises(TypeError) as error:
        call()
    assert str(error.value) == (
        f"{said}, not a selector (a str); give one such as '**/pre_act', or '**' for every path."
    )


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda: px.tweak(Tagged(), {}, jnp.ones(2), 3.0),
            "3.0 (of type float), not a dict {selector: value} giving each knob it selects "
            "its value, e.g. {'**/T': value}.",
        ),
        (  # the example was a knob's, {'**/T': 2.0}; a str given is the selector meant
            lambda: px.inject(Tagged(), {}, jnp.ones(2), "h"),
            "'h' (of type str), not a dict {selector: value} giving each tagged value it "
            "selects its value, e.g. {'h': value}.",
        ),
        (
            lambda: px.inject(Tagged(), {}, jnp.ones(2), 0.0),
            "0.0 (of type float), not a dict {selector: value} giving each tagged value it "
            "selects its value, e.g. {'**/pre_act': value}.",
        ),
        (  # a bare array (the dict forgotten): it printed every number, 40 lines
            lambda: px.inject(Tagged(), {}, jnp.ones(2), jnp.zeros((40, 40))),
            "Array([[0., 0., 0., ..., 0., 0., 0.], [0., 0., 0., ..., 0.,… (shape (40, 40), "
            "dtype float32) (of type ArrayImpl), not a dict {selector: value} giving each "
            "tagged value it selects its value, e.g. {'**/pre_act': value}.",
        ),
    ],
    ids=["tweak", "inject", "inject_number", "inject_array"],
)
def test_values_that_are_no_dict_are_named(call, said):
    """It was Python's own "AttributeError: 'float' object has no attribute 'items'"."""
    with pytest.raises(TypeError) as error:
        call()
    assert str(error.value) == "The values are " + said


def test_tweaking_a_model_without_knobs_gives_no_lifted_transform_hint():
    """It ended with how nn.scan drops knobs, though the model has no scan and no knob."""
    with pytest.raises(px.SelectorError) as error:
        px.tweak(Tagged(), {}, jnp.ones(2), {"T": 1.0})
    assert str(error.value) == "Selector 'T' matched no knob: there are none."


def test_probing_a_model_that_tags_nothing_says_how_to_tag():
    """It said only how nn.scan drops tagged values, though the model has no scan: a plain
    Flax model, which tags nothing."""
    dense = nn.Dense(2)
    x = jnp.ones((1, 2))
    with pytest.raises(px.SelectorError) as error:
        px.probe(dense, dense.init(jax.random.key(0), x), x)
    assert str(error.value).startswith(
        "Selector '**' matched no tagged value: there are none. px.tag(self, name, value) "
        "tags one; if the model tags some, a lifted transform dropped them: nn.scan"
    )
