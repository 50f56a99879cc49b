"""What the published schema (``/openapi.json``) states beyond what FastAPI derives from the routes.

* The error answers every operation can give, declared in one place from the rules that produce
  them, so a client (and schemathesis) can rely on the schema: 401/403 on operations that need a key
  (``serving.deps.authorise``), 422 with the service's error body wherever there is input to validate
  (FastAPI would publish its own ``HTTPValidationError`` shape, which this service never sends), 413
  where there is a body (``serving.middleware``), 429 with ``Retry-After`` on the rate-limited paths
  (``serving.ratelimit``), and 400/503 on every ``/v1`` operation (a refused request; the database
  unreachable, ``serving.errors``).
* OpenAPI links between operations (a listed or routed case to its page and its decisions, a created
  campaign to its approval, publication and public announcement), for clients and stateful testing.
"""

from __future__ import annotations

import re
from typing import Any

from serving.ratelimit import is_limited

ERROR = {"$ref": "#/components/schemas/ErrorBody"}
RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}

#: status -> description, for the answers declared below
DESCRIPTIONS = {
    400: "the request is refused (a rule of the service, named in `message`)",
    401: "no API key, or an unknown or revoked one (header `X-API-Key`)",
    403: "this key's role may not do this",
    413: "body larger than the limit",
    422: "invalid input; `errors[].path` names each field",
    429: "rate limit of unkeyed requests per client exceeded; retry after `Retry-After` seconds",
    503: "the database is unreachable right now; retry after `Retry-After` seconds",
}

CASE = ("get", "/v1/cases/{case_id}")
DECIDE = ("post", "/v1/cases/{case_id}/decisions")
APPEAL = ("post", "/v1/cases/{case_id}/appeal-decisions")
CAMPAIGN = ("get", "/v1/campaigns/{campaign_id}")
APPROVE = ("post", "/v1/campaigns/{campaign_id}/approval")
PUBLISH = ("post", "/v1/campaigns/{campaign_id}/publication")
ANNOUNCEMENT = ("get", "/v1/public/announcements/{campaign_id}")

#: (method, path) -> (where the 200 body holds the id, {link name: target operation}); each target takes
#: that id as its one path parameter
LINKS: dict[tuple[str, str], tuple[str, dict[str, tuple[str, str]]]] = {
    ("post", "/v1/scores"): ("/results/0/case/case_id", {"RoutedCase": CASE}),
    ("get", "/v1/cases"): ("/0/case_id", {"Case": CASE, "DecideCase": DECIDE, "DecideAppeal": APPEAL}),
    CASE: ("/case_id", {"DecideCase": DECIDE, "DecideAppeal": APPEAL}),
    DECIDE: ("/case_id", {"DecidedCase": CASE, "DecideAppeal": APPEAL}),
    APPEAL: ("/case_id", {"DecidedCase": CASE}),
    ("get", "/v1/campaigns"): ("/0/campaign_id", {"Campaign": CAMPAIGN, "Approve": APPROVE}),
    ("post", "/v1/campaigns"): ("/campaign_id", {"Campaign": CAMPAIGN, "Approve": APPROVE}),
    APPROVE: ("/campaign_id", {"Campaign": CAMPAIGN, "Publish": PUBLISH}),
    PUBLISH: ("/campaign_id", {"Campaign": CAMPAIGN, "Announcement": ANNOUNCEMENT}),
    ("get", "/v1/public/announcements"): ("/0/campaign_id", {"Announcement": ANNOUNCEMENT}),
}


def _error_codes(path: str, op: dict[str, Any], rate_limited: bool) -> list[int]:
    codes = []
    if path.startswith("/v1/"):
        codes += [400, 503]
    if op.get("security"):
        codes += [401, 403]
    if op.get("parameters") or op.get("requestBody"):
        codes.append(422)
    if op.get("requestBody"):
        codes.append(413)
    if rate_limited and is_limited(path):
        codes.append(429)
    return sorted(codes)


def declare_errors_and_links(spec: dict[str, Any], rate_limited: bool) -> None:
    """Add the error answers and links to ``spec`` (FastAPI's generated schema), in place.

    Answers a route already declares keep their description; their body becomes ``ErrorBody``.
    """
    ids = {(m, p): op.get("operationId") for p, item in spec.get("paths", {}).items() for m, op in item.items()}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            for code in _error_codes(path, op, rate_limited):
                answer = responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
                answer["content"] = {"application/json": {"schema": ERROR}}
                if code == 429:
                    answer["headers"] = {"Retry-After": {**RETRY_AFTER, "required": True}}
                elif code == 503:
                    answer.setdefault("headers", {"Retry-After": RETRY_AFTER})
            if (method, path) in LINKS and "200" in responses:
                pointer, targets = LINKS[(method, path)]
                responses["200"]["links"] = {
                    name: {
                        "operationId": ids[target],
                        "parameters": {re.findall(r"{(\w+)}", target[1])[0]: f"$response.body#{pointer}"},
                    }
                    for name, target in targets.items()
                }
