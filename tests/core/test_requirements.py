"""The requirement merge of custom node packs: ``compatible`` against a brute-force search over a
dense grid of versions, the reading of requirements.txt, and who wins in a merge."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from eascomfy.core.requirements import Wanted, compatible, merge, read_requirements
from eascomfy.local.specfile import edit_list, item_lines

VERSIONS = [f"{a}.{b}" for a in range(4) for b in range(4)] + [f"{a}.{b}.{c}" for a in range(4) for b in range(4) for c in range(3)]
GRID = [Version(f"{a}.{b}.{c}.{d}") for a in range(5) for b in range(5) for c in range(4) for d in range(3)]
OPS = ["==", "!=", "<", "<=", ">", ">=", "~="]
spec = st.builds(lambda op, v: f"{op}{v}", st.sampled_from(OPS), st.sampled_from(VERSIONS)).filter(
    lambda s: not (s.startswith("~=") and s.count(".") < 1))
specs = st.lists(spec, min_size=0, max_size=2).map(",".join)


@settings(max_examples=300, deadline=None)
@given(specs, specs)
def test_compatible_agrees_with_a_search_over_many_versions(a: str, b: str) -> None:
    both = SpecifierSet(a) & SpecifierSet(b)
    # the grid is finer than every bound (one more release segment, and past the largest): a
    # version both accept exists exactly when one of the grid does
    assert compatible(a, b) == any(both.contains(v, prereleases=True) for v in GRID), (a, b)


def test_the_usual_conflicts() -> None:
    assert not compatible("<2", ">=2") and not compatible("==1.2", "==1.3") and not compatible("~=1.4.2", "<1.4")
    assert not compatible("==1.*", ">=2")
    assert compatible(">=1.20", "<2.0") and compatible("", "<2") and compatible(">=2", "!=2.0")


def test_requirements_txt_lines_and_what_is_left_out() -> None:
    found, left = read_requirements("numpy<2  # pinned\n\n# c\n-r base.txt\ngit+https://h/x.git\nx @ https://h/x.whl\n"
                                    "opencv-python>=4 ; sys_platform=='linux'\n")
    assert found == ["numpy<2", "opencv-python>=4 ; sys_platform=='linux'"]
    assert [ln for ln, _ in left] == ["-r base.txt", "git+https://h/x.git", "x @ https://h/x.whl"]


def test_a_merge_names_packs_keeps_the_users_word_and_replaces_a_packs_old_lines() -> None:
    m = merge([Wanted("numpy<2", "A"), Wanted("pillow>=10"), Wanted("rich", "B")],
              {"B": ["numpy>=2", "pillow<10", "torch", "tqdm"], "C": ["tqdm==4.0", "tqdm==4.1"]})
    assert [c.line() for c in m.conflicts] == ["numpy: A wants numpy<2, B wants numpy>=2",
                                               "tqdm: C wants tqdm==4.0, C wants tqdm==4.1"]
    assert [c.line() for c in m.overruled] == ["pillow: the spec's pip wants pillow>=10, B wants pillow<10"]
    assert m.drop == ["rich"] and [w.line for w in m.add] == ["tqdm", "tqdm==4.0"]
    assert [s["line"] for s in m.skipped] == ["torch"]


def test_notes_make_a_flow_list_a_block_list(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x  # top\npip: [rich>=13, \"a,b\"]  # mine\nwheels: [a.whl]\n")
    edit_list(spec, "pip", [("numpy<2", "nodes: A")])
    assert spec.read_text() == ('name: x  # top\npip:  # mine\n  - rich>=13\n  - "a,b"\n  - numpy<2  # nodes: A\n'
                                "wheels: [a.whl]\n")
    assert item_lines(spec, "pip")[2] == ("numpy<2", "  - numpy<2  # nodes: A")
