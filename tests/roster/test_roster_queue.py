"""The roster's ``queue:`` setting: NATS addresses, credentials from ${VAR}s, TLS."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import RosterErrors
from orchestrator.mailbox.nats import NatsConfig
from orchestrator.roster import load_roster

AGENTS = "agents:\n  coder:\n    prompt: hi\n"


def write(folder: Path, queue: str) -> Path:
    path = folder / "agents.yaml"
    path.write_text("name: my team\n" + textwrap.dedent(queue) + AGENTS, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(RosterErrors) as info:
        load_roster(path, environ or {})
    return [str(e) for e in info.value.errors]


def test_no_queue_means_the_sqlite_database(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, ""), {})
    assert roster.queue is None
    assert "queue" not in roster.to_dict()


def test_one_address_and_a_cluster_list(tmp_path: Path) -> None:
    one = load_roster(write(tmp_path, "queue: nats://10.0.0.5:4222\n"), {})
    assert one.queue is not None
    assert one.queue.servers == ("nats://10.0.0.5:4222",)
    assert one.queue.namespace == "my_team"  # the team name, as a bucket name
    many = load_roster(write(tmp_path, "queue: [nats://a:4222, nats://b:4222]\n"), {})
    assert many.queue is not None
    assert many.queue.servers == ("nats://a:4222", "nats://b:4222")


def test_credentials_come_from_variables_and_never_show(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = write(
        tmp_path,
        """\
        queue:
          servers: [nats://n1:4222, nats://u:inline-pw@n2:4222]
          user: octy
          password: ${NATS_PASSWORD}
          tls: {ca: ca.pem}
          replicas: 3
          namespace: team-a
        """,
    )
    roster = load_roster(path, {"NATS_PASSWORD": "hunter2-secret"})
    assert roster.queue is not None
    assert roster.queue.password == "hunter2-secret"
    assert roster.queue.tls_ca == tmp_path / "ca.pem"
    shown = str(roster.to_dict()) + repr(roster)
    assert "hunter2-secret" not in shown
    assert "inline-pw" not in shown
    assert roster.to_dict()["queue"]["password"] == "***"
    config = NatsConfig.from_setting(roster.queue)
    assert (config.user, config.password, config.replicas, config.namespace) == (
        "octy",
        "hunter2-secret",
        3,
        "team-a",
    )
    assert "hunter2-secret" not in repr(config)


def test_every_mistake_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        queue:
          servers: [http://n1:4222]
          user: octy
          token: ${TOKEN}
          replicas: 2
          creds: missing.creds
        """,
    )
    found = problems(path, {"TOKEN": "t"})
    assert any(":3: key 'queue.servers'" in p and "not a NATS address" in p for p in found)
    assert any("key 'queue.replicas'" in p and "1, 3 or 5" in p for p in found)
    assert any("key 'queue.token'" in p and "not both" in p for p in found)
    assert any("key 'queue.creds'" in p and "file not found" in p for p in found)


def test_unknown_key_and_unset_variable(tmp_path: Path) -> None:
    assert (
        "did you mean 'servers'"
        in problems(write(tmp_path, "queue:\n  server: nats://a:4222\n"))[0]
    )
    found = problems(
        write(tmp_path, "queue:\n  servers: nats://a\n  user: u\n  password: ${NATS_PASSWORD}\n")
    )
    assert any("NATS_PASSWORD" in p for p in found)
    assert (
        "a password needs a user"
        in problems(write(tmp_path, "queue:\n  servers: nats://a\n  password: pw\n"))[0]
    )


def test_agent_lease_length(tmp_path: Path) -> None:
    """How soon a dead supervisor's agents may run elsewhere: a duration, 1 s to 1 h."""
    roster = load_roster(write(tmp_path, "queue:\n  servers: nats://a:4222\n"), {})
    assert roster.queue is not None
    assert roster.queue.agent_lease_s == 15.0
    path = write(tmp_path, "queue:\n  servers: nats://a:4222\n  agent_lease: 2s\n")
    roster = load_roster(path, {})
    assert roster.queue is not None
    assert roster.queue.agent_lease_s == 2.0
    for bad, why in (("200ms", "between 1s and 1h"), ("soon", "invalid duration")):
        path = write(tmp_path, f"queue:\n  servers: nats://a:4222\n  agent_lease: {bad}\n")
        assert any(":4: key 'queue.agent_lease'" in p and why in p for p in problems(path)), (
            problems(path)
        )
