"""Sends the password reset mail for `PasswordResetJob`, written in Python.

Arguments: `[{"email": "ann@example.com", "token": "abc123"}]` or
`["ann@example.com", "abc123"]`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging, mail, types

RESET_URL = "https://shop.example/password/reset?token="


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name="password_reset", version="1.0.0", classes=["PasswordResetJob"])

    def perform(self, job: types.Job) -> None:
        email, token = arguments(job.args)
        body = (
            "Hello,\n\nsomeone asked to reset the password of your account.\n"
            f"Choose a new one here: {RESET_URL}{token}\n\n"
            "If it wasn't you, ignore this mail.\n"
        )
        message = mail.Email(
            from_=None, to=[email], cc=[], bcc=[], reply_to=None,
            subject="Reset your password", text_body=body, html_body=None,
            headers=[("X-Mailer-Plugin", "password_reset")],
        )
        try:
            message_id = mail.send_mail(message)
        except Err as err:
            raise Err(job_error(err.value))
        logging.log(logging.Level.INFO, f"password reset mail sent as {message_id}")


def arguments(text: str) -> tuple[str, str]:
    """The recipient and token, by name or by position."""
    args = json.loads(text)
    if args and isinstance(args[0], dict):
        email, token = args[0].get("email"), args[0].get("token")
    elif len(args) >= 2:
        email, token = args[0], args[1]
    else:
        email = token = None
    if not isinstance(email, str) or not isinstance(token, str):
        raise Err(types.JobError_Permanent('expected [{"email": ..., "token": ...}] or [email, token]'))
    return email, token


def job_error(error: mail.MailError) -> types.JobError:
    """Retry what may pass; give up on what never will."""
    if isinstance(error, mail.MailError_Transient):
        return types.JobError_Retryable(f"mail not sent: {error.value}")
    return types.JobError_Permanent(f"mail not sent: {error.value}")
