"""Verdicts by rule: each rule's three outcomes at its boundaries, and the chapter files."""

import json

import pytest

from mnistlab import claims
from mnistlab.stats import Estimate


def est(low, value, high):
    return Estimate(value, low, high, 100, "images", "test")


@pytest.mark.parametrize(
    "interval, verdict",
    [
        ((0.51, 0.6, 0.7), "holds"),
        ((0.3, 0.4, 0.49), "contradicted"),
        ((0.45, 0.55, 0.65), "undecided"),
        ((0.5, 0.6, 0.7), "undecided"),
    ],  # an interval that touches the bound does not exclude it
)
def test_greater_reads_the_whole_interval(interval, verdict):
    c = claims.greater("k", "above a half", est(*interval), than=0.5)
    assert c.verdict == verdict and c.holds == (verdict == "holds")
    assert "95% interval, n = 100 images" in c.sentence


@pytest.mark.parametrize(
    "interval, verdict",
    [((0.3, 0.4, 0.49), "holds"), ((0.51, 0.6, 0.7), "contradicted"), ((0.4, 0.5, 0.6), "undecided")],
)
def test_less_is_greater_mirrored(interval, verdict):
    assert claims.less("k", "below a half", est(*interval), than=0.5).verdict == verdict


def test_differs_names_the_side_or_says_nothing_is_detectable():
    up = claims.differs("k", "s", est(0.01, 0.02, 0.03), above="rises", below="falls", none="stays")
    down = claims.differs("k", "s", est(-0.03, -0.02, -0.01), above="rises", below="falls", none="stays")
    flat = claims.differs("k", "s", est(-0.01, 0.01, 0.03), above="rises", below="falls", none="stays")
    assert (up.verdict, down.verdict, flat.verdict) == ("holds", "holds", "undecided")
    assert (
        up.sentence.startswith("rises (")
        and down.sentence.startswith("falls (")
        and flat.sentence.startswith("stays (")
    )


def test_a_chapters_claims_are_written_as_they_come_and_read_back(tmp_path):
    register = claims.Claims("03_x", "f" * 64, folder=tmp_path)
    first = register.add(claims.greater("a", "above zero", est(0.1, 0.2, 0.3)))
    register.add(claims.less("b", "below zero", est(0.1, 0.2, 0.3)))
    back = claims.read(tmp_path / ("f" * 16))
    assert list(back) == ["03_x"] and [c.key for c in back["03_x"]] == ["a", "b"]
    assert back["03_x"][0] == first
    with pytest.raises(KeyError, match="stated twice"):
        register.add(claims.greater("a", "again", est(0.1, 0.2, 0.3)))


def test_a_rerun_chapter_starts_its_file_empty(tmp_path):
    claims.Claims("03_x", "f" * 64, folder=tmp_path).add(claims.greater("old", "s", est(0.1, 0.2, 0.3)))
    claims.Claims("03_x", "f" * 64, folder=tmp_path)
    record = json.loads((tmp_path / ("f" * 16) / "03_x.json").read_text())
    assert record["chapter"] == "03_x" and record["claims"] == []


def test_the_appendix_reads_only_claims_of_this_librarys_code(tmp_path, monkeypatch):
    claims.Claims("03_x", "f" * 64, folder=tmp_path).add(claims.greater("a", "above zero", est(0.1, 0.2, 0.3)))
    chapters = claims.read_build("f" * 64, folder=tmp_path)
    assert [c.key for c in chapters["03_x"]] == ["a"]
    assert "| 03 | above zero | **holds** | 0.2 [0.1, 0.3] | 100 images |" in claims.table(chapters)
    monkeypatch.setattr(claims, "library_fingerprint", lambda: "other code")
    with pytest.raises(RuntimeError, match="run its chapter again"):
        claims.read_build("f" * 64, folder=tmp_path)
    with pytest.raises(RuntimeError, match="run the chapters first"):
        claims.read_build("e" * 64, folder=tmp_path)


def test_the_appendix_refuses_a_build_where_a_chapter_wrote_no_claims(tmp_path):
    """The appendix ran before chapter 04 finished: it must say so, not list a partial book."""
    claims.Claims("03_x", "f" * 64, folder=tmp_path).add(claims.greater("a", "above zero", est(0.1, 0.2, 0.3)))
    assert list(claims.read_build("f" * 64, folder=tmp_path, expected=["03_x"])) == ["03_x"]
    with pytest.raises(RuntimeError, match=r"\['04_y'\] have written no claims"):
        claims.read_build("f" * 64, folder=tmp_path, expected=["03_x", "04_y"])


