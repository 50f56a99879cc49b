"""Property-based runs of the live API with schemathesis: no input makes it answer 5xx, and every answer
matches the published schema (``/openapi.json``), for every operation and every caller.

* Stateless: every operation × every role (no key, scorer, reviewer, admin) × valid and invalid inputs.
  A caller without the right key gets 401/403, which the schema declares for each keyed operation
  (``serving.openapi``), so those answers are checked against it too.
* Stateful: schemathesis' state machine follows the schema's OpenAPI links (a listed or routed case to
  its page and its decisions, a decided case to its appeal, a campaign to its approval, publication
  and public announcement), as a reviewer and as an admin. Cases exist to chain on: the fixture
  routes every shop of the marketplace first, like a scoring client would.

Schemathesis' pytest loader (``schemathesis.pytest.from_fixture``) does not work with this pytest
version, so the operations are driven with its Python API and Hypothesis, bounded to keep the whole
module near a minute on a 2-core machine. The server is this module's own (a fresh database, the public
rate limit out of the way): the workflow calls publish campaigns and decide cases, which must not
leak into the other API tests.

One check is left out: ``positive_data_acceptance`` (a schema-valid request must not get 4xx). The
data contract has rules JSON Schema cannot state (event times not in the future, child rows of the
record's own shop, ``as_of`` in a plausible range; a case must be open to be decided), so a
schema-valid request can rightly get a 422 or 409.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure, FlakyReplay, FlakyStrategyDefinition, Unsatisfiable
from hypothesis.stateful import Bundle, initialize
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.engine.errors import is_inconsistent_replay
from schemathesis.generation.stateful.state_machine import StepInput
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import postgres_schema
from tests.serving.conftest import MAX_BATCH, Api, Registry, create_keys, start_api

ROLES: tuple[str | None, ...] = (None, "scorer", "reviewer", "admin")
#: DAJIA_SCHEMATHESIS_SCALE=10 multiplies every budget below, for a deeper run by hand
SCALE = float(os.environ.get("DAJIA_SCHEMATHESIS_SCALE", "1"))
#: examples per operation, role and mode; a role the operation refuses only needs a few (all 401/403)
EXAMPLES = {GenerationMode.POSITIVE: round(8 * SCALE), GenerationMode.NEGATIVE: round(4 * SCALE)}
REFUSED_EXAMPLES = round(2 * SCALE)
#: state machine scenarios per role, each up to 8 steps
SCENARIOS = round(40 * SCALE)
EXCLUDED = [positive_data_acceptance]
#: the bundle every schemathesis rule returns into; it files each answer under the links that can follow it
CATCH_ALL = Bundle("catch_all")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Api]:
    """The API over a fresh database of each kind (issue 23: both in CI)."""
    home = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{home / 'dajia.db'}"
        if request.param == "postgres":
            url = stack.enter_context(postgres_schema(request.getfixturevalue("postgres_admin_url"), prefix="st_"))
        keys = create_keys(url)
        a = start_api(
            registry, keys, home=home, database_url=url, public_rate_per_minute=1e6, public_rate_burst=100_000
        )
        a.wait_version("1")
        yield a
        a.stop()


@pytest.fixture(scope="module")
def suspected(server: Api) -> list[str]:
    """Route every shop of the marketplace, as a scoring client would: the suspected ones open cases."""
    from marketplace.loader import load_marketplace

    shops = [str(s) for s in load_marketplace(server.registry.data).shops["shop_id"]]
    scorer = server.client("scorer")
    out = []
    for i in range(0, len(shops), MAX_BATCH):
        r = scorer.post("/v1/scores", json={"shop_ids": shops[i : i + MAX_BATCH], "route": True})
        assert r.status_code == 200, r.text
        out += [x["shop_id"] for x in r.json()["results"] if x["case"] is not None]
    assert len(out) > 10, "too few suspected shops to chain case operations on"
    return out


def load_schema(api: Api, role: str | None) -> Any:
    """The published schema, with the role's key given to schemathesis as the API-key auth: it sets the
    key on every case (and its ``ignored_auth`` check then probes each keyed operation without it and with
    a wrong one). Without a role no key is sent."""
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    if role is not None:
        secret = api.keys[role]

        @schema.auth()
        class ApiKey:
            def get(self, case: Any, context: Any) -> str:
                return secret

            def set(self, case: Any, data: str, context: Any) -> None:
                case.headers["X-API-Key"] = data

    return schema


def exercise(op: Any, mode: GenerationMode, examples: int) -> list[int]:
    """Up to ``examples`` generated requests to ``op``, each validated; the statuses answered."""
    statuses: list[int] = []

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(timeout=60, excluded_checks=EXCLUDED)
        statuses.append(response.status_code)

    try:
        run()
    except Unsatisfiable:
        # no invalid input exists for an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, op.label
    return statuses


def test_every_operation_with_every_role(server: Api, suspected: list[str]) -> None:
    failures: list[str] = []
    seen: Counter[str] = Counter()
    labels: set[str] = set()
    for role in ROLES:
        for result in load_schema(server, role).get_all_operations():
            op = result.ok()
            labels.add(op.label)
            refused = False
            for mode, n in EXAMPLES.items():
                try:
                    statuses = exercise(op, mode, REFUSED_EXAMPLES if refused else n)
                except (AssertionError, FailureGroup, FlakyFailure) as exc:  # a check failed: note it, go on
                    failures.append(f"{op.label} as {role or 'no key'} ({mode.value}): {exc}")
                    continue
                refused = bool(statuses) and all(s in (401, 403) for s in statuses)
                seen.update(f"{s // 100}xx" for s in statuses)
    assert not failures, "\n\n".join(failures)
    assert {"POST /v1/scores", "GET /v1/cases/{case_id}", "POST /v1/campaigns/{campaign_id}/publication"} <= labels
    assert seen["2xx"] > 50 and seen["4xx"] > 50, seen


@pytest.mark.parametrize("role", ["reviewer", "admin"])
def test_stateful_workflows_follow_the_links(server: Api, suspected: list[str], role: str) -> None:
    # the disclosure routes take no link and need proposed entries no link creates: as extra starting
    # points they only spend the scenario budget (tests/serving/test_api.py drives them, four eyes included);
    # so do the seller links, whose signed token no link gives (tests/sanctions/test_seller_api.py drives them)
    schema = load_schema(server, role).exclude(path_regex="^/v1/(disclosures|seller-links)")
    followed: Counter[str] = Counter()
    list_cases, score = schema["/v1/cases"]["GET"], schema["/v1/scores"]["POST"]

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        """Schemathesis' machine over the links; each scenario starts as a reviewer's day does, from the
        queue of open cases, and (admin) by routing a few suspected shops. Schemathesis picks neither as a
        starting point by itself: their shop ids come from the marketplace, which no operation creates."""

        @initialize(target=CATCH_ALL)
        def open_queue(self) -> Any:
            return self.start(list_cases.Case(query={"status": "open", "limit": 20}))

        @initialize(target=CATCH_ALL, shops=st.lists(st.sampled_from(suspected), min_size=1, max_size=3, unique=True))
        def route_shops(self, shops: list[str]) -> Any:
            return self.start(score.Case(body={"shop_ids": shops, "route": True}))

        def start(self, case: Any) -> Any:
            # a case built by hand gets the key the way generated ones do, then the bookkeeping
            # schemathesis' own starting rules do (its stateful checks look cases up there)
            schema.auth.set(case, schemathesis.AuthContext(operation=case.operation, app=None))
            step = StepInput.initial(case)
            self.recorder.record_case(case=case)
            self.control.record_step(step, self.recorder)
            return self._step(step)

        scenarios = 0

        def teardown(self) -> None:
            type(self).scenarios += 1
            super().teardown()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"timeout": 60}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            if input.transition is not None and input.is_applied:
                link = input.transition.id.split(" -> ")[-2]  # "<source> -> [200] <name> -> <target>"
                followed[f"{link} -> {input.case.operation.label} {output.response.status_code}"] += 1
            return output

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=EXCLUDED,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    # The server's state changes under the machine (cases get decided, campaigns published), so a later
    # scenario can find other rules available than Hypothesis recorded for the same choices: Hypothesis
    # stops with an inconsistent-generation error. Schemathesis' own runner treats that as the end of a
    # run, not a failure, and runs again; so does this loop, until the scenario budget is spent. A failed
    # check is a FailureGroup (or FlakyFailure when a replay did not fail again): it propagates.
    runs = 0
    while Workflow.scenarios < SCENARIOS and runs < 10:
        runs += 1
        try:
            Workflow.run(
                settings=settings(
                    max_examples=SCENARIOS - Workflow.scenarios,
                    stateful_step_count=8,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
        except (FlakyStrategyDefinition, FlakyReplay):
            continue
        except AssertionError as exc:
            if is_inconsistent_replay(exc):
                continue
            raise
        break
    ok = {t for t in followed if t.endswith(" 200")}
    # a case found in the queue was opened and decided through the links
    assert "[200] Case -> GET /v1/cases/{case_id} 200" in ok, dict(followed)
    assert any(t.startswith("[200] DecideCase -> POST /v1/cases/{case_id}/decisions") for t in ok), dict(followed)
    if role == "admin":  # a routed shop's case was fetched from the scoring answer
        assert "[200] RoutedCase -> GET /v1/cases/{case_id} 200" in ok, dict(followed)
