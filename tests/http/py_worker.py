"""A worker written with camunda-external-task-client-python3, as a user would write one.

Run as ``python py_worker.py BASE_URL USER PASSWORD``: it serves topics ``charge`` (the test
Payment process) and ``copy`` (the ExampleProcess) until killed.

- charge: amount > 1000 -> BPMN error CARD_DECLINED; ``flaky`` -> the first attempt reports a
  failure with 2 retries and a 100 ms retry timeout, the next one completes; else complete.
- copy: completes with the file's copy.
"""

import sys
import threading

from camunda.external_task.external_task import ExternalTask
from camunda.external_task.external_task_worker import ExternalTaskWorker

FAILED: set[str] = set()  # tasks this worker failed once


def charge(task: ExternalTask):
    amount = task.get_variable("amount")
    if amount > 1000:
        return task.bpmn_error("CARD_DECLINED", "over the limit", {"declined": True})
    if task.get_variable("flaky") and task.get_task_id() not in FAILED:
        FAILED.add(task.get_task_id())
        return task.failure("gateway timeout", "try again", 2, 100)
    gateway = task.get_extension_property("gateway")
    return task.complete({"charged": amount, "by": "python", "gateway": gateway})


def copy(task: ExternalTask):
    source = task.get_variable("file")
    return task.complete({"copy": {"from": source, "to": source.replace("in/", "archive/")}})


def main() -> None:
    base_url, user, password = sys.argv[1:4]
    config = {
        "maxTasks": 10,
        "lockDuration": 10000,
        "asyncResponseTimeout": 5000,
        "sleepSeconds": 1,
        "auth_basic": {"username": user, "password": password},
    }
    threads = [
        threading.Thread(
            target=ExternalTaskWorker(f"py-{topic}", base_url, config).subscribe,
            args=(topic, action),
            daemon=True,
        )
        for topic, action in (("charge", charge), ("copy", copy))
    ]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
