"""Delivers a signed webhook for `WebhookDeliveryJob.perform_later(endpoint, event)`,
written in Python: the counterpart of plugins/webhook, calling `wasi:http`'s
outgoing handler directly (world `job-plugin-http`).

The endpoint's URL is read from the app's `webhook_endpoints` table, the
event posted as JSON and signed as Standard Webhooks says with the policy's
key `webhooks`. 408, 429 and 5xx are retried by the runner; other 4xx go to
the dead set.
"""

import base64
import json
import time

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import jobrunner_plugin_types as types
from wit_world.imports import logging, outgoing_handler, records, signing
from wit_world.imports import wasi_http_types as http
from wit_world.imports.streams import StreamError_Closed


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.PluginInfo:
        return types.PluginInfo(name="webhook_py", version="1.0.0", classes=["WebhookDeliveryJob"])

    def perform(self, job: types.Job) -> None:
        endpoint, event = json.loads(job.args)[:2]
        url = json.loads(records.find("WebhookEndpoint", str(endpoint), ["url"]) or "null")
        if url is None:
            raise Err(types.JobError_Permanent(f"no webhook endpoint {endpoint}"))
        url = url["url"]
        body = json.dumps(plain(event), separators=(",", ":")).encode()
        msg_id, timestamp = f"msg_{job.jid}", str(int(time.time()))
        mac = signing.hmac_sha256("webhooks", f"{msg_id}.{timestamp}.".encode() + body)
        headers = [("content-type", b"application/json"), ("webhook-id", msg_id.encode()),
                   ("webhook-timestamp", timestamp.encode()), ("webhook-signature", b"v1," + base64.b64encode(mac))]
        status = post(url, headers, body)
        if status in (408, 429) or status >= 500:
            raise Err(types.JobError_Retryable(f"{url} answered {status}"))
        if status >= 300:
            raise Err(types.JobError_Permanent(f"{url} answered {status}"))
        logging.log(logging.Level.INFO, f"{msg_id} delivered to {url}: {status}")


def post(url: str, headers: list, body: bytes) -> int:
    """POSTs `body` to `url` through the host; the response's status."""
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_method(http.Method_Post())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query("/" + path)
    outgoing = request.body()
    pending = outgoing_handler.handle(request, None)
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(body)
    http.OutgoingBody.finish(outgoing, None)
    with pending.subscribe() as ready:
        ready.block()
    answer = pending.get()
    if not isinstance(answer, Ok) or not isinstance(answer.value, Ok):
        code = answer.value.value if isinstance(answer, Ok) else "no response"
        fate = types.JobError_Permanent if type(code).__name__ in DENIED else types.JobError_Retryable
        raise Err(fate(f"POST {url}: {type(code).__name__}"))
    response = answer.value.value
    status = response.status()
    with response.consume() as incoming:
        with incoming.stream() as stream:
            try:
                while stream.blocking_read(65536):
                    pass
            except Err as err:
                if not isinstance(err.value, StreamError_Closed):
                    raise Err(types.JobError_Permanent(f"POST {url}: the response was cut off"))
    return status


DENIED = {"ErrorCode_HttpRequestDenied", "ErrorCode_DestinationIpProhibited", "ErrorCode_HttpRequestBodySize"}


def plain(value):
    """A hash argument without ActiveJob's `_aj_*` markers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_aj_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
