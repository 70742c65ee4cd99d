"""JSON Schemas of every call the master takes over HTTP, in one place.

They mirror the protobuf JSON mapping of ``mesos.v1.scheduler.Call`` (scheduler
API) and of our agent protocol (docs/agent-protocol.md), the way Mesos'
``master/validation.cpp`` is the one place its calls are checked: a field of the
wrong JSON type, a missing required field, a bad role or id is refused here,
before the master sees the call.  Fields the master does not read are typed
where Mesos types them and otherwise let through, as protobuf keeps unknown
fields.  What depends on state (is this offer still valid, does this task fit)
stays with the master, which answers it as Mesos does (often a TASK_ERROR).

Executor calls (the agent's ``/api/v1/executor``) have theirs here too.

Two custom formats, checked by :mod:`pymesos_modules.http.validation`:
``mesos-id`` (Mesos' validateID, see :mod:`pymesos_modules.ids`) and
``mesos-role`` (Mesos' role name rules).  Task and executor ids inside a launch
are only shape-checked here: a bad one fails that task with TASK_ERROR, as Mesos.
"""

from __future__ import annotations

from typing import Any

from pymesos_modules.master.state import TaskState

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
NAME: Schema = {"type": "string", "minLength": 1}
ROLE: Schema = {"type": "string", "format": "mesos-role"}
NUMBER: Schema = {"type": "number"}
NON_NEGATIVE: Schema = {"type": "number", "minimum": 0}


