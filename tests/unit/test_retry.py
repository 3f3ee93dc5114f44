from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import timedelta

import pytest

from engine.core.errors import EngineError
from engine.core.retry import RetryPolicy, RetryPolicyError, next_delay


def _zero() -> float:
    return 0.0


def _half() -> float:
    return 0.5


def _one() -> float:
    return 1.0


def _never() -> float:
    raise AssertionError("rand must not be called when no delay is due")


NO_JITTER = RetryPolicy(retries=10, initial_delay=1.0, max_delay=10.0, jitter=0.0)


@pytest.mark.parametrize(
    ("policy", "failures", "expected"),
    [
        # Exponential 1, 2, 4, 8, then capped at max_delay.
        (NO_JITTER, 1, 1.0),
        (NO_JITTER, 2, 2.0),
        (NO_JITTER, 3, 4.0),
        (NO_JITTER, 4, 8.0),
        (NO_JITTER, 5, 10.0),
        (NO_JITTER, 10, 10.0),
        (NO_JITTER, 11, None),
        (RetryPolicy(retries=3, initial_delay=5, backoff_coefficient=3, jitter=0), 3, 45.0),
        (RetryPolicy.parse("R2/PT10S"), 1, 10.0),
        (RetryPolicy.parse("R2/PT10S"), 2, 10.0),
        (RetryPolicy.parse("R2/PT10S"), 3, None),
        (RetryPolicy.parse("PT1M,PT5M,PT10M"), 1, 60.0),
        (RetryPolicy.parse("PT1M,PT5M,PT10M"), 2, 300.0),
        (RetryPolicy.parse("PT1M,PT5M,PT10M"), 3, 600.0),
        (RetryPolicy.parse("PT1M,PT5M,PT10M"), 4, None),
        # An explicit schedule shorter than retries repeats its last entry.
        (RetryPolicy(retries=4, delays=(1, 2), jitter=0), 4, 2.0),
        (RetryPolicy(retries=0, jitter=0), 1, None),
        # A huge exponent overflows float arithmetic: the cap still holds.
        (RetryPolicy(retries=5000, initial_delay=1, max_delay=60, jitter=0), 5000, 60.0),
    ],
)
def test_next_delay_table(policy: RetryPolicy, failures: int, expected: float | None) -> None:
    want = None if expected is None else timedelta(seconds=expected)
    assert next_delay(policy, failures) == want
    assert policy.next_delay(failures) == want


def test_exhaustion_does_not_draw_randomness() -> None:
    assert next_delay(RetryPolicy(retries=2), 3, rand=_never) is None


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(_zero, 7.5), (_half, 10.0), (_one, 12.5)],
)
def test_jitter_bounds(rand: Callable[[], float], expected: float) -> None:
    policy = RetryPolicy(retries=3, initial_delay=10, jitter=0.25)
    assert next_delay(policy, 1, rand=rand) == timedelta(seconds=expected)


def test_cap_applies_before_jitter() -> None:
    policy = RetryPolicy(retries=9, initial_delay=10, max_delay=20, jitter=0.5)
    assert policy.next_delay(5, rand=_one) == timedelta(seconds=30)
    assert policy.next_delay(5, rand=_zero) == timedelta(seconds=10)


def test_full_jitter_never_goes_below_zero() -> None:
    policy = RetryPolicy(initial_delay=4, jitter=1.0)
    assert policy.next_delay(1, rand=_zero) == timedelta(0)


def test_jitter_applies_to_explicit_delays() -> None:
    policy = RetryPolicy(retries=2, delays=(100,), jitter=0.1)
    assert policy.next_delay(2, rand=_one) == timedelta(seconds=110)


def test_parse_repeat_form() -> None:
    policy = RetryPolicy.parse("R5/PT1M")
    assert policy == RetryPolicy(
        retries=5, initial_delay=60, backoff_coefficient=1, max_delay=60, jitter=0
    )
    assert policy.delays is None


def test_parse_list_form_allows_spaces() -> None:
    policy = RetryPolicy.parse(" PT1M, PT5M ,PT10M ")
    assert policy.delays == (60.0, 300.0, 600.0)
    assert (policy.retries, policy.jitter, policy.backoff_coefficient) == (3, 0.0, 1.0)
    assert (policy.initial_delay, policy.max_delay) == (60.0, 600.0)


