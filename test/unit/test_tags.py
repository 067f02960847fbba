import pytest

from dynasor.client import tag_sampling_params
from dynasor.tags import (
    PROGRAM_ID_MAX_LEN,
    PROGRAM_ID_MIN_LEN,
    ProgramTag,
    TagError,
    new_program_id,
    parse_tag,
    program_id_of,
    program_key,
    tag_from_sampling_params,
)

GOOD = "a" * PROGRAM_ID_MIN_LEN


def test_new_program_ids_are_valid_and_distinct():
    ids = {new_program_id() for _ in range(1000)}
    assert len(ids) == 1000
    for pid in list(ids)[:10]:
        assert parse_tag({"program_id": pid}).program_id == pid


def test_program_key_is_stable_short_and_hides_the_id():
    pid = new_program_id()
    assert program_key(pid) == program_key(pid)
    assert len(program_key(pid)) == 16
    assert pid not in program_key(pid)
    assert program_key(pid) != program_key(new_program_id())


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"program_id": 5}, "program_id must be a string"),
        ({"program_id": None}, "program_id must be a string"),
        ({"program_id": "x" * (PROGRAM_ID_MAX_LEN + 1)}, "program_id must be 16 to 128"),
        ({"program_id": "short"}, "program_id must be 16 to 128"),
        ({"program_id": "bad id with spaces!"}, "may only contain"),
        ({"program_id": GOOD, "colour": "red"}, "unknown field(s) ['colour']"),
        ({}, "program_id is required"),
        ("not-an-object", "must be an object"),
        (["list"], "must be an object"),
    ],
)
def test_malformed_tags_name_the_field(raw, field):
    with pytest.raises(TagError) as err:
        parse_tag(raw)
    assert field in str(err.value)
    assert err.value.status_code == 400


def test_tag_from_sampling_params():
    assert tag_from_sampling_params(None) is None
    assert tag_from_sampling_params({"temperature": 0.5}) is None
    assert tag_from_sampling_params({"custom_params": {"other": 1}}) is None
    tag = tag_from_sampling_params({"custom_params": {"dynasor": {"program_id": GOOD}}})
    assert tag == ProgramTag(GOOD)
    with pytest.raises(TagError, match=r"sampling_params\[2\]\.custom_params\.dynasor\.program_id"):
        tag_from_sampling_params({"custom_params": {"dynasor": {"program_id": 1}}}, "sampling_params[2]")


def test_program_id_of_never_raises():
    assert program_id_of({"custom_params": {"dynasor": {"program_id": GOOD}}}) == GOOD
    assert program_id_of({"custom_params": {"dynasor": {"program_id": 3}}}) is None
    assert program_id_of(None) is None


def test_client_tags_without_touching_other_custom_params():
    params = {"max_new_tokens": 4, "custom_params": {"mine": 1}}
    tagged = tag_sampling_params(params, GOOD)
    assert tagged["custom_params"] == {"mine": 1, "dynasor": {"program_id": GOOD, "return_entropy": True}}
    assert params["custom_params"] == {"mine": 1}
    assert tag_sampling_params(params, None) == params
    with pytest.raises(TagError):
        tag_sampling_params(params, "short")


def test_return_entropy_field():
    assert parse_tag({"program_id": GOOD}).return_entropy is True
    assert parse_tag({"program_id": GOOD, "return_entropy": False}).return_entropy is False
    with pytest.raises(TagError, match="return_entropy must be a boolean"):
        parse_tag({"program_id": GOOD, "return_entropy": "yes"})
