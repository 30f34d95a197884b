// Mail alerts: the rules that turn audit entries into mail (list with
// their queues' counts, add, remove) and a test mail through the site's
// mail server. The same API routes as `jg admin alerts` and
// `jg admin smtp test`; the gateway decides (`manage-alerts`) and checks
// every field (a refused rule shows the gateway's reason, naming the field).

import { get, post, del, seg } from './api.js';
import { h, render, heading, table, field, busy, notice, showError, splitList as list, actionButton } from './ui.js';
import { main } from './app.js';

function secs(n) {
  if (n % 86400 === 0) return `${n / 86400}d`;
  if (n % 3600 === 0) return `${n / 3600}h`;
  if (n % 60 === 0) return `${n / 60}m`;
  return `${n}s`;
}

function recipients(r) {
  const parts = [];
  if (r.users.length) parts.push(`users: ${r.users.join(', ')}`);
  if (r.roles.length) parts.push(`roles: ${r.roles.join(', ')}`);
  if (r.addresses.length) parts.push(r.addresses.join(', '));
  if (r.approvers) parts.push('the group’s approvers');
  return parts.join('; ');
}

export async function alertsPage() {
  const status = h('div', { 'aria-live': 'polite', class: 'status' });
  const rules = h('div', {});

  const refresh = async () => {
    try {
      const all = await get('/api/v1/alert-rules');
      render(rules, table('Alert rules', [
        { label: 'Name', cell: (r) => h('strong', {}, r.name) },
        { label: 'Events', cell: (r) => r.events.join(', ') + (r.outcome ? ` (${r.outcome})` : '') },
        { label: 'Groups', cell: (r) => r.groups.join(', ') || 'any' },
        { label: 'Recipients', cell: (r) => recipients(r) },
        { label: 'Mode', cell: (r) => (r.mode === 'digest' ? `digest every ${secs(r.digest_every_secs)}` : 'each') },
        { label: 'Per hour', cell: (r) => String(r.max_per_hour) },
        { label: 'Sent', cell: (r) => String(r.sent) },
        { label: 'Waiting', cell: (r) => String(r.waiting) },
        { label: 'Limited', cell: (r) => String(r.limited) },
        { label: 'Dead', cell: (r) => String(r.dead) },
        {
          label: 'Actions',
          cell: (r) => actionButton('Remove', 'danger', status, `Remove the rule ${r.name}? Its waiting mail is dropped.`, async () => {
            await del(`/api/v1/alert-rules/${seg(r.name)}`);
            render(status, notice(`Rule ${r.name} removed.`, 'ok'));
            await refresh();
          }),
        },
      ], all, 'No alert rules yet.'));
      main.dataset.loaded = 'alerts';
    } catch (e) {
      showError(status, e);
    }
  };

  const input = (name, placeholder, extra = {}) => h('input', { name, placeholder, ...extra });
  const name = input('name', 'lockouts', { required: true });
  const events = input('events', 'lockout, session-open:*, epm-*', { required: true });
  const outcome = input('outcome', 'denied');
  const groups = input('groups', 'prod, pci');
  const users = input('users', 'secops');
  const roles = input('roles', 'admin');
  const addresses = input('addresses', 'oncall@example.com');
  const approvers = h('input', { name: 'approvers', type: 'checkbox' });
  const digest = input('digest_every', '15m');
  const perHour = input('max_per_hour', '60', { type: 'number', min: '1' });
  const subject = input('subject', '[Jumpgate] {action}: {target} ({outcome})');
  const body = h('textarea', { name: 'body', rows: '3', placeholder: 'Default: the entry’s fields, one per line.' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add rule');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'grid-form' },
    field('Name', name),
    field('Events', events, 'Audit actions, comma-separated; a final * matches a prefix (session-open:*), * alone every action.'),
    field('Outcome', outcome, 'Only entries with this outcome (denied, failed, locked…); empty: any.'),
    field('Groups', groups, 'Only entries about these endpoint groups; empty: any.'),
    field('Users', users, 'Their email addresses get the mail.'),
    field('Roles', roles, 'Their members’ email addresses get the mail.'),
    field('Addresses', addresses),
    field('Approvers', approvers, 'Access requests (access-* events): the approvers of the request’s group.'),
    field('Digest every', digest, 'One mail per window (10s to 1d) instead of one per entry.'),
    field('Mails per hour at most', perHour, 'Default 60; the rest is counted as limited.'),
    field('Subject', subject, 'Placeholders: {action} {actor} {target} {outcome} {at} {groups} {detail} {id} {rule}.'),
    field('Body', body),
    h('div', {}, submit));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, out, async () => {
      const n = perHour.value.trim();
      const r = await post('/api/v1/alert-rules', {
        name: name.value.trim(),
        events: list(events.value),
        outcome: outcome.value.trim() || undefined,
        groups: list(groups.value),
        users: list(users.value),
        roles: list(roles.value),
        addresses: list(addresses.value),
        approvers: approvers.checked,
        digest_every: digest.value.trim() || undefined,
        max_per_hour: n ? Number(n) : undefined,
        subject: subject.value.trim() || undefined,
        body: body.value.trim() || undefined,
      });
      form.reset();
      render(out, notice(`Rule ${r.name} added.`, 'ok'));
      await refresh();
    });
  });

  const to = h('input', { name: 'test_to', type: 'email', required: true, placeholder: 'you@example.com' });
  const send = h('button', { type: 'submit' }, 'Send test mail');
  const sent = h('div', { 'aria-live': 'polite' });
  const testForm = h('form', { class: 'grid-form' }, field('To', to, 'Sent now through the gateway’s [smtp] server, not queued.'), h('div', {}, send));
  testForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(send, sent, async () => {
      const r = await post('/api/v1/smtp/test', { to: to.value.trim() });
      render(sent, notice(`The mail server accepted the test mail to ${r.to}: ${r.reply}`, 'ok'));
    });
  });

  render(main, heading('Alerts'),
    h('p', {}, 'Audit entries mailed to people: each rule picks events and recipients, one mail per entry or a digest, with a limit per hour. No secret or session content is ever in a mail.'),
    status, rules,
    h('section', { class: 'card' }, h('h2', {}, 'Add a rule'), form, out),
    h('section', { class: 'card' }, h('h2', {}, 'Test the mail server'), testForm, sent));
  await refresh();
}