def test_parse_single_duration_uses_camunda_default_of_three_retries() -> None:
    policy = RetryPolicy.parse("PT5M")
    assert (policy.retries, policy.initial_delay, policy.max_delay) == (3, 300.0, 300.0)
    assert [policy.next_delay(k) for k in (1, 2, 3, 4)] == [timedelta(minutes=5)] * 3 + [None]


def test_parse_zero_retries_and_zero_delay() -> None:
    assert RetryPolicy.parse("R0/PT0S").next_delay(1) is None
    assert RetryPolicy.parse("R1/PT0S").next_delay(1) == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "R/PT1M",  # Camunda needs a count
        "R5",
        "R5/",
        "Rx/PT1M",
        "R-1/PT1M",
        "R5/PT1M/PT2M",
        "PT1M,,PT5M",
        "PT1M,",
        "5 minutes",
        "P1M",  # calendar months have no fixed length
        "R3/P1Y",
        "-PT1M",
        "PT" + "1" * 300 + "S",
    ],
)
def test_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(RetryPolicyError, match="invalid retry cycle"):
        RetryPolicy.parse(text)


def test_parse_error_names_the_text() -> None:
    with pytest.raises(RetryPolicyError, match="'R/PT1M'"):
        RetryPolicy.parse("R/PT1M")


def test_retry_policy_error_is_an_engine_error() -> None:
    assert issubclass(RetryPolicyError, EngineError)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": math.nan}, "initial_delay"),
        ({"initial_delay": "1s"}, "initial_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"initial_delay": 10, "max_delay": 5}, "max_delay"),
        ({"initial_delay": timedelta(seconds=-1)}, "initial_delay"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"backoff_coefficient": math.nan}, "backoff_coefficient"),
        ({"backoff_coefficient": math.inf}, "backoff_coefficient"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"delays": ()}, "delays"),
        ({"delays": (1, -2)}, r"delays\[1\]"),
        ({"non_retryable": (ValueError, int)}, "non_retryable"),
        ({"non_retryable": ("ValueError",)}, "non_retryable"),
    ],
)
def test_validation_names_field_and_value(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RetryPolicyError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_timedelta_inputs_are_normalised_to_seconds() -> None:
    policy = RetryPolicy(
        initial_delay=timedelta(seconds=1.5),
        max_delay=timedelta(minutes=2),
        delays=[timedelta(seconds=3), 4],
    )
    assert policy.initial_delay == 1.5
    assert policy.max_delay == 120.0
    assert policy.delays == (3.0, 4.0)
    assert isinstance(policy.initial_delay, float)
    assert policy == RetryPolicy(initial_delay=1.5, max_delay=120, delays=(3, 4))
    assert hash(policy) == hash(RetryPolicy(initial_delay=1.5, max_delay=120, delays=(3, 4)))


def test_non_retryable() -> None:
    class Fatal(Exception):
        pass

    class VeryFatal(Fatal):
        pass

    policy = RetryPolicy(non_retryable=(Fatal, KeyError))
    assert not policy.is_retryable(Fatal())
    assert not policy.is_retryable(VeryFatal())
    assert not policy.is_retryable(KeyError("x"))
    assert policy.is_retryable(ValueError())
    assert RetryPolicy().is_retryable(KeyboardInterrupt())
    # A single class is accepted as well as a tuple.
    assert RetryPolicy(non_retryable=Fatal).non_retryable == (Fatal,)


def test_replace_and_overrides_revalidate() -> None:
    policy = RetryPolicy(jitter=0)
    assert dataclasses.replace(policy, retries=7).retries == 7
    assert policy.with_overrides(initial_delay=timedelta(seconds=2)).initial_delay == 2.0
    with pytest.raises(RetryPolicyError, match="jitter"):
        policy.with_overrides(jitter=2)


def test_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().retries = 5  # type: ignore[misc]


@pytest.mark.parametrize("failures", [0, -1])
def test_failures_must_be_positive(failures: int) -> None:
    with pytest.raises(RetryPolicyError, match="failures"):
        next_delay(RetryPolicy(), failures)
