"""Worker roles: which parts of the worker a process runs, so that each part scales on its own.

``stream``
    Ingest, score, label: the raw topics in the consumer group ``<app_id>.stream``, plus
    the label sweep, the model reload and the anomaly gauges. Any number of processes;
    Kafka shares the partitions among them. Holds no ClickHouse connection: its rows go
    to ``events.valid`` for the sink.
``learner``
    The one serial step: ``training.examples`` (one partition) in Faust's group
    ``<app_id>``, model snapshots published to Redis for every scorer. A second learner
    gets no partition and waits as a hot standby.
``sink``
    The ClickHouse writes: ``events.valid``, ``leads.scored`` and ``deadletter`` inserted
    in large batches (group ``<app_id>.sink``). Against a ClickHouse server, any number
    of processes; with chDB, the one process that owns the store, and it answers the
    other commands' queries through its relay (sinks/store_relay.py).
``all``
    The three in one process: the embedded default.

A process without ``sink`` never opens ClickHouse, so several of them run beside the
one that owns a chDB store.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The roles a process can take, in the order they are named.
ROLES: tuple[str, ...] = ("stream", "learner", "sink")
#: Every role: today's single-process worker.
ALL: frozenset[str] = frozenset(ROLES)


def parse_roles(values: Iterable[str]) -> frozenset[str]:
    """Roles from ``--role`` values: names, comma lists, or ``all``.

    >>> sorted(parse_roles(["stream"])), sorted(parse_roles(["learner,sink"]))
    (['stream'], ['learner', 'sink'])
    >>> parse_roles(["all"]) == ALL, parse_roles([]) == ALL
    (True, True)
    >>> parse_roles(["scorer"])
    Traceback (most recent call last):
    ValueError: unknown worker role 'scorer': choose from stream, learner, sink or all
    """
    names = {n.strip().lower() for v in values for n in v.split(",") if n.strip()}
    if not names or "all" in names:
        return ALL
    unknown = sorted(names - ALL)
    if unknown:
        raise ValueError(
            f"unknown worker role {unknown[0]!r}: choose from {', '.join(ROLES)} or all"
        )
    return frozenset(names)


def describe(roles: frozenset[str]) -> str:
    """The roles as the command line names them.

    >>> describe(ALL), describe(frozenset({"sink", "stream"}))
    ('all', 'stream,sink')
    """
    return "all" if roles == ALL else ",".join(r for r in ROLES if r in roles)
