"""Compensation as Camunda 7 runs it: handlers of completed activities, newest first."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest

from engine import DeploymentError, ProcessEngine, RetryPolicy, TaskContext
from engine.testing import ManualClock
from tests.bpmnbuild import process, service, user


def boundary(activity: str, handler_id: str) -> str:
    bid = f"Comp_{activity}"
    return (
        f'<bpmn:boundaryEvent id="{bid}" attachedToRef="{activity}">'
        "<bpmn:compensateEventDefinition /></bpmn:boundaryEvent>"
        f'<bpmn:association id="Assoc_{activity}" sourceRef="{bid}" targetRef="{handler_id}" />'
    )


def undo(handler_id: str, name: str, tag: str = "serviceTask") -> str:
    impl = f'spillway:handler="{name}"' if tag == "serviceTask" else ""
    return f'<bpmn:{tag} id="{handler_id}" isForCompensation="true" {impl} />'


def compensable(activity: str, name: str) -> str:
    """Boundary event and handler ``Undo<activity>`` calling ``undo-<name>``."""
    return boundary(activity, f"Undo{activity}") + undo(f"Undo{activity}", f"undo-{name}")


def throw(
    event_id: str = "Throw", ref: str | None = None, tag: str = "intermediateThrowEvent"
) -> str:
    attr = f' activityRef="{ref}"' if ref else ""
    return f'<bpmn:{tag} id="{event_id}"><bpmn:compensateEventDefinition{attr} /></bpmn:{tag}>'


class Calls:
    """Registers recording handlers: ``name`` returns ``{name: <call number>}``."""

    def __init__(self, eng: ProcessEngine, *names: str) -> None:
        self.names: list[str] = []
        for name in names:
            eng.register_handler(name, self._handler(name))

    def _handler(self, name: str) -> Callable[[TaskContext], dict[str, object]]:
        def handler(ctx: TaskContext) -> dict[str, object]:
            self.names.append(name)
            return {name.replace("-", "_"): len(self.names)}

        return handler


def visited(eng: ProcessEngine, instance_id: str) -> list[str]:
    return [h.activity_id for h in eng.history(instance_id)]


def test_handlers_run_newest_first_for_completed_activities_only(eng: ProcessEngine) -> None:
    calls = Calls(eng, "a", "b", "c", "undo-a", "undo-b", "undo-c")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            service("B", "b"),
            throw(),
            service("C", "c"),
            extra=compensable("A", "a") + compensable("B", "b") + compensable("C", "c"),
        )
    )
    inst = eng.start("p")
    assert inst.state == "completed"
    assert calls.names == ["a", "b", "undo-b", "undo-a", "c"]  # C was not reached: not undone
    assert inst.variables["undo_a"] == 4 and inst.variables["undo_b"] == 3
    # History names the handlers as drawn; the throw event ends after its handlers.
    assert visited(eng, inst.id) == [
        "StartEvent_1",
        "A",
        "B",
        "UndoB",
        "UndoA",
        "Throw",
        "C",
        "EndEvent_1",
    ]


def test_a_second_throw_does_not_compensate_again(eng: ProcessEngine) -> None:
    calls = Calls(eng, "a", "b", "undo-a", "undo-b")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            throw("T1"),
            service("B", "b"),
            throw("T2"),
            extra=compensable("A", "a") + compensable("B", "b"),
        )
    )
    eng.start("p")
    assert calls.names == ["a", "undo-a", "b", "undo-b"]


def test_an_activity_completed_twice_is_compensated_twice(eng: ProcessEngine) -> None:
    calls = Calls(eng, "undo-a")
    eng.register_handler("a", lambda ctx: {"n": int(ctx.variables.get("n", 0)) + 1})
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            '<bpmn:exclusiveGateway id="Again" default="Done" />',
            throw(),
            flows=[
                ("StartEvent_1", "A"),
                ("A", "Again"),
                ("Again", "A", "${n < 2}"),
                ("Again", "Throw"),
                ("Throw", "EndEvent_1"),
            ],
            extra=compensable("A", "a"),
        ).replace(b'id="Flow_3"', b'id="Done"')
    )
    inst = eng.start("p")
    assert inst.state == "completed" and inst.variables["n"] == 2
    assert calls.names == ["undo-a", "undo-a"]
    assert visited(eng, inst.id).count("UndoA") == 2


def test_activity_ref_compensates_only_that_activity(eng: ProcessEngine) -> None:
    calls = Calls(eng, "a", "b", "undo-a", "undo-b")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            service("B", "b"),
            throw(ref="A"),
            extra=compensable("A", "a") + compensable("B", "b"),
        )
    )
    assert eng.start("p").state == "completed"
    assert calls.names == ["a", "b", "undo-a"]


def test_compensation_end_event_ends_after_its_handlers(eng: ProcessEngine) -> None:
    calls = Calls(eng, "a", "b", "undo-a", "undo-b")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            service("B", "b"),
            end=throw("EndCompensate", tag="endEvent"),
            extra=compensable("A", "a") + compensable("B", "b"),
        )
    )
    inst = eng.start("p")
    assert inst.state == "completed"
    assert calls.names == ["a", "b", "undo-b", "undo-a"]
    assert visited(eng, inst.id)[-1] == "EndCompensate"


def subprocess(sub_id: str, *inner: str, extra: str = "") -> str:
    """An embedded subprocess chaining ``inner`` between its own start and end."""
    nodes = [
        f'<bpmn:startEvent id="{sub_id}_start" />',
        *inner,
        f'<bpmn:endEvent id="{sub_id}_end" />',
    ]
    ids = [n.split('id="', 1)[1].split('"', 1)[0] for n in nodes]
    flows = "".join(
        f'<bpmn:sequenceFlow id="{sub_id}_f{i}" sourceRef="{a}" targetRef="{b}" />'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    )
    return f'<bpmn:subProcess id="{sub_id}">{"".join(nodes)}{flows}{extra}</bpmn:subProcess>'


def test_throw_inside_a_subprocess_compensates_only_its_own_activities(
    eng: ProcessEngine,
) -> None:
    calls = Calls(eng, "a", "b", "undo-a", "undo-b")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            subprocess("Sub", service("B", "b"), throw("SubThrow"), extra=compensable("B", "b")),
            extra=compensable("A", "a"),
        )
    )
    assert eng.start("p").state == "completed"
    assert calls.names == ["a", "b", "undo-b"]


def test_throw_after_a_completed_subprocess_compensates_inside_it(eng: ProcessEngine) -> None:
    calls = Calls(eng, "a", "b", "c", "d", "undo-a", "undo-b", "undo-c", "undo-d")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            subprocess(
                "Sub",
                service("B", "b"),
                service("C", "c"),
                extra=compensable("B", "b") + compensable("C", "c"),
            ),
            service("D", "d"),
            throw(),
            extra=compensable("A", "a") + compensable("D", "d"),
        )
    )
    inst = eng.start("p")
    assert inst.state == "completed"
    assert calls.names == ["a", "b", "c", "d", "undo-d", "undo-c", "undo-b", "undo-a"]
    # The copies of the handlers inside the subprocess show the ids drawn.
    assert visited(eng, inst.id)[-6:-2] == ["UndoD", "UndoC", "UndoB", "UndoA"]


def test_subprocess_with_a_compensation_event_subprocess(eng: ProcessEngine) -> None:
    """MIWG C.6.0's shape: the event subprocess undoes what completed in its subprocess."""
    calls = Calls(eng, "hotel", "flight", "charge", "undo-hotel", "undo-flight", "notify")
    handler_scope = (
        '<bpmn:subProcess id="HandleCompensation" triggeredByEvent="true">'
        '<bpmn:startEvent id="CompStart"><bpmn:compensateEventDefinition /></bpmn:startEvent>'
        '<bpmn:intermediateThrowEvent id="UndoAll"><bpmn:compensateEventDefinition />'
        "</bpmn:intermediateThrowEvent>"
        '<bpmn:endEvent id="CompEnd" />'
        '<bpmn:sequenceFlow id="cf1" sourceRef="CompStart" targetRef="UndoAll" />'
        '<bpmn:sequenceFlow id="cf2" sourceRef="UndoAll" targetRef="CompEnd" />'
        "</bpmn:subProcess>"
    )
    eng.deploy(
        process(
            "p",
            subprocess(
                "Booking",
                service("BookHotel", "hotel"),
                service("BookFlight", "flight"),
                extra=compensable("BookHotel", "hotel")
                + compensable("BookFlight", "flight")
                + handler_scope,
            ),
            service("Charge", "charge"),
            throw(),
            service("Notify", "notify"),
        )
    )
    inst = eng.start("p")
    assert inst.state == "completed"
    assert calls.names == ["hotel", "flight", "charge", "undo-flight", "undo-hotel", "notify"]
    assert "HandleCompensation" in visited(eng, inst.id)


