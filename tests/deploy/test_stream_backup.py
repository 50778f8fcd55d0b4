"""``crp stream backup`` and ``crp stream restore`` (docs/operations.md, Backups), on a real NATS JetStream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import nats

from tests.deploy.conftest import ROOT


def crp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


async def messages(url: str, stream: str) -> list[tuple[str, str, bytes]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        found = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(stream, seq)
            found.append((msg.subject, msg.headers["Nats-Msg-Id"], msg.data))
        return found
    finally:
        await nc.close()


async def test_a_stream_backed_up_then_lost_is_restored_in_order_with_its_ids(nats_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"BK{tag}", f"bk{tag}"
    env = {"CRP_NATS_URL": nats_url, "CRP_NATS_STREAM": stream, "CRP_SUBJECT_PREFIX": prefix}
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
        for i in range(250):
            entity = "beneficiaries.beneficiary.registered" if i % 3 else "grants.grant.approved"
            subject = f"{prefix}.{entity}.v1"
            await js.publish(subject, json.dumps({"id": i, "data": "ي"}).encode(), headers={"Nats-Msg-Id": f"ev-{i}"})
        before = await messages(nats_url, stream)
        backup = tmp_path / "crp-stream.jsonl"
        made = crp("stream", "backup", str(backup), env=env)
        assert made.returncode == 0, made.stderr
        assert f"250 messages written to {backup}" in made.stdout

        await js.delete_stream(stream)  # the disaster
        restored = crp("stream", "restore", str(backup), env=env)
        assert restored.returncode == 0, restored.stderr
        assert await messages(nats_url, stream) == before
        info = await js.stream_info(stream)
        assert info.config.duplicate_window and info.config.duplicate_window > 0  # the platform's configuration

        again = crp("stream", "restore", str(backup), env=env)  # never into a stream that holds events
        assert again.returncode == 1 and "already holds 250 messages" in again.stderr
        assert len(await messages(nats_url, stream)) == 250
    finally:
        try:
            await js.delete_stream(stream)
        except Exception:
            pass
        await nc.close()


def test_a_truncated_backup_is_refused(tmp_path: Path, nats_url: str) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"format": "crp-stream-backup/1", "stream": "X", "subjects": ["x.>"],
                                  "first_seq": 1, "last_seq": 2, "messages": 2}) + "\n")
    result = crp("stream", "restore", str(broken), env={"CRP_NATS_URL": nats_url,
                                                         "CRP_NATS_STREAM": f"NEVER{uuid.uuid4().hex[:8]}"})
    assert result.returncode == 1 and "incomplete: 0 of 2 messages" in result.stderr