def array(items: Schema, **extra: Any) -> Schema:
    """A JSON array of ``items``."""
    return {"type": "array", "items": items, **extra}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A JSON object with typed ``properties`` (others are let through, as protobuf does)."""
    return {"type": "object", "properties": properties, "required": list(required)}


#: ``{"value": "..."}``: the shape of every Mesos id.
ID_SHAPE: Schema = obj({"value": STRING}, ("value",))
#: An id the master refuses outright when malformed (framework, agent, offer ids).
ID: Schema = obj({"value": {"type": "string", "format": "mesos-id"}}, ("value",))

LABELS: Schema = obj({"labels": array(obj({"key": STRING, "value": STRING}, ("key",)))})

RESOURCE: Schema = obj(
    {
        "name": NAME,
        "type": {"enum": ["SCALAR", "RANGES", "SET", "TEXT"]},
        "scalar": obj({"value": NUMBER}, ("value",)),
        "ranges": obj(
            {
                "range": array(
                    obj(
                        {
                            "begin": {"type": "integer", "minimum": 0},
                            "end": {"type": "integer", "minimum": 0},
                        },
                        ("begin", "end"),
                    )
                )
            }
        ),
        "set": obj({"item": array(STRING)}),
        "role": ROLE,
        "reservations": array(obj({"role": ROLE, "type": STRING, "principal": STRING})),
        "revocable": {"type": "object"},
        "allocation_info": obj({"role": ROLE}),
    },
    ("name",),
)
RESOURCES: Schema = array(RESOURCE)

ATTRIBUTE: Schema = obj(
    {
        "name": NAME,
        "type": {"enum": ["SCALAR", "TEXT"]},
        "text": obj({"value": STRING}, ("value",)),
        "scalar": obj({"value": NUMBER}, ("value",)),
    },
    ("name", "type"),
)

COMMAND: Schema = obj(
    {
        "value": STRING,
        "shell": {"type": "boolean"},
        "user": STRING,
        "arguments": array(STRING),
        "environment": obj(
            {"variables": array(obj({"name": STRING, "value": STRING, "type": STRING}))}
        ),
        "uris": array(obj({"value": STRING})),
    }
)

EXECUTOR_INFO: Schema = obj(
    {
        "executor_id": ID_SHAPE,
        "framework_id": ID_SHAPE,
        "type": STRING,
        "name": STRING,
        "command": COMMAND,
        "resources": RESOURCES,
        "labels": LABELS,
    }
)

TASK_INFO: Schema = obj(
    {
        "name": STRING,
        "task_id": ID_SHAPE,
        "agent_id": ID_SHAPE,
        "resources": RESOURCES,
        "command": COMMAND,
        "executor": EXECUTOR_INFO,
        "labels": LABELS,
        "data": STRING,
        "container": {"type": "object"},
        "health_check": {"type": "object"},
        "kill_policy": {"type": "object"},
        "discovery": {"type": "object"},
    }
)

#: Mesos' FrameworkInfo.Capability.Type values.
CAPABILITIES = [
    "UNKNOWN",
    "REVOCABLE_RESOURCES",
    "TASK_KILLING_STATE",
    "GPU_RESOURCES",
    "SHARED_RESOURCES",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "RESERVATION_REFINEMENT",
    "REGION_AWARE",
]

FRAMEWORK_INFO: Schema = obj(
    {
        "user": STRING,
        "name": STRING,
        "id": ID,
        "failover_timeout": NON_NEGATIVE,
        "checkpoint": {"type": "boolean"},
        "role": ROLE,
        "roles": array(ROLE),
        "hostname": STRING,
        "principal": STRING,
        "webui_url": STRING,
        "capabilities": array(obj({"type": {"enum": CAPABILITIES}}, ("type",))),
        "labels": LABELS,
    }
)

FILTERS: Schema = obj({"refuse_seconds": NON_NEGATIVE})
OFFER_IDS: Schema = array(ID, minItems=1)

OPERATION: Schema = {
    **obj(
        {
            "type": {"enum": ["LAUNCH", "LAUNCH_GROUP"]},
            "launch": obj({"task_infos": array(TASK_INFO)}),
            "launch_group": obj(
                {
                    "executor": EXECUTOR_INFO,
                    "task_group": obj({"tasks": array(TASK_INFO, minItems=1)}, ("tasks",)),
                },
                ("task_group",),
            ),
        },
        ("type",),
    ),
    "allOf": [
        {"if": obj({"type": {"const": "LAUNCH"}}), "then": {"required": ["launch"]}},
        {"if": obj({"type": {"const": "LAUNCH_GROUP"}}), "then": {"required": ["launch_group"]}},
    ],
}

#: Each scheduler call type: the schema of its body, and whether the body is required.
SCHEDULER_BODIES: dict[str, tuple[Schema, bool]] = {
    "SUBSCRIBE": (
        obj(
            {"framework_info": FRAMEWORK_INFO, "suppressed_roles": array(ROLE)}, ("framework_info",)
        ),
        True,
    ),
    "TEARDOWN": ({"type": "object"}, False),
    "ACCEPT": (
        obj(
            {"offer_ids": OFFER_IDS, "operations": array(OPERATION), "filters": FILTERS},
            ("offer_ids",),
        ),
        True,
    ),
    "DECLINE": (obj({"offer_ids": OFFER_IDS, "filters": FILTERS}, ("offer_ids",)), True),
    "REVIVE": (obj({"roles": array(ROLE)}), False),
    "SUPPRESS": (obj({"roles": array(ROLE)}), False),
    "KILL": (
        obj({"task_id": ID_SHAPE, "agent_id": ID, "kill_policy": {"type": "object"}}, ("task_id",)),
        True,
    ),
    "SHUTDOWN": (obj({"agent_id": ID, "executor_id": ID}, ("agent_id",)), True),
    "ACKNOWLEDGE": (
        obj({"agent_id": ID, "task_id": ID_SHAPE, "uuid": STRING}, ("uuid",)),
        True,
    ),
    "RECONCILE": (
        obj({"tasks": array(obj({"task_id": ID_SHAPE, "agent_id": ID}, ("task_id",)))}),
        False,
    ),
    "MESSAGE": (
        obj({"agent_id": ID, "executor_id": ID, "data": STRING}, ("agent_id", "executor_id")),
        True,
    ),
}

#: The task states the master knows (an agent's UPDATE must name one).
TASK_STATES = [state.value for state in TaskState]

_REGISTRATION: dict[str, Schema] = {
    "protocol_version": {"type": "integer"},
    "hostname": NAME,
    "agent_id": ID,
    "resources": RESOURCES,
    "attributes": array(ATTRIBUTE),
    "tasks": array(
        obj(
            {
                "framework_id": ID,
                "task_info": TASK_INFO,
                "state": {"enum": TASK_STATES},
                "role": ROLE,
                "executor_id": ID_SHAPE,
            },
            ("framework_id", "task_info"),
        )
    ),
    "frameworks": array({**FRAMEWORK_INFO, "required": ["id"]}),
    # As Mesos' ReregisterSlaveMessage: the executors the agent runs, each naming its framework.
    "executor_infos": array({**EXECUTOR_INFO, "required": ["executor_id", "framework_id"]}),
}

STATUS: Schema = obj(
    {
        "task_id": ID_SHAPE,
        "state": {"enum": TASK_STATES},
        "uuid": NAME,
        "message": STRING,
        "reason": STRING,
        "source": STRING,
        "timestamp": NUMBER,
        "data": STRING,
    },
    ("task_id", "state", "uuid"),
)

#: Each agent protocol call type: the schema of its body, and whether the body is required.
AGENT_BODIES: dict[str, tuple[Schema, bool]] = {
    "REGISTER": (obj(_REGISTRATION, ("protocol_version", "hostname")), True),
    "REREGISTER": (obj(_REGISTRATION, ("protocol_version", "hostname", "agent_id")), True),
    "UPDATE": (obj({"framework_id": ID, "status": STATUS}, ("framework_id", "status")), True),
    "UPDATE_OVERSUBSCRIBED": (obj({"resources": RESOURCES}), True),
    "HEARTBEAT": ({"type": "object"}, False),
    "MESSAGE": (
        obj(
            {"framework_id": ID, "executor_id": ID, "data": STRING},
            ("framework_id", "executor_id", "data"),
        ),
        True,
    ),
    "EXITED_EXECUTOR": (
        obj(
            {"framework_id": ID, "executor_id": ID, "status": {"type": "integer"}},
            ("framework_id", "executor_id", "status"),
        ),
        True,
    ),
}


def call_schema(bodies: dict[str, tuple[Schema, bool]], needs_id: str | None) -> Schema:
    """A call: ``type`` one of ``bodies``, its body under the lower-cased type.

    ``needs_id`` is the id field every call but a registration carries
    (``framework_id`` for the scheduler API, ``agent_id`` for agents).
    """
    branches = []
    for kind, (body, required) in bodies.items():
        key = kind.lower()
        then: Schema = {"properties": {key: body}}
        needs = [key] if required else []
        if needs_id is not None and kind not in ("SUBSCRIBE", "REGISTER", "REREGISTER"):
            needs.append(needs_id)
        if needs:
            then["required"] = needs
        branches.append({"if": obj({"type": {"const": kind}}), "then": then})
    properties: dict[str, Schema] = {"type": {"enum": list(bodies)}}
    if needs_id is not None:
        properties[needs_id] = ID
    return {**obj(properties, ("type",)), "allOf": branches}


#: Each executor API call type (the agent's ``/api/v1/executor``, Mesos' v1 executor API).
#: Bodies are typed here; whether one is present is the executor room's check, after it
#: found the framework and executor (pymesos_modules/agent/executors.py).
EXECUTOR_BODIES: dict[str, tuple[Schema, bool]] = {
    "SUBSCRIBE": (
        obj(
            {
                "unacknowledged_tasks": array(TASK_INFO),
                "unacknowledged_updates": array(
                    obj({"framework_id": ID_SHAPE, "status": {"type": "object"}}, ("status",))
                ),
            }
        ),
        False,
    ),
    "UPDATE": (
        obj(
            {
                "status": obj(
                    {
                        "task_id": ID_SHAPE,
                        "state": STRING,  # which ones an executor may send: the executor room
                        "uuid": STRING,
                        "message": STRING,
                        "data": STRING,
                    },
                    ("task_id", "state"),
                )
            },
            ("status",),
        ),
        False,
    ),
    "MESSAGE": (obj({"data": STRING}, ("data",)), False),
    "HEARTBEAT": ({"type": "object"}, False),
}

SCHEDULER_CALL: Schema = call_schema(SCHEDULER_BODIES, "framework_id")
AGENT_CALL: Schema = call_schema(AGENT_BODIES, "agent_id")
EXECUTOR_CALL: Schema = call_schema(EXECUTOR_BODIES, None)
EXECUTOR_CALL["properties"].update(framework_id=ID, executor_id=ID)
EXECUTOR_CALL["required"] = ["type", "framework_id", "executor_id"]