def test_a_sources_claims_are_read_in_their_direction():
    chapters = {
        "05_x": [claims.less("to_zero", "ablation takes a digit below 10%", est(0.01, 0.02, 0.05), than=0.10)],
        "06_y": [
            claims.differs("gap_1", "input norm changes the gap", est(0.01, 0.02, 0.03)),  # higher: against "less"
            claims.differs("gap_2", "LayerNorm changes the gap", est(-0.03, -0.02, -0.01)),
            claims.differs("gap_3", "dropout changes the gap", est(-0.01, 0.0, 0.01)),
        ],
    }
    theirs = [
        claims.Tested("one neuron takes a digit to 0%", (("05_x", "to_zero", "holds"),)),
        claims.Tested("less overfitting", tuple(("06_y", f"gap_{i}", "below") for i in (1, 2, 3))),
        claims.Tested("superposition"),
    ]
    rows = claims.against_source(theirs, chapters).splitlines()[2:]
    verdicts = [row.split("|")[3].strip() for row in rows]
    assert verdicts == ["**reproduced**", "**contradicted**", "**reproduced**", "**not shown**", "**not tested**"]
    with pytest.raises(KeyError, match="made no claim 'gap_9'"):
        claims.against_source([claims.Tested("x", (("06_y", "gap_9", "below"),))], chapters)


def test_a_claim_keeps_the_number_its_rule_compares_with():
    # Read against its own reference, not zero: 0.55 [0.52, 0.58] is above a null of 0.5.
    c = claims.differs("k", "s", est(0.52, 0.55, 0.58), null=0.5)
    assert (c.rule, c.reference, c.side) == ("≠ 0.5", 0.5, "above")
    rows = claims.against_source([claims.Tested("above a half", (("x", "k", "below"),))], {"x": [c]}).splitlines()
    assert "**contradicted**" in rows[2]
    assert claims.less("k", "s", est(0.1, 0.2, 0.3), than=0.25).side is None


def test_a_one_sided_claim_names_a_valid_side():
    with pytest.raises(ValueError, match="'above' or 'below'"):
        claims.beyond("k", "s", est(0.1, 0.2, 0.3), claimed="sideways")


def test_a_verdict_near_its_line_is_marked_fragile_in_its_sentence_and_its_row():
    near, far = est(0.01, 0.09, 0.17), est(0.2, 0.3, 0.4)
    close = claims.greater("near", "s", near)
    assert close.fragile and close.sentence.endswith(f"; {claims.CLOSE_CALL})")
    clear = claims.greater("far", "s", far)
    assert not clear.fragile and claims.CLOSE_CALL not in clear.sentence
    assert claims.greater("far", "s", far, margin=claims.RUN_MARGIN).fragile  # a run's choice moves further
    assert not claims.fragile(est(0.5, 1.0, 1.5), 0.0, claims.Margin(0.0, 0.1))  # the effect term: 0.05 from 0.5
    assert claims.fragile(est(0.5, 1.0, 1.5), 0.0, claims.Margin(0.0, 0.6))  # 0.6 of the effect reaches 0.5
    rows = claims.table(
        {
            "05_x": [
                close,
                clear,
                claims.greater("no", "s", est(-0.3, -0.2, -0.1)),
                claims.greater("maybe", "s", est(-0.3, 0.0, 0.3)),
            ]
        }
    ).splitlines()[2:]
    assert [row.split("|")[3].strip() for row in rows] == [
        f"**holds** ({claims.CLOSE_CALL})",
        "**holds**",
        "**does not hold**",
        "**not shown**",
    ]


def test_a_sources_claim_read_above_or_as_a_recipe_and_an_unknown_expectation_refused():
    chapters = {
        "08_x": [
            claims.differs("up", "s", est(0.1, 0.2, 0.3)),
            claims.differs("down", "s", est(-0.3, -0.2, -0.1)),
            claims.greater("why", "s", est(0.01, 0.09, 0.17)),
        ]
    }
    theirs = [
        claims.Tested("bigger", (("08_x", "up", "above"), ("08_x", "down", "above"))),
        claims.Tested("their recipe", (("08_x", "why", "recipe"),)),
    ]
    rows = claims.against_source(theirs, chapters).splitlines()[2:]
    assert [row.split("|")[3].strip() for row in rows] == [
        "**reproduced**",
        "**contradicted**",
        "**adopted, with this change: supported**",
    ]  # no "close" on a recipe
    with pytest.raises(ValueError, match="expectation must be one of"):
        claims.against_source([claims.Tested("x", (("08_x", "up", "sideways"),))], chapters)
