"""`nearest`: the "did you mean" of every error message that names an unknown name."""

from phosjax._nearest import did_you_mean, nearest


def test_a_two_letter_name_one_letter_off_is_suggested():
    # 1 letter of 2 in common is a ratio of 0.5, under the cutoff: 'dz' got no suggestion
    assert did_you_mean(["dz"], ["dx", "w"]) == ". Did you mean 'dx'?"
    assert nearest("B2", ["b1", "w1", "bias"]) == ["b1"]


def test_short_names_two_letters_off_or_of_another_length_are_not_suggested():
    assert nearest("dz", ["xy", "zd", "dxx"]) == []
    assert nearest("a", ["b", "c"]) == []
