"""`datakit_contract.exit_codes`: the codes orchestration decides from."""

from __future__ import annotations

from datakit_contract.exit_codes import RETRY_EXIT_CODES, SKIP_EXIT_CODES, ExitCode


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "SUCCESS": 0,
        "JOB_FAILED": 1,
        "USAGE": 2,
        "TRANSIENT": 3,
        "INTERNAL": 70,
        "NOTHING_TO_DO": 99,
    }


def test_only_a_transient_failure_is_retried_and_only_nothing_to_do_is_skipped() -> None:
    assert RETRY_EXIT_CODES == (3,)
    assert SKIP_EXIT_CODES == (99,)
    assert all(type(code) is int for code in (*RETRY_EXIT_CODES, *SKIP_EXIT_CODES))
