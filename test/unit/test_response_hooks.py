"""Token statistics in a batch's customized_info reach only the requests that have values (SGLang
copies every key of the batch to every request); other keys pass through."""

from types import SimpleNamespace

from dynasor.srt.response_hooks import keep_token_stats_to_those_that_asked


def passed_keys(customized_info, index, reported=()):
    seen = {}

    def original(tm, meta_info, state, info, i, finish_reason):
        seen.update(info)

    state = SimpleNamespace(customized_info_reported_keys=set(reported))
    keep_token_stats_to_those_that_asked(original, None, {}, state, customized_info, index, None)
    return set(seen)


def test_a_request_without_values_gets_no_statistics_keys_others_keep_theirs():
    info = {"entropy": [[0.5, 0.7], [None, None]], "topk_confidence": [[1.0, 2.0], [None, None]],
            "other": [["x"], [None]]}
    assert passed_keys(info, 0) == {"entropy", "topk_confidence", "other"}
    assert passed_keys(info, 1) == {"other"}


def test_a_request_that_had_values_keeps_its_keys_in_a_chunk_without_new_ones():
    info = {"entropy": [[], [0.1]]}
    assert passed_keys(info, 0, reported={"entropy"}) == {"entropy"}
    assert passed_keys(info, 0) == set()
