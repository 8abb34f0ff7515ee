// Sends the daily signup digest for `SignupDigestJob`, written in
// JavaScript and built into a component with componentize-js.
//
// Arguments, as Rails' `SignupDigestJob.perform_later(to, users)` writes
// them: the recipient, then the users, each a GlobalID
// ("gid://shop/User/7", looked up in the app's database) or an object
// with a name and an email:
//   ["team@shop.example", ["gid://shop/User/7", {"name": "Bo", "email": "bo@example.com"}]]

import { log } from 'jobrunner:plugin/logging@0.1.6';
import { sendMail } from 'jobrunner:plugin/mail@0.1.6';
import { locate } from 'jobrunner:plugin/records@0.1.6';

export function describe() {
  return { name: 'signup_digest', version: '1.0.0', classes: ['SignupDigestJob'] };
}

export function perform(job) {
  const [to, entries] = parseArgs(job.args);
  const users = entries.map(lookUp).filter((user) => user !== null);
  const count = users.length === 1 ? '1 new signup' : `${users.length} new signups`;
  const text = users.map((u) => `- ${u.name} <${u.email}>`).join('\n');
  const rows = users.map((u) => `<tr><td>${escape(u.name)}</td><td>${escape(u.email)}</td></tr>`).join('');
  const id = send({
    to: [to], cc: [], bcc: [], headers: [['X-Mailer-Plugin', 'signup_digest']],
    subject: `Signup digest: ${count}`,
    textBody: `${count} since the last digest:\n\n${text}\n`,
    htmlBody: `<p>${count} since the last digest:</p><table>${rows}</table>`,
  });
  log('info', `signup digest of ${users.length} sent as ${id}`);
}

// The recipient and the list of users; a permanent error names what is wrong.
function parseArgs(text) {
  const args = JSON.parse(text);
  if (!Array.isArray(args) || typeof args[0] !== 'string' || !Array.isArray(args[1])) {
    throw permanent('expected [recipient, [user, ...]] with each user a GlobalID or {name, email}');
  }
  return args;
}

// A user by GlobalID from the app's database, or as given; null when the
// row is gone (deleted since the job was enqueued), which is logged.
function lookUp(entry) {
  if (typeof entry !== 'string') {
    if (typeof entry?.email !== 'string') throw permanent(`a user without an email: ${JSON.stringify(entry)}`);
    return { name: entry.name ?? entry.email, email: entry.email };
  }
  let row;
  try {
    row = locate(entry, ['name', 'email']);
  } catch (err) {
    // `unavailable` (no database, or it is down) may pass; the rest won't.
    const { tag, val } = err.payload;
    throw tag === 'unavailable' ? retryable(`reading ${entry}: ${val}`) : permanent(`reading ${entry}: ${val}`);
  }
  if (row === undefined || row === null) {
    log('warn', `${entry} is gone; left out of the digest`);
    return null;
  }
  const user = JSON.parse(row);
  return { name: user.name ?? user.email, email: user.email };
}

// Sends through the host; a mail error becomes a retryable or permanent job error.
function send(message) {
  try {
    return sendMail({ from: undefined, replyTo: undefined, ...message });
  } catch (err) {
    const { tag, val } = err.payload;
    throw tag === 'transient' ? retryable(`mail not sent: ${val}`) : permanent(`mail not sent: ${val}`);
  }
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Thrown from `perform`, these are its `job-error`.
function retryable(message) {
  return { tag: 'retryable', val: message };
}

function permanent(message) {
  return { tag: 'permanent', val: message };
}
