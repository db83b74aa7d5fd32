"""Sending alerts: a JSON POST to a webhook and/or an email over SMTP, for every alert opened or resolved.

A notification that cannot be delivered is logged and dropped: the alert itself is stored and listed by the API
either way, and the next one tries again.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

from connector.models import Alert
from connector.operations.settings import OperationsSettings

log = logging.getLogger("connector.operations")

WEBHOOK_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 10.0


def alert_payload(alert: Alert, event: str, workspace: str | None) -> dict[str, Any]:
    """What a notification says: ``event`` is ``opened`` or ``resolved``."""
    return {
        "event": event,
        "alert": {
            "id": alert.id,
            "workspace": workspace,
            "sync_id": alert.sync_id,
            "kind": alert.kind.value,
            "status": alert.status.value,
            "message": alert.message,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
    }


def send_alerts(settings: OperationsSettings, payloads: list[dict[str, Any]]) -> int:
    """Deliver each payload by webhook and email as configured; returns how many deliveries succeeded."""
    delivered = 0
    for payload in payloads:
        if settings.alert_webhook_url:
            delivered += _post(settings.alert_webhook_url, payload)
        if settings.alert_email_to:
            delivered += _mail(settings, payload)
    return delivered


def _post(url: str, payload: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            response.read()
    except Exception as exc:
        log.warning("alert %s: the webhook refused it or could not be reached: %s", payload["alert"]["id"], exc)
        return 0
    return 1


def _mail(settings: OperationsSettings, payload: dict[str, Any]) -> int:
    alert = payload["alert"]
    message = EmailMessage()
    word = "resolved" if payload["event"] == "resolved" else alert["kind"]
    message["Subject"] = f"[connector] {word}: {alert['message'][:150]}"
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.alert_email_to)
    message.set_content(
        f"{alert['message']}\n\nworkspace: {alert['workspace']}\nsync: {alert['sync_id']}\nkind: {alert['kind']}\n"
        f"status: {alert['status']}\nopened: {alert['opened_at']}\nresolved: {alert['resolved_at'] or '-'}\n"
    )
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
    except Exception as exc:
        log.warning("alert %s: the email could not be sent: %s", alert["id"], exc)
        return 0
    return 1
