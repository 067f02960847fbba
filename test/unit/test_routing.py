import pytest

from dynasor.client import DynasorHTTPError, _Calls, _generate_call
from dynasor.core import routing
from dynasor.core.tag import new_program_id


def test_routing_key_is_stable_per_program_and_hides_the_id():
    a, b = new_program_id(), new_program_id()
    assert routing.routing_key(a) == routing.routing_key(a) != routing.routing_key(b)
    assert a not in routing.routing_key(a) and len(routing.routing_key(a)) == 32


def test_tagged_generate_carries_the_routing_header_untagged_does_not():
    pid = new_program_id()
    tagged = _generate_call("hi", {"max_new_tokens": 2}, pid, None, {})
    assert tagged.headers == {routing.ROUTING_KEY_HEADER: routing.routing_key(pid)}
    assert tagged.body["sampling_params"]["custom_params"]["dynasor"]["program_id"] == pid
    assert _generate_call("hi", None, None, None, {}).headers == {}


def test_worker_urls_from_the_routers_listing():
    listing = {"workers": [{"id": "w1", "url": "http://127.0.0.1:1/"}, {"id": "w2", "url": "http://127.0.0.1:2"}],
               "total": 2}
    assert routing.worker_urls(listing) == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    with pytest.raises(ValueError, match="no worker URLs"):
        routing.worker_urls({"workers": []})


def test_merges_of_program_calls_sent_to_every_worker():
    missing = (404, {"error": {"message": "program not found", "code": 404}})
    assert routing.merge_program([missing, (200, {"program_key": "k"})]) == {"program_key": "k"}
    with pytest.raises(routing.NotOnAnyWorker):
        routing.merge_program([missing, missing])
    merged = routing.merge_abort([missing, (200, {"program_key": "k", "aborted_requests": 3})])
    assert merged == {"program_key": "k", "workers": 1, "aborted_requests": 3}
    assert routing.merge_listings([{"programs": [1]}, {"programs": [2, 3]}]) == {"programs": [1, 2, 3], "count": 3}
    assert routing.merge_loads([{"running": 1, "waiting": 2}, {"running": 3, "waiting": 0}]) == {"running": 4,
                                                                                              "waiting": 2}


def test_client_merge_raises_404_when_no_worker_knows_and_passes_other_errors():
    calls = _Calls()
    missing = (404, {"error": {"message": "program not found", "code": 404}})
    with pytest.raises(DynasorHTTPError) as err:
        calls._merged(calls._program("p"), [missing, missing], "http://router")
    assert err.value.status == 404
    with pytest.raises(DynasorHTTPError) as err:
        calls._merged(calls._abort_program("p"), [missing, (500, "boom")], "http://router")
    assert err.value.status == 500
