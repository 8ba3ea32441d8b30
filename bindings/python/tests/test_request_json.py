"""``request_to_json`` writes what ``request_from_json`` and ``sbd`` read."""

from __future__ import annotations

import json
from typing import Any

from sbd_policy import request_from_json, request_to_json


def test_every_corpus_request_survives_a_round_trip(corpus: dict[str, Any]) -> None:
    for i, case in enumerate(corpus["cases"]):
        request = request_from_json(case["request"])
        written = request_to_json(request)
        assert request_from_json(json.loads(json.dumps(written))) == request, f"case {i}"
        # Field for field the corpus's own JSON, where the corpus spells out every field.
        for key, value in case["request"].items():
            assert written[key] == value, f"case {i}: {key}"
