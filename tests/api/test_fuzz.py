"""Property-based fuzzing of every operation in the OpenAPI document: no input may make the API answer 5xx.

The operations are read from the served document, so endpoints added later are covered without touching this
file. Requests carry a valid token of a seeded workspace and, most of the time, that workspace's slug in the path,
so they reach the views rather than stopping at authentication. Generation is derandomized: the same document
gives the same requests on every run.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

# Examples per operation (positive and negative generation together); FUZZ_EXAMPLES=300 digs deeper locally.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10, "the document should list the API's operations"
    return operations


def _strategy(operation, tenant):
    in_workspace = {"workspace": tenant.workspace} if "{workspace}" in operation.path else None
    strategies = []
    for mode, weight in ((GenerationMode.POSITIVE, 3), (GenerationMode.NEGATIVE, 1)):
        if in_workspace:
            strategies += [operation.as_strategy(generation_mode=mode, path_parameters=in_workspace)] * weight
        strategies.append(operation.as_strategy(generation_mode=mode))
    return st.one_of(strategies)


def test_no_operation_answers_with_a_server_error(app, tenant):
    failures = []
    for operation in _operations(app):

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=_strategy(operation, tenant))
        def check(case):
            response = case.call(headers=tenant.headers)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
