"""A spec's ``regions`` and its per-region ``storage.oss`` mapping (issue 12), offline: any mix of
listed regions, mapped regions and buckets is accepted exactly when every listed region has a
bucket, no other region has one and no bucket serves two regions; an accepted spec resolves to
one service per region, each on its own bucket."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from eascomfy.core.fleet import Member, Selector, fleet_files, select
from eascomfy.core.spec import load_spec, load_specs
from eascomfy.errors import SpecError, UsageError

POOL = ["cn-hangzhou", "cn-shanghai", "ap-southeast-1", "cn-beijing"]
BUCKETS = ["b-one", "b-two", "b-three", "b-four"]


def write(text: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fleet-regions-"))
    (folder / "eascomfy.yaml").write_text(text)
    return folder / "eascomfy.yaml"


def spec(regions: list[str], mapping: dict[str, str]) -> str:
    oss = "\n" + "".join(f"    {r}: oss://{b}/comfy/\n" for r, b in mapping.items()) if mapping else " {}\n"
    return f"name: fleet_prop\nregions: [{', '.join(regions)}]\nedition: standard\nimage: {{version: \"1.9\"}}\nstorage:\n  oss:{oss}"


@settings(max_examples=60, deadline=None)
@given(regions=st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True),
       mapping=st.dictionaries(st.sampled_from(POOL), st.sampled_from(BUCKETS), max_size=4))
def test_regions_and_buckets(regions: list[str], mapping: dict[str, str]) -> None:
    path = write(spec(regions, mapping))
    valid = set(mapping) == set(regions) and len(set(mapping.values())) == len(mapping)
    try:
        specs = load_specs(path)
    except SpecError as exc:
        assert not valid, str(exc)
        assert exc.path is not None and exc.path.startswith("storage.oss"), str(exc)
        return
    assert valid
    assert [s.region for s in specs] == regions
    for s in specs:
        assert s.data["storage"]["oss"] == f"oss://{mapping[s.region]}/comfy/"
        assert "regions" not in s.data
    one = load_spec(path, region=regions[-1])
    assert one.region == regions[-1] and one.data == specs[-1].data


def test_a_mapping_needs_regions_and_regions_need_one_of_them() -> None:
    path = write("name: fleet_prop\nregion: cn-hangzhou\nedition: standard\nstorage:\n  oss:\n    cn-hangzhou: oss://bkt/c/\n")
    with pytest.raises(SpecError, match="a mapping of regions to buckets needs `regions:`"):
        load_spec(path)
    path = write("name: fleet_prop\nregions: [cn-hangzhou]\nedition: standard\nstorage:\n  nas: {server: a.nas.aliyuncs.com}\n")
    with pytest.raises(SpecError, match="a NAS file system is in one region"):
        load_spec(path)
    path = write("name: fleet_prop\nregions: [cn-hangzhou]\nedition: standard\nnetwork: {vpc_id: vpc-abcdefgh12, "
                 "vswitch_id: vsw-abcdefgh12, security_group_id: sg-abcdefgh12}\n")
    with pytest.raises(SpecError, match="a VPC, its vSwitches and security group are in one region"):
        load_spec(path)
    path = write("name: fleet_prop\nregions: [cn-hangzhou, cn-hangzhou]\nedition: standard\n")
    with pytest.raises(SpecError, match="listed twice"):
        load_spec(path)
    path = write("name: fleet_prop\nregions: [cn-hangzhuo]\nedition: standard\n")  # the region table, per region
    with pytest.raises(SpecError, match="did you mean 'cn-hangzhou'") as err:
        load_specs(path)
    assert err.value.location.line == 2
    path = write("name: fleet_prop\nregions: [cn-hangzhou, cn-shanghai]\nedition: standard\n")
    with pytest.raises(UsageError, match="does not deploy to cn-beijing"):
        load_spec(path, region="cn-beijing")


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=6), st.sampled_from(POOL),
       st.sampled_from(["a", "b", "c", "d"]))
def test_select_picks_exactly_the_matching_members(names: list[str], region: str, wanted: str) -> None:
    members = [Member(n, POOL[i % len(POOL)], {"k": n}, f"{n}.yaml") for i, n in enumerate(names)]
    expected = [i for i, m in enumerate(members) if m.name == wanted and m.region == region]
    try:
        assert select(members, Selector(wanted, region)) == expected
    except UsageError as exc:
        assert not expected
        assert exc.param in ("service", "region") or "together" in exc.message


def test_overlays_beside_a_spec_are_not_specs(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    for name in ("a.yaml", "a.prod.yaml", "b.c.yaml", "d.yml"):
        (tmp_path / "services" / name).write_text("x: 1\n")
    assert sorted(p.name for p in fleet_files(tmp_path)) == ["a.yaml", "b.c.yaml", "d.yml"]
    with pytest.raises(UsageError, match="no fleet in"):
        fleet_files(tmp_path / "services")
