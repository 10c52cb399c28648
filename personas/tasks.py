from __future__ import annotations

from django_tasks import task


@task()
def send_outbound_message(message_id: int) -> str:
    from .messaging import deliver

    return deliver(message_id)
