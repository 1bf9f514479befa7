"""A Flower ``Grid`` that delivers messages to ClientApps in this process: tests and `simulate`.

Flower's own simulation needs Ray; its Deployment Engine starts a process per message. This grid
calls ``client_app(message, context)`` directly, which keeps a three-brand run in seconds. It
relies on three Flower internals (flwr is pinned exactly in pyproject, and tests/test_federation
covers the harness): messages are built from ``TaskIdentity``, message ids are assigned by the
grid, and one ``Context`` per node must persist across rounds. Each pushed message is deep-copied
because strategies send one shared ``RecordDict`` to every node and mods may mutate it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from copy import deepcopy
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

_log = logging.getLogger(__name__)

#: Error code of a ClientApp that raised instead of replying.
CLIENT_CRASHED = 5001


class InProcessGrid(Grid):
    """Delivers each message to ``client_app`` with the destination node's persistent Context."""

    def __init__(
        self,
        client_app: ClientApp,
        node_configs: Iterable[Mapping[str, bool | float | int | str]],
        run_config: Mapping[str, bool | float | int | str] | None = None,
        run_id: int = 1,
    ) -> None:
        self._app = client_app
        self._run = Run.create_empty(run_id)
        self._contexts = {
            node_id: Context(run_id, node_id, dict(cfg), RecordDict(), dict(run_config or {}))
            for node_id, cfg in enumerate(node_configs, start=101)
        }
        self._replies: dict[str, Message] = {}
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        TaskIdentity.task_id = 0

    def set_run(self, run: Run) -> None:  # type: ignore[override]
        """Adopt ``run``."""
        self._run = run

    @property
    def run(self) -> Run:  # type: ignore[override]
        """The current run."""
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        """A message from the server to ``dst_node_id``."""
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> list[int]:
        """The node ids, in the order the configs were given."""
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Run the ClientApp on each message now; keep the replies until they are pulled."""
        ids = []
        for original in messages:
            msg = deepcopy(original)
            message_id = str(uuid4())
            msg.metadata.__dict__["_message_id"] = message_id  # the SuperLink's job, done here
            context = self._contexts.get(msg.metadata.dst_node_id)
            if context is None:
                raise ValueError(f"no node {msg.metadata.dst_node_id} in this grid")
            try:
                reply = self._app(msg, context)
            except Exception as exc:  # a crashing brand is an error reply, as on the Deployment Engine
                _log.warning("node %s failed on %s", msg.metadata.dst_node_id, msg.metadata.message_type, exc_info=True)
                reason = f"{type(exc).__name__}: {exc}"
                reply = Message(error=Error(CLIENT_CRASHED, reason), reply_to=msg)
            self._replies[message_id] = reply
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        """The replies to ``message_ids`` (each returned once)."""
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Push, then pull: every reply is ready when push returns."""
        return self.pull_messages(self.push_messages(messages))