def test_user_task_handler_waits_across_reloads(make_engine: Callable[..., ProcessEngine]) -> None:
    eng = make_engine()
    calls = Calls(eng, "a", "b", "undo-a", "after")
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            user("B"),
            throw(),
            service("After", "after"),
            extra=compensable("A", "a") + boundary("B", "UndoB") + undo("UndoB", "", "userTask"),
        )
    )
    inst = eng.start("p")
    assert inst.waiting_at == ["B"]
    eng.complete_task(inst.id, "B", variables={"b": 1})
    # Another engine on the same database (a restart) sees the handler waiting.
    other = make_engine()
    other.register_handler("undo-a", eng.handler_for("undo-a"))  # type: ignore[arg-type]
    other.register_handler("after", eng.handler_for("after"))  # type: ignore[arg-type]
    waiting = other.get_instance(inst.id)
    assert waiting.state == "active" and waiting.waiting_at == ["UndoB"]
    assert calls.names == ["a"]
    done = other.complete_task(inst.id, "UndoB", variables={"refunded": True})
    assert done.state == "completed" and done.variables["refunded"] is True
    assert calls.names == ["a", "undo-a", "after"]


def test_failing_handler_is_retried_by_a_job_then_compensation_goes_on(
    make_engine: Callable[..., ProcessEngine], clock: ManualClock
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=2, initial_delay=10, jitter=0))
    calls = Calls(eng, "a", "b", "undo-a")
    failures = iter([True])

    def undo_b(ctx: TaskContext) -> dict[str, object]:
        calls.names.append("undo-b")
        if next(failures, False):
            raise TimeoutError("payment service down")
        return {"refund": "ok"}

    eng.register_handler("undo-b", undo_b)
    eng.deploy(
        process(
            "p",
            service("A", "a"),
            service("B", "b"),
            throw(),
            extra=compensable("A", "a") + compensable("B", "b"),
        )
    )
    inst = eng.start("p")
    assert inst.state == "active" and inst.waiting_at == ["UndoB"]
    [job] = eng.jobs(inst.id)
    assert job.activity_id == "UndoB" and "payment service down" in (job.last_error or "")
    clock.advance(timedelta(seconds=10))
    assert eng.run_jobs() == 1
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["refund"] == "ok"
    assert calls.names == ["a", "b", "undo-b", "undo-b", "undo-a"]


