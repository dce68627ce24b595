"""The start-up self-check refuses configurations that lose or double work."""

from __future__ import annotations

import subprocess

import pytest

from config.celery import celery_config
from config.selfcheck import problems
from config.settings import MissingSetting, Settings
from tests.harness.processes import BIN, env_with, obmen


def test_the_shipped_configuration_passes() -> None:
    settings = Settings()
    assert problems(settings, celery_config(settings)) == []


def test_countdown_plus_time_limit_reaching_the_visibility_timeout_is_refused() -> None:
    settings = Settings(
        visibility_timeout_s=900, retry_backoff_max_s=600, task_time_limit_s=300, task_soft_time_limit_s=200
    )
    found = problems(settings, celery_config(settings))
    assert len(found) == 1
    assert "visibility timeout (900 s)" in found[0] and "600" in found[0]


def test_an_outbound_deadline_reaching_the_soft_time_limit_is_refused() -> None:
    settings = Settings(task_soft_time_limit_s=120, task_time_limit_s=180, sep_operation_timeout_s=120)
    found = problems(settings, celery_config(settings))
    assert len(found) == 1 and "OBMEN_SEP_OPERATION_TIMEOUT_S (120.0 s)" in found[0]


def test_pickle_and_missing_expiry_and_old_kombu_are_refused() -> None:
    settings = Settings()
    conf = celery_config(settings)
    conf["task_serializer"] = "pickle"
    conf["accept_content"] = ["json", "pickle"]
    conf["beat_schedule"]["sweep"]["options"] = {}
    conf["task_acks_late"] = False
    found = problems(settings, conf, kombu_version="5.3.7")
    text = "\n".join(found)
    for expected in ("task_serializer", "accept_content", "'sweep'", "task_acks_late", "kombu 5.3.7"):
        assert expected in text


def test_obmen_worker_exits_non_zero_with_the_reason() -> None:
    result = obmen("worker", env={"OBMEN_VISIBILITY_TIMEOUT_S": "100"}, timeout=60)
    assert result.returncode != 0
    assert "refuses to start" in result.stderr
    assert "visibility timeout (100 s)" in result.stderr


def test_plain_celery_worker_command_is_checked_too() -> None:
    result = subprocess.run(
        [str(BIN / "celery"), "-A", "workers.app", "worker", "-P", "solo"],
        env=env_with({"OBMEN_VISIBILITY_TIMEOUT_S": "100"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, result.stdout[-2000:]
    assert "refuses to start" in result.stdout + result.stderr


def test_check_command_reports_ok() -> None:
    result = obmen("check")
    assert result.returncode == 0, result.stderr
    assert '"problems": []' in result.stdout


def test_a_broker_or_store_obmen_cannot_run_on_is_refused_naming_the_setting() -> None:
    settings = Settings(broker_url="amqp://guest:guest@rabbit:5672//", database_url="mysql://obmen@db/obmen")
    found = "\n".join(problems(settings, celery_config(settings)))
    assert "OBMEN_BROKER_URL uses amqp://" in found and "Redis only" in found
    assert "OBMEN_DATABASE_URL uses mysql://" in found
    # `obmen check` passed an amqp:// broker before (it prints these problems) and beat then crashed.
    beat = obmen("beat", env={"OBMEN_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}, timeout=60)
    assert beat.returncode != 0 and "OBMEN_BROKER_URL uses amqp://" in beat.stderr


def test_a_worker_refuses_a_queue_whose_system_has_no_address() -> None:
    settings = Settings(sep_url=None, sbis_url="")
    conf = celery_config(settings)
    assert problems(settings, conf, queues=["payments", "ops"]) == []
    found = problems(settings, conf, queues=["mail", "sep", "acts"])
    assert [p.split(" is not set")[0] for p in found] == ["OBMEN_SEP_URL", "OBMEN_SBIS_URL"]
    with pytest.raises(MissingSetting, match="OBMEN_SEP_URL is not set"):
        settings.url("sep_url")
    refused = obmen("worker", "-Q", "sep", env={"OBMEN_SEP_URL": ""}, timeout=60)
    assert refused.returncode != 0 and "OBMEN_SEP_URL is not set" in refused.stderr
