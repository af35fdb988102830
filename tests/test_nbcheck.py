"""The comparison nbval makes: machine noise passes, a real change fails (planted in each kind of output)."""

import pytest

from mnistlab.build import nbcheck


def stream(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def glued(name, text, meta=None):
    metadata = {"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}
    if meta is not None:
        metadata[nbcheck.META] = meta
    return {"output_type": "display_data", "data": {nbcheck.GLUE_TEXT: text}, "metadata": metadata}


def claim(verdict, value, low, high, fragile=False, sentence=None):
    meta = {
        "kind": "claim",
        "verdict": verdict,
        "fragile": fragile,
        "value": value,
        "low": low,
        "high": high,
        "unit": 0.001,
        "n": 32,
    }
    return glued("c", sentence or f"'{verdict} ({value:+.3f} [{low:+.3f}, {high:+.3f}])'", meta)


def test_tokens_split_numbers_from_names_and_dashes():
    template, found = nbcheck.tokens("fc1_post unit 7: digits 5-7, −0.03 and +6.3 points [+3.6, +9.3]; 1,000 x86")
    assert template == "fc1_post unit ⟨number⟩: digits ⟨number⟩-⟨number⟩, ⟨number⟩ and ⟨interval⟩ points; ⟨number⟩ x86"
    values = [t.value if isinstance(t, nbcheck.Number) else t.estimate.value for t in found]
    assert values == [7, 5, 7, -0.03, 6.3, 1000]
    assert nbcheck.number("4.8e-07").unit == pytest.approx(1e-08)
    assert nbcheck.number("45").integer and nbcheck.number("0.50").unit == pytest.approx(0.01)


@pytest.mark.parametrize(
    "stored, fresh",
    [
        ("unit 7 loses 45% on 100 images", "unit 7 loses 45% on 100 images"),
        ("mean 0.912", "mean 0.913"),  # one unit of the last digit: rounding on another machine
        ("interaction −0.001 [−0.007, +0.002]", "interaction −0.002 [−0.008, +0.002]"),
        ("gap +14.2 points [+11.8, +16.8]", "gap +14.3 points [+11.9, +16.9]"),
        ("acc 91.2% [89.3%, 92.8%]", "acc 91.3% [89.4%, 92.9%]"),
    ],
)
def test_machine_noise_passes(stored, fresh):
    assert nbcheck.compare([stream(stored)], [stream(fresh)]) == []


@pytest.mark.parametrize(
    "stored, fresh, why",
    [
        ("unit 7 loses 45%", "unit 8 loses 45%", "integer is exact"),
        ("32 units", "64 units", "integer is exact"),
        ("mean 0.912", "mean 0.915", "last digit"),
        ("gap +14.2 points [+11.8, +16.8]", "gap +20.0 points [+17.6, +22.4]", "do not overlap"),
        ("gap +14.2 points [+11.8, +16.8]", "gap +14.2 points [+3.0, +26.6]", "narrower one's width"),
        ("it holds (0.5)", "it does not hold (0.5)", "beyond its numbers"),
        ("a\nb", "a", "beyond its numbers"),
        ("best lr 0.1", "best lr never", "beyond its numbers"),
    ],
)
def test_a_real_change_fails(stored, fresh, why):
    problems = nbcheck.compare([stream(stored)], [stream(fresh)])
    assert len(problems) == 1 and why in problems[0], problems


def test_outputs_must_match_in_kind_number_and_glue_name():
    assert nbcheck.compare([stream("a")], []) != []
    assert nbcheck.compare([glued("x", "1")], [glued("y", "1")]) != []
    assert nbcheck.compare([glued("x", "1")], [glued("x", "1")]) == []


def test_glued_numbers_at_the_precision_the_prose_shows():
    units = nbcheck.display_units("reads {glue:text}`acc:.1%` and {glue:text}`acc:.0%`, {glue:text}`n:,` images")
    assert units == {"acc": pytest.approx(0.001)}
    assert nbcheck.compare([glued("acc", "0.912")], [glued("acc", "0.913")], units) == []
    assert nbcheck.compare([glued("acc", "0.912")], [glued("acc", "0.915")], units) != []
    # Without a prose format, a glued float keeps its own four significant digits.
    assert nbcheck.compare([glued("acc", "0.9121")], [glued("acc", "0.9122")]) == []
    assert nbcheck.compare([glued("acc", "0.9121")], [glued("acc", "0.9131")]) != []
    assert nbcheck.compare([glued("n", "1000")], [glued("n", "999")], units) != []


def test_glued_estimates_move_within_their_interval():
    def est(v, lo, hi):
        return glued("e", repr(v), {"kind": "estimate", "value": v, "low": lo, "high": hi})

    assert nbcheck.compare([est(0.035, 0.01, 0.06)], [est(0.04, 0.015, 0.065)], {"e": 0.001}) == []
    assert nbcheck.compare([est(0.035, 0.01, 0.06)], [est(0.05, 0.03, 0.07)], {"e": 0.001}) == []  # they overlap
    assert nbcheck.compare([est(0.035, 0.01, 0.06)], [est(0.09, 0.07, 0.11)], {"e": 0.001}) != []
    assert nbcheck.compare([est(0.035, 0.01, 0.06)], [glued("e", "0.035")]) != []  # no longer an estimate


def test_a_verdict_may_change_only_where_a_run_marks_it_fragile():
    firm = claim("holds", 0.09, 0.01, 0.17)
    assert nbcheck.compare([firm], [claim("holds", 0.08, 0.005, 0.16)]) == []
    flipped = nbcheck.compare([firm], [claim("undecided", 0.08, -0.001, 0.16)])
    assert len(flipped) == 1 and "verdict changed" in flipped[0]
    assert (
        nbcheck.compare([claim("holds", 0.09, 0.01, 0.17, fragile=True)], [claim("undecided", 0.08, -0.001, 0.16)])
        == []
    )
    assert nbcheck.compare([firm], [claim("undecided", 0.08, -0.001, 0.16, fragile=True)]) == []
    # A fragile verdict still needs its estimate where the other run's interval allows it.
    far = nbcheck.compare([claim("holds", 0.09, 0.01, 0.17, fragile=True)], [claim("undecided", 0.5, 0.3, 0.9)])
    assert len(far) == 1 and "estimate" in far[0]


def test_widget_data_by_structure():
    def widget(payload):
        return {
            "output_type": "execute_result",
            "data": {"text/html": f"<script>{payload}</script>", "text/plain": "<W>"},
            "metadata": {nbcheck.META: {"compare": "structure"}},
        }

    a = widget('{"units": [{"auc": 0.91, "name": "u0"}, {"auc": 0.4, "name": "u1"}]}')
    b = widget('{"units": [{"auc": 0.93, "name": "u0"}, {"auc": 0.41, "name": "u1"}]}')
    c = widget('{"units": [{"auc": 0.93, "name": "u0"}]}')
    d = widget('{"units": [{"auc": 0.93, "label": "u0"}, {"auc": 0.41, "label": "u1"}]}')
    assert nbcheck.compare([a], [b]) == []
    assert nbcheck.compare([a], [c]) != [] and nbcheck.compare([a], [d]) != []


def test_sanitizer_applies_before_comparing():
    problems = nbcheck.compare(
        [stream("<Figure size 640x480>")],
        [stream("<Figure size 800x600>")],
        sanitize=lambda s: "<Figure>" if s.startswith("<Figure") else s,
    )
    assert problems == []


def test_a_text_written_from_claims_is_compared_claim_by_claim():
    def listed(text, *items):
        return glued(
            "l", repr(text), {"kind": "claims", "claims": [claim(*i)["metadata"][nbcheck.META] for i in items]}
        )

    firm = [("holds", 0.09, 0.05, 0.13), ("undecided", 0.01, -0.03, 0.05)]
    assert nbcheck.compare([listed("0", *firm)], [listed("0", *firm)]) == []
    assert nbcheck.compare([listed("0", *firm)], [listed("0, 1", *firm)]) != []  # firm claims: the text must agree
    close = [("holds", 0.09, 0.05, 0.13), ("undecided", 0.02, -0.01, 0.05, True)]
    flipped = [("holds", 0.09, 0.05, 0.13), ("holds", 0.03, 0.001, 0.06, True)]
    assert nbcheck.compare([listed("0 (1 close)", *close)], [listed("0, 1", *flipped)]) == []
    assert nbcheck.compare([listed("0", *firm)], [listed("0", firm[0])]) != []  # another number of claims
    assert nbcheck.compare([listed("0", *firm)], [listed("0", firm[0], ("holds", 0.09, 0.05, 0.13))]) != []


def test_a_value_that_varies_by_run_is_compared_as_text():
    def varies(text):
        return glued("v", text, {"kind": "varies", "why": "which feature an SAE learns first"})

    assert nbcheck.compare([varies("17")], [varies("63")]) == []
    assert nbcheck.compare([varies("'20, 15, never'")], [varies("'never, 15, 16'")]) == []
    assert nbcheck.compare([varies("17")], [varies("0.5")]) != []  # another kind of value
    assert nbcheck.compare([varies("17")], [glued("v", "63")]) != []  # declared on one side only


def test_a_cell_tagged_varies_by_run_compares_its_printed_text_not_its_numbers():
    a, b = stream("epoch 5: 66.5%, 14 pairs"), stream("epoch 5: 66.3%, 13 pairs")
    assert nbcheck.compare([a], [b]) != []
    assert nbcheck.compare([a], [b], varies=True) == []
    assert nbcheck.compare([a], [stream("epoch 5: 66.3% and 13 pairs")], varies=True) != []
    listing = stream("2 pairs:\n  unit 7: digit 3\n  unit 1: digit 9")
    assert (
        nbcheck.compare(
            [listing], [stream("3 pairs:\n  unit 2: digit 3\n  unit 7: digit 3\n  unit 1: digit 9")], varies=True
        )
        == []
    )  # another number of rows of the same kinds
    assert nbcheck.compare([listing], [stream("2 pairs:\n  unit 7 loses digit 3")], varies=True) != []


def test_a_percentage_is_a_measured_share_not_a_count():
    assert nbcheck.compare([stream("24% of fc1_pre")], [stream("25% of fc1_pre")]) == []
    assert nbcheck.compare([stream("24% of fc1_pre")], [stream("26% of fc1_pre")]) != []


def test_a_table_written_from_claims_compares_their_verdicts():
    def table(text, *items):
        meta = {"kind": "claims", "verdicts_only": True, "claims": [claim(*i)["metadata"][nbcheck.META] for i in items]}
        return {
            "output_type": "display_data",
            "data": {"text/markdown": text, "text/plain": "<Markdown>"},
            "metadata": {nbcheck.META: meta},
        }

    firm, close = ("holds", 0.09, 0.05, 0.13), ("holds", 0.02, 0.001, 0.05, True)
    # Verdicts only: an estimate may move beyond its interval here (its chapter compares it).
    assert (
        nbcheck.compare(
            [table("| **holds** | 0.09 |", firm)], [table("| **holds** | 0.30 |", ("holds", 0.3, 0.2, 0.4))]
        )
        == []
    )
    assert (
        nbcheck.compare([table("| **holds** |", firm)], [table("| **not shown** |", ("undecided", 0.0, -0.1, 0.1))])
        != []
    )
    assert (
        nbcheck.compare(
            [table("| **holds** (close to the line) |", close)],
            [table("| **not shown** |", ("undecided", 0.01, -0.01, 0.04))],
        )
        == []
    )
    assert nbcheck.compare([table("| a |", firm)], [table("| b |", firm)]) != []  # firm claims: the text agrees
