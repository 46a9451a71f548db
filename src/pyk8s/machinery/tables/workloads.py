"""Workload printers: the ``apps`` controllers and their revisions, and ``batch`` jobs.

Sparse objects read as the v1 decoder defaults them: ``spec.replicas`` of a Deployment,
ReplicaSet or StatefulSet is 1 when unset, and a CronJob's ``spec.suspend`` is false.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._common import (
    AGE_COLUMN,
    NAME_COLUMN,
    NONE,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    Obj,
    age,
    as_int,
    as_list,
    as_map,
    as_str,
    column,
    container_cells,
    format_label_selector,
    format_labels,
    get,
    human_duration,
    maps,
    name_of,
    parse_time,
    selector_string,
    since,
    utc,
)


def _template_containers(obj: Obj) -> Any:
    return get(obj, "spec", "template", "spec", "containers")


def _replicas(obj: Obj) -> int:
    return as_int(get(obj, "spec", "replicas"), default=1)


def _status_int(obj: Obj, field: str) -> int:
    return as_int(get(obj, "status", field))


# --- deployments -------------------------------------------------------------------------

DEPLOYMENT_COLUMNS = (
    NAME_COLUMN,
    column("Ready", "string", "Number of the pod with ready state"),
    column(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired"
        " template spec.",
    ),
    column(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this"
        " deployment.",
    ),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    column(
        "Selector",
        "string",
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be"
        " the ones affected by this deployment.",
        priority=1,
    ),
)


def deployment_cells(deploy: Obj, now: datetime) -> list[Any]:
    selector = selector_string(get(deploy, "spec", "selector"))
    return [
        name_of(deploy),
        f"{_status_int(deploy, 'readyReplicas')}/{_replicas(deploy)}",
        _status_int(deploy, "updatedReplicas"),
        _status_int(deploy, "availableReplicas"),
        age(deploy, now),
        *container_cells(_template_containers(deploy)),
        "<invalid>" if selector is None else selector,
    ]


# --- replica sets ------------------------------------------------------------------------

REPLICA_SET_COLUMNS = (
    NAME_COLUMN,
    column(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between"
        " explicit zero and unspecified. Defaults to 1. More info:"
        " https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    column(
        "Current",
        "integer",
        "Replicas is the most recently oberved number of replicas. More info:"
        " https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    ),
    column("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    column(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count. If the"
        " selector is empty, it is defaulted to the labels present on the pod template. Label"
        " keys and values that must match in order to be controlled by this replica set. More"
        " info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        priority=1,
    ),
)


def replica_set_cells(rs: Obj, now: datetime) -> list[Any]:
    return [
        name_of(rs),
        _replicas(rs),
        _status_int(rs, "replicas"),
        _status_int(rs, "readyReplicas"),
        age(rs, now),
        *container_cells(_template_containers(rs)),
        format_label_selector(get(rs, "spec", "selector")),
    ]


# --- daemon sets -------------------------------------------------------------------------

_DAEMON_SET_DOCS = "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"

DAEMON_SET_COLUMNS = (
    NAME_COLUMN,
    column(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes"
        f" correctly running the daemon pod). More info: {_DAEMON_SET_DOCS}",
    ),
    column(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the"
        f" daemon pod. More info: {_DAEMON_SET_DOCS}",
    ),
    column(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one"
        " or more of the daemon pod running with a Ready Condition.",
    ),
    column(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    column(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the"
        " daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    column(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector"
        " which must match a node's labels for the pod to be scheduled on that node. More info:"
        " https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    ),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    column(
        "Selector",
        "string",
        "A label query over pods that are managed by the daemon set. Must match in order to be"
        " controlled. If empty, defaulted to labels on Pod template. More info:"
        " https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        priority=1,
    ),
)


def daemon_set_cells(ds: Obj, now: datetime) -> list[Any]:
    return [
        name_of(ds),
        _status_int(ds, "desiredNumberScheduled"),
        _status_int(ds, "currentNumberScheduled"),
        _status_int(ds, "numberReady"),
        _status_int(ds, "updatedNumberScheduled"),
        _status_int(ds, "numberAvailable"),
        format_labels(get(ds, "spec", "template", "spec", "nodeSelector")),
        age(ds, now),
        *container_cells(_template_containers(ds)),
        format_label_selector(get(ds, "spec", "selector")),
    ]


# --- stateful sets -----------------------------------------------------------------------

STATEFUL_SET_COLUMNS = (
    NAME_COLUMN,
    column("Ready", "string", "Number of the pod with ready state"),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
)


def stateful_set_cells(sts: Obj, now: datetime) -> list[Any]:
    return [
        name_of(sts),
        f"{_status_int(sts, 'readyReplicas')}/{_replicas(sts)}",
        age(sts, now),
        *container_cells(_template_containers(sts)),
    ]


# --- controller revisions ----------------------------------------------------------------

CONTROLLER_REVISION_COLUMNS = (
    NAME_COLUMN,
    column("Controller", "string", "Controller of the object"),
    column(
        "Revision", "string", "Revision indicates the revision of the state represented by Data."
    ),
    AGE_COLUMN,
)


def _controller(obj: Obj) -> str:
    """The controlling owner as ``kind.group/name`` (``daemonset.apps/fluentd``)."""
    for ref in maps(get(obj, "metadata", "ownerReferences")):
        if ref.get("controller") is not True:
            continue
        api_version = as_str(ref.get("apiVersion"))
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        kind = as_str(ref.get("kind"))
        name = as_str(ref.get("name"))
        if not kind and not group:
            return name
        group_kind = f"{kind}.{group}" if group else kind
        return f"{group_kind.lower()}/{name}"
    return NONE


def controller_revision_cells(rev: Obj, now: datetime) -> list[Any]:
    return [name_of(rev), _controller(rev), as_int(rev.get("revision")), age(rev, now)]


# --- jobs --------------------------------------------------------------------------------

_JOB_SELECTOR_DESCRIPTION = (
    "A label query over pods that should match the pod count. Normally, the system sets this"
    " field for you. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
)

JOB_COLUMNS = (
    NAME_COLUMN,
    column("Status", "string", "Status of the job."),
    column(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for"
        " a given spec. However, it may decrease in reaction to scale down of elastic indexed"
        " jobs.",
    ),
    column("Duration", "string", "Time required to complete the job."),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    column("Selector", "string", _JOB_SELECTOR_DESCRIPTION, priority=1),
)


def _job_condition(job: Obj, type_: str) -> bool:
    for cond in maps(get(job, "status", "conditions")):
        if cond.get("type") == type_:
            return cond.get("status") == "True"
    return False


def _job_status(job: Obj) -> str:
    if _job_condition(job, "Complete"):
        return "Complete"
    if _job_condition(job, "Failed"):
        return "Failed"
    if get(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if _job_condition(job, "Suspended"):
        return "Suspended"
    if _job_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_completions(job: Obj) -> str:
    succeeded = _status_int(job, "succeeded")
    completions = get(job, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{as_int(completions)}"
    parallelism = as_int(get(job, "spec", "parallelism"))
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(job: Obj, now: datetime) -> str:
    start = parse_time(get(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(get(job, "status", "completionTime")) or utc(now)
    return human_duration((end - start).total_seconds())


def job_cells(job: Obj, now: datetime) -> list[Any]:
    return [
        name_of(job),
        _job_status(job),
        _job_completions(job),
        _job_duration(job, now),
        age(job, now),
        *container_cells(_template_containers(job)),
        format_label_selector(get(job, "spec", "selector")),
    ]


# --- cron jobs ---------------------------------------------------------------------------

CRON_JOB_COLUMNS = (
    NAME_COLUMN,
    column(
        "Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."
    ),
    column(
        "Timezone",
        "string",
        "The time zone name for the given schedule, see"
        " https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this"
        " will default to the time zone of the kube-controller-manager process. The set of valid"
        " time zone names and the time zone offset is loaded from the system-wide time zone"
        " database by the API server during CronJob validation and the controller manager during"
        " execution. If no system-wide time zone database can be found a bundled version of the"
        " database is used instead. If the time zone name becomes invalid during the lifetime of"
        " a CronJob or due to a change in host configuration, the controller will stop creating"
        " new new Jobs and will create a system event with the reason UnknownTimeZone. More"
        " information can be found in"
        " https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
    ),
    column(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to"
        " already started executions. Defaults to false.",
    ),
    column("Active", "integer", "A list of pointers to currently running jobs."),
    column(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE_COLUMN,
    WIDE_CONTAINERS_COLUMN,
    WIDE_IMAGES_COLUMN,
    column("Selector", "string", _JOB_SELECTOR_DESCRIPTION, priority=1),
)


def cron_job_cells(cj: Obj, now: datetime) -> list[Any]:
    spec = as_map(cj.get("spec"))
    suspend = spec.get("suspend")
    time_zone = spec.get("timeZone")
    last_schedule = get(cj, "status", "lastScheduleTime")
    job_spec = as_map(get(spec, "jobTemplate", "spec"))
    return [
        name_of(cj),
        as_str(spec.get("schedule")),
        time_zone if isinstance(time_zone, str) else NONE,
        "True" if suspend is True else "False",
        len(as_list(get(cj, "status", "active"))),
        since(last_schedule, now) if last_schedule is not None else NONE,
        age(cj, now),
        *container_cells(get(job_spec, "template", "spec", "containers")),
        format_label_selector(job_spec.get("selector")),
    ]
