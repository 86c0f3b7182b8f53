"""`nearest`: the "did you mean" of every error message that names an unknown name."""

import copy
import dataclasses
import inspect
import pickle

import pytest

from phosjax._nearest import did_you_mean, fields_checked, nearest
from phosjax.models import ModelConfig
from phosjax.train import Cell, HParams, Regularizer


def test_a_two_letter_name_one_letter_off_is_suggested():
    # 1 letter of 2 in common is a ratio of 0.5, under the cutoff: 'dz' got no suggestion
    assert did_you_mean(["dz"], ["dx", "w"]) == ". Did you mean 'dx'?"
    assert nearest("B2", ["b1", "w1", "bias"]) == ["b1"]


def test_short_names_two_letters_off_or_of_another_length_are_not_suggested():
    assert nearest("dz", ["xy", "zd", "dxx"]) == []
    assert nearest("a", ["b", "c"]) == []


def test_a_name_in_another_case_is_nearer_than_one_it_spells_the_initials_of():
    """``--LR`` was pointed at ``--learning_rate`` alone where ``--lr`` was an option."""
    assert nearest("LR", ["learning_rate", "lr", "lr_decay"]) == ["lr", "learning_rate"]
    assert did_you_mean(["BS"], ["batch_size", "bs"]) == ". Did you mean 'bs' or 'batch_size'?"


def test_a_name_known_twice_is_suggested_once():
    """``did_you_mean`` said "'mlp' or 'mlp'"."""
    assert nearest("mpl", ["mlp", "mlp", "MLP"]) == ["mlp", "MLP"]
    assert did_you_mean(["mpl"], ["mlp", "mlp"]) == ". Did you mean 'mlp'?"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: HParams(lr=0.1), r"HParams has no field 'lr'\. Did you mean 'learning_rate'\?"),
        (
            lambda: Regularizer("**", strenght=1.0),
            r"Regularizer has no field 'strenght'\. Did you mean 'strength'\? Its fields: "
            r"selector, kind, strength, on, cost, source, threshold\.",
        ),
        (
            lambda: Cell(ModelConfig("mlp", 2, (3,)), "toy", sed=1),
            r"Cell has no field 'sed'.*'seed'",
        ),
        (
            lambda: ModelConfig("mlp", 2, (3,), widht=8),
            r"ModelConfig has no field 'widht'\. Did you mean 'width'\?",
        ),
        (
            lambda: ModelConfig("mlp", 2, (3,), dropout=0.5),
            r"^ModelConfig has no field 'dropout' \(an option such as 'dropout' goes in "
            r"options=\{'dropout': \.\.\.\}\)\. Its fields: name, ",
        ),
    ],
)
def test_a_misspelt_field_names_the_dataclass_and_the_nearest_field(make, message):
    # Python's TypeError named only the keyword ('__init__() got an unexpected keyword')
    with pytest.raises(TypeError, match=message):
        make()


def test_a_misspelt_field_of_a_subclass_names_the_subclass():
    """It named the dataclass decorated (HParams), which the call never named."""

    class Tuned(HParams):
        pass

    with pytest.raises(TypeError, match=r"^Tuned has no field 'lr'\. Did you mean"):
        Tuned(lr=0.1)


def test_a_dataclass_subclass_is_checked_too_and_keeps_its_signature_and_pickling():
    """A dataclass subclass got an __init__ of its own, unchecked: Tuned(lr=0.1) was
    Python's bare 'unexpected keyword argument'."""

    @dataclasses.dataclass(frozen=True)
    class Tuned(HParams):
        extra: int = 0

    with pytest.raises(TypeError, match=r"^Tuned has no field 'lr'\. Did you mean .* extra\.$"):
        Tuned(lr=0.1)
    tuned = Tuned(steps=5, extra=2)
    assert pickle.loads(pickle.dumps(HParams(steps=5))) == HParams(steps=5)
    assert dataclasses.replace(tuned, extra=3).extra == 3 and copy.deepcopy(tuned) == tuned
    assert list(inspect.signature(Tuned).parameters)[-2:] == ["compute_dtype", "extra"]
    assert "steps" in inspect.signature(HParams).parameters


def test_a_subclass_whose_own_init_passes_keywords_on_takes_the_fields():
    """Its **kwargs were checked as the only keywords: Noted(steps=5) was refused,
    'Noted has no field 'steps'. Its fields: note, kwargs.'"""

    class Noted(HParams):
        def __init__(self, note: str = "", **kwargs: object) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            object.__setattr__(self, "note", note)

    assert Noted(note="a", steps=5).steps == 5


def test_a_dataclass_fields_checked_takes_its_init_only_variables():
    """An InitVar, no field of dataclasses.fields, was refused: 'Scaled has no field'."""

    @fields_checked
    @dataclasses.dataclass
    class Scaled:
        value: float
        scale: dataclasses.InitVar[float] = 1.0

        def __post_init__(self, scale):
            self.value *= scale

    assert Scaled(2.0, scale=3.0).value == 6.0


def test_a_dataclass_of_no_fields_says_it_has_none():
    """It ended "Its fields: ."."""

    @fields_checked
    @dataclasses.dataclass
    class Empty:
        pass

    with pytest.raises(TypeError) as raised:
        Empty(lr=0.1)
    assert str(raised.value) == "Empty has no field 'lr'. It has no fields."
