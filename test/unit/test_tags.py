import pytest

from dynasor.core.tag import (
    PROGRAM_ID_MAX_LEN,
    PROGRAM_ID_MIN_LEN,
    ProgramTag,
    RequestHints,
    TagError,
    new_program_id,
    parse_tag,
    program_id_of,
    program_key,
    tag_from_sampling_params,
    tag_sampling_params,
    validate_tagged_rid,
)

GOOD = "a" * PROGRAM_ID_MIN_LEN


def test_new_program_ids_are_valid_and_distinct():
    ids = {new_program_id() for _ in range(1000)}
    assert len(ids) == 1000
    for pid in list(ids)[:10]:
        assert parse_tag({"program_id": pid}).program_id == pid


def test_program_key_is_a_keyed_hash():
    pid, secret = new_program_id(), b"server-secret"
    assert program_key(pid, secret) == program_key(pid, secret)
    assert len(program_key(pid, secret)) == 16 and pid not in program_key(pid, secret)
    assert program_key(pid, secret) != program_key(new_program_id(), secret)
    # without the server's secret a guessable id cannot be matched against a listing
    assert program_key("my-program-00001", secret) != program_key("my-program-00001", b"other")


def test_tagged_rids_must_be_32_hex():
    validate_tagged_rid(None)
    validate_tagged_rid("0123456789abcdef0123456789abcdef")
    for bad in ("a", "req-1", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef\n", 5):
        with pytest.raises(TagError, match="32 lowercase hex"):
            validate_tagged_rid(bad)


def test_program_id_rejects_trailing_newline():
    with pytest.raises(TagError, match="may only contain"):
        parse_tag({"program_id": GOOD + "\n"})


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
        ({"program_id": GOOD, "stop_below_confidence": 0}, "stop_below_confidence must be a finite number > 0"),
        ({"program_id": GOOD, "stop_below_confidence": float("nan")}, "stop_below_confidence must be a finite"),
        ({"program_id": GOOD, "stop_below_confidence": float("inf")}, "stop_below_confidence must be a finite"),
        ({"program_id": GOOD, "stop_below_confidence": "2"}, "stop_below_confidence must be a number"),
        ({"program_id": GOOD, "stop_below_confidence": True}, "stop_below_confidence must be a number"),
        ({"program_id": GOOD, "stop_below_confidence": 2.0, "return_entropy": False}, "needs"),
        ({"program_id": GOOD, "confidence_window": 0}, "confidence_window must be between 1 and 65536"),
        ({"program_id": GOOD, "confidence_window": 65537}, "confidence_window must be between 1 and 65536"),
        ({"program_id": GOOD, "confidence_window": 8.0}, "confidence_window must be an integer"),
        ({"program_id": GOOD, "confidence_window": False}, "confidence_window must be an integer"),
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
    assert tagged["custom_params"] == {"mine": 1, "dynasor": {"program_id": GOOD, "return_entropy": False}}
    assert params["custom_params"] == {"mine": 1}
    assert tag_sampling_params(params, None) == params
    with pytest.raises(TagError):
        tag_sampling_params(params, "short")


def test_return_entropy_field_is_off_unless_asked_or_needed_by_a_confidence_stop():
    assert parse_tag({"program_id": GOOD}).return_entropy is False
    assert parse_tag({"program_id": GOOD, "return_entropy": True}).return_entropy is True
    assert parse_tag({"program_id": GOOD, "stop_below_confidence": 2.0}).return_entropy is True
    with pytest.raises(TagError, match="stop_below_confidence needs"):
        parse_tag({"program_id": GOOD, "stop_below_confidence": 2.0, "return_entropy": False})
    assert RequestHints().tag(GOOD, None).return_entropy is False
    assert RequestHints(token_stats=True).tag(GOOD, None).return_entropy is True
    assert RequestHints(stop_below_confidence=1.0).tag(GOOD, None).return_entropy is True
    with pytest.raises(TagError, match="return_entropy must be a boolean"):
        parse_tag({"program_id": GOOD, "return_entropy": "yes"})


def test_deferred_field():
    assert parse_tag({"program_id": GOOD}).deferred is False
    tag = parse_tag({"program_id": GOOD, "deferred": True})
    assert tag.deferred is True and parse_tag(tag.to_json()) == tag
    assert "deferred" not in parse_tag({"program_id": GOOD}).to_json()
    with pytest.raises(TagError, match="deferred must be a boolean"):
        parse_tag({"program_id": GOOD, "deferred": 1})


def test_confidence_stop_fields_round_trip():
    tag = parse_tag({"program_id": GOOD, "stop_below_confidence": 3, "confidence_window": 16})
    assert tag.stop_below_confidence == 3.0 and tag.confidence_window == 16
    assert parse_tag(tag.to_json()) == tag
    plain = parse_tag({"program_id": GOOD})
    assert plain.stop_below_confidence is None and plain.confidence_window is None
    assert "stop_below_confidence" not in plain.to_json()
