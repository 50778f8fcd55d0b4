"""Back up the event stream to a file and restore it (``crp stream backup FILE`` / ``crp stream restore FILE``).

The stream is the platform's history: the indicators are rebuilt from it (``crp indicators rebuild``). A backup is
JSON lines: a header (stream name, subjects, sequences, count), then one line per message in stream order with
its subject, headers (``Nats-Msg-Id`` = the event id) and body. A restore creates the stream with the platform's
configuration and publishes the messages again in the same order, with their ids: consumers that already applied
an event skip it (they record event ids), so restoring never counts anything twice. It refuses a stream that
already holds messages.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nats
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from shared.bus import ensure_stream
from shared.settings import CommonSettings

FORMAT = "crp-stream-backup/1"


class StreamBackupError(Exception):
    """The backup or restore could not be done (nothing was changed by a refused restore)."""


async def backup(settings: CommonSettings, path: Path, *, timeout: float = 10.0) -> int:
    """Write every message of the stream to ``path``; returns how many."""
    nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=timeout)
        try:
            info = await js.stream_info(settings.nats_stream)
        except NotFoundError:
            raise StreamBackupError(f"no stream {settings.nats_stream} at {settings.nats_url}") from None
        state = info.state
        header = {"format": FORMAT, "stream": settings.nats_stream, "subjects": info.config.subjects,
                  "first_seq": state.first_seq, "last_seq": state.last_seq, "messages": state.messages}
        written = 0
        tmp = path.with_name(path.name + ".partial")
        with tmp.open("w", encoding="utf-8") as out:
            out.write(json.dumps(header) + "\n")
            if state.messages:
                # An ordered consumer reads the stream in sequence order, fast, and leaves nothing behind.
                sub = await js.subscribe(f"{settings.subject_prefix}.>", stream=settings.nats_stream,
                                         ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
                try:
                    while True:
                        msg = await sub.next_msg(timeout=timeout)
                        seq = msg.metadata.sequence.stream
                        if seq > state.last_seq:
                            break
                        out.write(json.dumps({"seq": seq, "subject": msg.subject, "headers": msg.headers or {},
                                              "data": base64.b64encode(msg.data).decode()}) + "\n")
                        written += 1
                        if seq == state.last_seq:
                            break
                finally:
                    await sub.unsubscribe()
        if written != state.messages:
            tmp.unlink(missing_ok=True)
            raise StreamBackupError(f"read {written} messages, the stream holds {state.messages}")
        tmp.replace(path)
        return written
    finally:
        await nc.close()


def read_backup(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise StreamBackupError(f"{path} is empty")
    header = json.loads(lines[0])
    if header.get("format") != FORMAT:
        raise StreamBackupError(f"{path} is not a CRP stream backup")
    messages = [json.loads(line) for line in lines[1:]]
    if len(messages) != header["messages"]:
        raise StreamBackupError(f"{path} is incomplete: {len(messages)} of {header['messages']} messages")
    return header, messages


async def restore(settings: CommonSettings, path: Path, *, timeout: float = 10.0) -> int:
    """Publish every message of the backup at ``path`` into the (new or empty) stream; returns how many."""
    _, messages = read_backup(path)
    nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=timeout)
        try:
            held = (await js.stream_info(settings.nats_stream)).state.messages
        except NotFoundError:
            held = 0
        if held:
            raise StreamBackupError(f"stream {settings.nats_stream} already holds {held} messages; restore into a "
                                    "new stream (delete this one first, or set CRP_NATS_STREAM)")
        await ensure_stream(js, settings)
        for message in messages:
            await js.publish(message["subject"], base64.b64decode(message["data"]),
                             stream=settings.nats_stream, headers=message["headers"] or None)
        return len(messages)
    finally:
        await nc.close()