def test_failing_handler_without_retries_opens_an_incident(
    make_engine: Callable[..., ProcessEngine],
) -> None:
    eng = make_engine(retry_policy=RetryPolicy(retries=0, initial_delay=1, jitter=0))
    Calls(eng, "a")

    def broken(ctx: TaskContext) -> None:
        raise RuntimeError("cannot refund")

    eng.register_handler("undo-a", broken)
    eng.deploy(process("p", service("A", "a"), throw(), extra=compensable("A", "a")))
    inst = eng.start("p")
    assert inst.state == "incident"
    [incident] = eng.incidents(inst.id)
    assert incident.activity_id == "UndoA" and "cannot refund" in incident.message


def test_external_task_handler(eng: ProcessEngine) -> None:
    Calls(eng, "a")
    ext = (
        '<bpmn:serviceTask id="UndoA" isForCompensation="true" camunda:type="external" '
        'camunda:topic="refunds" />'
    )
    eng.deploy(process("p", service("A", "a"), throw(), extra=boundary("A", "UndoA") + ext))
    inst = eng.start("p")
    assert inst.waiting_at == ["UndoA"]
    [task] = eng.external_tasks.fetch_and_lock("w1", [("refunds", 60)], max_tasks=5)
    assert task.activity_id == "UndoA"
    eng.external_tasks.complete(task.id, "w1", variables={"refunded": True})
    done = eng.get_instance(inst.id)
    assert done.state == "completed" and done.variables["refunded"] is True


