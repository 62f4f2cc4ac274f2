"""Schemathesis hooks for HealthCore's fuzzing test (tests/api/fuzz.rs).

A birth date is a `date` from 1900-01-01 to today: the document says so in words, as a schema
cannot name "today". Positive examples of the `date` format are drawn from that range, so a
generated registration is one the server must accept.
"""

import datetime
import re
import uuid

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "date",
    st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date.today()).map(datetime.date.isoformat),
)


@schemathesis.hook
def before_call(context, case, kwargs):
    """A client makes a new Idempotency-Key for each new request; the fuzzer draws keys that repeat,
    and a key sent again with another body is refused (422), as it must be. A well-formed key is
    made unique just before the request is sent; a malformed one is kept, for the server to refuse."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and re.fullmatch(r"[!-~]{1,255}", key):
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
