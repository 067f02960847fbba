"""Malformed tags are refused with HTTP 400 naming the field; nothing leaks; serving goes on."""

import httpx
import pytest

from dynasor.client import AsyncDynasorClient, DynasorHTTPError, _Call

GOOD_ID = "good-program-id-0001"


@pytest.mark.parametrize(
    "tag, message",
    [
        ({"program_id": 12345}, "custom_params.dynasor.program_id must be a string"),
        ({"program_id": ["a"]}, "custom_params.dynasor.program_id must be a string"),
        ({"program_id": "p" * 129}, "custom_params.dynasor.program_id must be 16 to 128 characters"),
        ({"program_id": "too-short"}, "custom_params.dynasor.program_id must be 16 to 128 characters"),
        ({"program_id": GOOD_ID, "budget": 3}, "custom_params.dynasor has unknown field(s) ['budget']"),
        ({}, "custom_params.dynasor.program_id is required"),
        ("program", "custom_params.dynasor must be an object"),
        ({"program_id": GOOD_ID, "stop_below_confidence": -1}, "custom_params.dynasor.stop_below_confidence must be"),
        ({"program_id": GOOD_ID, "stop_below_confidence": 2, "return_entropy": False},
         "custom_params.dynasor.stop_below_confidence needs sampling_params.custom_params.dynasor.return_entropy"),
        ({"program_id": GOOD_ID, "confidence_window": 0}, "custom_params.dynasor.confidence_window must be between"),
    ],
)
async def test_bad_tag_is_a_400_naming_the_field(url, tag, message):
    body = {"text": "Hello", "sampling_params": {"max_new_tokens": 2, "custom_params": {"dynasor": tag}}}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        response = await http.post("/generate", json=body)
        assert response.status_code == 400
        assert message in response.json()["error"]["message"]
        ok = await http.post("/generate", json={"text": "Hello", "sampling_params": {"max_new_tokens": 2, "ignore_eos": True}})
        assert ok.status_code == 200 and ok.json()["meta_info"]["completion_tokens"] == 2


async def test_bad_tag_in_a_batch_rejects_the_batch_and_leaks_nothing(url):
    body = {
        "text": ["First prompt", "Second prompt"],
        "sampling_params": [
            {"max_new_tokens": 2, "custom_params": {"dynasor": {"program_id": GOOD_ID}}},
            {"max_new_tokens": 2, "custom_params": {"dynasor": {"program_id": 7}}},
        ],
    }
    async with AsyncDynasorClient(url) as client:
        with pytest.raises(DynasorHTTPError) as err:
            await client._send(_Call("POST", "/generate", body))
        assert err.value.status == 400
        assert "sampling_params[1].custom_params.dynasor.program_id" in str(err.value.body)
        with pytest.raises(DynasorHTTPError) as missing:
            await client.program(GOOD_ID)  # the valid half of the batch never reached the scheduler
        assert missing.value.status == 404
        load = (await client.get("/v1/loads"))["loads"][0]
        assert load["num_waiting_reqs"] == 0 and load["num_running_reqs"] == 0


async def test_program_endpoints_validate_ids(url):
    async with AsyncDynasorClient(url) as client:
        for call in (client.program, client.abort_program):
            with pytest.raises(DynasorHTTPError) as err:
                await call("bad")
            assert err.value.status == 400 and "program_id" in str(err.value.body)
            with pytest.raises(DynasorHTTPError) as err:
                await call(client.new_program())
            assert err.value.status == 404


async def test_tagged_request_with_a_short_rid_is_refused(url):
    """SGLang aborts by rid prefix: a tagged rid like "a" could otherwise abort other clients' work."""
    body = {"text": "Hello", "rid": "a", "sampling_params": {
        "max_new_tokens": 2, "custom_params": {"dynasor": {"program_id": GOOD_ID}}}}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        response = await http.post("/generate", json=body)
        assert response.status_code == 400
        assert "rid of a tagged request must be 32 lowercase hex" in response.json()["error"]["message"]
        body["rid"] = "0123456789abcdef0123456789abcdef"
        assert (await http.post("/generate", json=body)).status_code == 200
