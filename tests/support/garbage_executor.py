"""An executor that never subscribes: it sends the agent's executor API garbage and wrong
calls, writes the answers' statuses into ``answers.txt`` in its sandbox, then sleeps.

Run with ``python -I``: the standard library only, the agent's environment tells where.
"""

import json
import os
import time
import urllib.error
import urllib.request

URL = f"http://{os.environ['MESOS_AGENT_ENDPOINT']}/api/v1/executor"
IDS = {
    "framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
    "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]},
}
BODIES = [
    b"\x00\xff not json at all",
    b'{"type": "SUBSCRIBE", "framework_id": ',
    json.dumps({**IDS, "type": "SUBSCRIBE", "subscribe": [1, 2]}).encode(),
    json.dumps({**IDS, "executor_id": {"value": "someone-else"}, "type": "SUBSCRIBE"}).encode(),
    json.dumps(
        {
            **IDS,
            "type": "UPDATE",
            "update": {
                "status": {
                    "task_id": {"value": "t"},
                    "state": "TASK_FINISHED",
                    "uuid": "AAAAAAAAAAAAAAAAAAAAAA==",
                }
            },
        }
    ).encode(),
    json.dumps({**IDS, "type": "MESSAGE", "message": {"data": ""}}).encode(),
]


def status(body: bytes) -> int:
    request = urllib.request.Request(
        URL, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


answers = [status(body) for body in BODIES]
with open("answers.txt.part", "w") as out:
    out.write(" ".join(map(str, answers)) + "\n")
os.replace("answers.txt.part", "answers.txt")
time.sleep(600)
