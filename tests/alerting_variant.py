"""The reference blueprint with an Alertmanager: one receiver of each kind, each with its secret."""

from __future__ import annotations

from pathlib import Path

REFERENCE = Path(__file__).resolve().parent.parent / "blueprints" / "reference.yaml"
ALERTMANAGER = """\
  alertmanager:
    receivers:
      oncall:
        webhook: {url: "https://oncall.example.no/hooks/alerts", credentials_secret: oncall-token}
      ops-mail:
        email: {to: ops@pay.example.no, from: alerts@pay.example.no, smarthost: "smtp.example.no:587", username: alerts, password_secret: smtp-password}
      chat:
        slack: {channel: "#payments-alerts", api_url_secret: slack-webhook-url}
    route: {receiver: ops-mail, critical: oncall, warning: chat}
"""


def reference_with_alertmanager_text() -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    anchor = "  alerts: true\n"
    assert text.count(anchor) == 1, "the reference blueprint's observability section changed"
    return text.replace(anchor, anchor + ALERTMANAGER)


def write_reference_with_alertmanager(folder: Path) -> Path:
    path = folder / "reference-alerting.yaml"
    path.write_text(reference_with_alertmanager_text(), encoding="utf-8")
    return path
