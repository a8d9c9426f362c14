"""The embedded broker's transport (``common.sql_broker``): Celery is configured with it,
its polling interval is the setting's, and it still moves messages (kombu hands the
other transport options to ``create_engine``, which must not see ``polling_interval``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.broker import celery_config
from common.settings import Settings


def _app(settings: Settings):
    from celery import Celery

    return Celery("test-sql-broker", config_source=celery_config(settings))


def test_sql_broker_url_is_served_by_vihubs_transport(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}")
    conf = celery_config(settings)
    assert conf["broker_url"] == f"vihub-sqla+sqlite:///{tmp_path / 'b.sqlite3'}"
    assert conf["broker_transport_options"]["polling_interval"] == settings.broker.polling_interval_s
    assert settings.broker.polling_interval_s < 1.0  # kombu's default was the dispatch latency


@pytest.mark.parametrize("prefix", ["sqla+", "sqlalchemy+"])
def test_celery_connection_uses_the_transport_with_the_set_interval(tmp_path: Path, prefix: str) -> None:
    from common.sql_broker import Transport

    settings = Settings(home=tmp_path, broker_url=f"{prefix}sqlite:///{tmp_path / 'b.sqlite3'}",
                        broker={"polling_interval_s": 0.05})
    with _app(settings).connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        assert type(connection.transport) is Transport
        assert connection.transport.polling_interval == 0.05


def test_transport_options_override_the_interval(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}",
                        broker_transport_options={"polling_interval": 0.3})
    with _app(settings).connection_for_read() as connection:
        assert connection.transport.polling_interval == 0.3


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIHUB_BROKER__POLLING_INTERVAL_S", "0.04")
    assert Settings(home=tmp_path).broker.polling_interval_s == 0.04


def test_redis_config_is_unchanged() -> None:
    conf = celery_config(Settings(broker_url="redis://127.0.0.1:6379/3"))
    assert conf["broker_url"] == "redis://127.0.0.1:6379/3"
    assert "polling_interval" not in conf["broker_transport_options"]


def test_messages_round_trip_through_the_transport(tmp_path: Path) -> None:
    """Publish with one app, read the queue depth and consume with another (the engine
    is built from the transport options without ``polling_interval``)."""
    from kombu import Queue

    settings = Settings(home=tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}")
    publisher = _app(settings)
    publisher.send_task("vihub.run_job", args=["job-1"], queue="cpu")
    with publisher.connection_for_write() as connection:
        _, depth, _ = connection.default_channel.queue_declare(queue="cpu", passive=False)
    assert depth == 1

    received: list[dict] = []
    with _app(settings).connection_for_read() as connection:
        def on_message(body, message):  # kombu's callback signature
            received.append(message.headers)
            message.ack()

        with connection.Consumer(Queue("cpu"), callbacks=[on_message], accept=["json"]):
            connection.drain_events(timeout=5)
    assert received and received[0]["task"] == "vihub.run_job" and received[0]["argsrepr"] == "['job-1']"


def _poll(channel, queue: str = "cpu"):
    from queue import Empty

    try:
        return channel._get(queue)
    except Empty:
        return None


def test_sqlite_poll_reads_the_queue_only_when_the_file_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle poll asks SQLite's change counter instead of reading the queue; a publish
    from another connection is seen by the very next poll."""
    from kombu.transport import sqlalchemy as kombu_sql

    reads: list[str] = []
    original = kombu_sql.Channel._get

    def counting_get(self, queue):
        reads.append(queue)
        return original(self, queue)

    monkeypatch.setattr(kombu_sql.Channel, "_get", counting_get)
    settings = Settings(home=tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}")
    with _app(settings).connection_for_read() as connection:
        channel = connection.default_channel
        channel.queue_declare(queue="cpu")
        assert _poll(channel) is None
        reads.clear()
        for _ in range(20):
            assert _poll(channel) is None
        assert reads == []  # nothing committed since: the queue was not read

        _app(settings).send_task("vihub.run_job", args=["job-2"], queue="cpu")
        message = _poll(channel)
        assert reads == ["cpu"]
        assert message is not None and message["headers"]["argsrepr"] == "['job-2']"


def test_sqlite_poll_reads_the_queue_at_least_every_full_poll_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kombu.transport import sqlalchemy as kombu_sql

    from common import sql_broker

    reads: list[str] = []
    original = kombu_sql.Channel._get
    monkeypatch.setattr(kombu_sql.Channel, "_get", lambda self, queue: (reads.append(queue), original(self, queue))[1])
    monkeypatch.setattr(sql_broker, "FULL_POLL_EVERY_S", 0.0)
    settings = Settings(home=tmp_path, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}")
    with _app(settings).connection_for_read() as connection:
        channel = connection.default_channel
        channel.queue_declare(queue="cpu")
        for _ in range(3):
            assert _poll(channel) is None
        assert reads == ["cpu"] * 3
