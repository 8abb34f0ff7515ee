"""Sends the password reset mail for `PasswordResetJob`, written in Python.

Arguments: the user and the token, as Rails'
`PasswordResetJob.perform_later(user, token)` passes them, the user a
GlobalID read from the app's database (`["gid://shop/User/7", "abc123"]`);
or the address instead of the user, by name or by position
(`[{"email": "ann@example.com", "token": "abc123"}]`,
`["ann@example.com", "abc123"]`).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging, mail, records, types

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
    """The recipient and token, by name or by position; a user given by GlobalID is read."""
    args = json.loads(text)
    if args and isinstance(args[0], dict):
        email, token = args[0].get("email"), args[0].get("token")
    elif len(args) >= 2:
        email, token = args[0], args[1]
    else:
        email = token = None
    if not isinstance(email, str) or not isinstance(token, str):
        raise Err(types.JobError_Permanent('expected [user, token], [{"email": ..., "token": ...}] or [email, token]'))
    if email.startswith("gid://"):
        email = email_of(email)
    return email, token


def email_of(gid: str) -> str:
    """The address of the user `gid` names, from the app's database."""
    try:
        row = records.locate(gid, ["email"])
    except Err as err:
        kind = types.JobError_Retryable if isinstance(err.value, records.RecordError_Unavailable) else types.JobError_Permanent
        raise Err(kind(f"reading {gid}: {err.value.value}"))
    if row is None:
        raise Err(types.JobError_Retryable(f"Couldn't find the record {gid}"))
    return json.loads(row)["email"]


def job_error(error: mail.MailError) -> types.JobError:
    """Retry what may pass; give up on what never will."""
    if isinstance(error, mail.MailError_Transient):
        return types.JobError_Retryable(f"mail not sent: {error.value}")
    return types.JobError_Permanent(f"mail not sent: {error.value}")