def test_boundary_without_handler_and_throw_without_handlers_just_pass(
    eng: ProcessEngine,
) -> None:
    calls = Calls(eng, "a")
    lone = (
        '<bpmn:boundaryEvent id="Lone" attachedToRef="A">'
        "<bpmn:compensateEventDefinition /></bpmn:boundaryEvent>"
    )
    eng.deploy(process("p", service("A", "a"), throw(), extra=lone))
    assert eng.start("p").state == "completed"
    assert calls.names == ["a"]


@pytest.mark.parametrize(
    ("extra_elements", "element", "reason"),
    [
        (
            throw("Bad", ref="Nowhere"),
            "Bad",
            "activityRef 'Nowhere' names no activity",
        ),
        (
            '<bpmn:subProcess id="Esp" triggeredByEvent="true"><bpmn:startEvent id="EspStart">'
            "<bpmn:compensateEventDefinition /></bpmn:startEvent></bpmn:subProcess>",
            "EspStart",
            "only inside an embedded subprocess",
        ),
        (
            '<bpmn:serviceTask id="Multi" spillway:handler="a">'
            "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>2</bpmn:loopCardinality>"
            "</bpmn:multiInstanceLoopCharacteristics>"
            "</bpmn:serviceTask>" + compensable("Multi", "a"),
            "Comp_Multi",
            "multi-instance or looping activity",
        ),
        (
            undo("Wired", "a")
            + '<bpmn:sequenceFlow id="W" sourceRef="Wired" targetRef="EndEvent_1" />',
            "Wired",
            "no incoming or outgoing sequence flow",
        ),
        (
            '<bpmn:transaction id="Tx"><bpmn:startEvent id="TxStart" />'
            '<bpmn:serviceTask id="Inner" spillway:handler="a" /><bpmn:endEvent id="TxEnd" />'
            '<bpmn:sequenceFlow id="t1" sourceRef="TxStart" targetRef="Inner" />'
            '<bpmn:sequenceFlow id="t2" sourceRef="Inner" targetRef="TxEnd" />'
            + compensable("Inner", "a")
            + "</bpmn:transaction>",
            "Comp_Inner",
            "inside a transaction subprocess",
        ),
        (
            '<bpmn:intermediateCatchEvent id="Catch"><bpmn:compensateEventDefinition />'
            "</bpmn:intermediateCatchEvent>",
            "Catch",
            "not a BPMN construct",
        ),
    ],
)
def test_refused_constructs_name_the_element(
    eng: ProcessEngine, extra_elements: str, element: str, reason: str
) -> None:
    eng.register_handler("a", lambda ctx: None)
    with pytest.raises(DeploymentError) as err:
        eng.deploy(process("p", service("A", "a"), extra=extra_elements))
    assert f"element '{element}'" in str(err.value) and reason in str(err.value)
