// Delivers a signed webhook for `WebhookDeliveryJob.perform_later(endpoint, event)`,
// written in JavaScript: the counterpart of plugins/webhook, with `fetch`
// (componentize-js sends it through `wasi:http`, checked by the runner's policy).
//
// The endpoint's URL is read from the app's `webhook_endpoints` table, the
// event posted as JSON and signed as Standard Webhooks says with the
// policy's key `webhooks`. 408, 429 and 5xx are retried by the runner; other
// 4xx go to the dead set. `perform` is async: componentize-js runs the
// event loop until its promise settles.

import { log } from 'jobrunner:plugin/logging@0.1.6';
import { find } from 'jobrunner:plugin/records@0.1.6';
import { hmacSha256 } from 'jobrunner:plugin/signing@0.1.6';

export function describe() {
  return { name: 'webhook_js', version: '1.0.0', classes: ['WebhookDeliveryJob'] };
}

export async function perform(job) {
  const [endpoint, event] = JSON.parse(job.args);
  const row = find('WebhookEndpoint', String(endpoint), ['url']);
  if (row === undefined) throw { tag: 'permanent', val: `no webhook endpoint ${endpoint}` };
  const { url } = JSON.parse(row);
  const body = JSON.stringify(plain(event));
  const msgId = `msg_${job.jid}`;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const mac = hmacSha256('webhooks', new TextEncoder().encode(`${msgId}.${timestamp}.${body}`));
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', 'webhook-id': msgId,
        'webhook-timestamp': timestamp, 'webhook-signature': `v1,${base64(mac)}`,
      },
      body,
    });
  } catch (err) {
    throw { tag: 'retryable', val: `POST ${url}: ${err}` };
  }
  await response.text();
  const status = response.status;
  if (status === 408 || status === 429 || status >= 500) throw { tag: 'retryable', val: `${url} answered ${status}` };
  if (status >= 300) throw { tag: 'permanent', val: `${url} answered ${status}` };
  log('info', `${msgId} delivered to ${url}: ${status}`);
}

function base64(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

// A hash argument without ActiveJob's `_aj_*` markers.
function plain(value) {
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => !k.startsWith('_aj_')).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}
