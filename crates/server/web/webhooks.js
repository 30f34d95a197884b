// Outbound events: webhook subscriptions (list, add, remove) and their
// deliveries (newest first, dead ones replayable). The same API routes as
// `jg admin webhooks`; the gateway decides (`manage-webhooks`).

import { get, post, del, seg } from './api.js';
import { h, render, heading, table, field, fmtTime, busy, notice, showError, splitList as list, actionButton } from './ui.js';
import { main } from './app.js';

function secretBox(title, secret) {
  return h('div', { class: 'card secret' },
    h('p', {}, h('strong', {}, title), ' — shown only once: give it to the receiver now (it checks ', h('code', {}, 'Jumpgate-Signature'), ' with it).'),
    h('code', { class: 'secret-value' }, secret));
}

export async function webhooksPage() {
  const status = h('div', { 'aria-live': 'polite', class: 'status' });
  const subs = h('div', {});
  const deliveries = h('div', {});
  let shown = null;

  const loadDeliveries = async (sub, dead) => {
    shown = { sub, dead };
    const q = `dead=${dead ? 'true' : 'false'}${sub ? `&subscription=${encodeURIComponent(sub)}` : ''}`;
    const rows = await get(`/api/v1/webhooks/deliveries?${q}`);
    const deadOnes = rows.filter((d) => d.state === 'dead');
    render(deliveries,
      h('h2', {}, `Deliveries${sub ? ` of ${sub}` : ''}${dead ? ' (dead)' : ''}`),
      h('p', { class: 'actions' },
        actionButton('All', '', status, null, () => loadDeliveries(sub, false)),
        actionButton('Dead only', '', status, null, () => loadDeliveries(sub, true)),
        deadOnes.length
          ? actionButton(`Replay ${deadOnes.length} dead`, 'primary', status, 'Queue every dead delivery shown again?', async () => {
            const r = await post('/api/v1/webhooks/deliveries/replay', { all_dead: true, subscription: sub || undefined });
            render(status, notice(`Queued ${r.count} deliveries again.`, 'ok'));
            await refresh();
          })
          : null),
      table('Deliveries', [
        { label: 'Id', cell: (d) => String(d.id) },
        { label: 'Subscription', cell: (d) => d.subscription },
        { label: 'Event', cell: (d) => h('code', {}, String(d.entry_id)) },
        { label: 'Action', cell: (d) => d.action },
        { label: 'State', cell: (d) => h('span', { class: `state state-${d.state}` }, d.state) },
        { label: 'Tries', cell: (d) => String(d.attempts) },
        { label: 'Last error', cell: (d) => d.last_error || '—' },
        { label: 'Queued', cell: (d) => fmtTime(d.created_at) },
        {
          label: 'Actions',
          cell: (d) => (d.state === 'dead'
            ? actionButton('Replay', '', status, null, async () => {
              await post('/api/v1/webhooks/deliveries/replay', { ids: [d.id] });
              render(status, notice(`Delivery ${d.id} queued again.`, 'ok'));
              await refresh();
            })
            : ''),
        },
      ], rows, 'No deliveries.'));
  };

  const refresh = async () => {
    try {
      const all = await get('/api/v1/webhooks');
      render(subs, table('Webhook subscriptions', [
        { label: 'Name', cell: (w) => h('strong', {}, w.name) },
        { label: 'URL', cell: (w) => h('code', {}, w.url) },
        { label: 'Format', cell: (w) => w.format + (w.jira_project ? ` (${w.jira_project})` : '') },
        { label: 'Events', cell: (w) => w.events.join(', ') },
        { label: 'Groups', cell: (w) => w.groups.join(', ') || 'any' },
        { label: 'Pending', cell: (w) => String(w.pending) },
        { label: 'Delivered', cell: (w) => String(w.delivered) },
        { label: 'Dead', cell: (w) => String(w.dead) },
        {
          label: 'Actions',
          cell: (w) => h('span', { class: 'actions' },
            actionButton('Deliveries', '', status, null, () => loadDeliveries(w.name, false)),
            actionButton('Rotate secret', '', status, `Give ${w.name} a new secret? The old one stops at once.`, async () => {
              const s = await post(`/api/v1/webhooks/${seg(w.name)}/rotate-secret`);
              render(status, secretBox(`New secret of ${w.name}`, s.secret));
            }),
            actionButton('Remove', 'danger', status, `Remove ${w.name} and its queue?`, async () => {
              await del(`/api/v1/webhooks/${seg(w.name)}`);
              await refresh();
            })),
        },
      ], all, 'No subscriptions yet.'));
      await loadDeliveries(shown ? shown.sub : null, shown ? shown.dead : false);
      main.dataset.loaded = 'webhooks';
    } catch (e) {
      showError(status, e);
    }
  };

  const name = h('input', { name: 'name', placeholder: 'siem' });
  const url = h('input', { name: 'url', required: true, placeholder: 'https://siem.example.com/hook' });
  const events = h('input', { name: 'events', required: true, placeholder: 'lockout, session-open:denied, all' });
  const groups = h('input', { name: 'groups', placeholder: 'prod, web' });
  const format = h('select', { name: 'format' }, ['json', 'servicenow', 'jira'].map((f) => h('option', { value: f }, f)));
  const project = h('input', { name: 'jira_project', placeholder: 'SEC' });
  const ca = h('textarea', { name: 'ca_pem', rows: '3', placeholder: '-----BEGIN CERTIFICATE-----' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add subscription');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'grid-form' },
    field('URL', url, 'https:// (plain http:// only to this host’s loopback address).'),
    field('Events', events, 'Audit actions, comma-separated, each optionally :outcome; or all.'),
    field('Groups', groups, 'Only entries about these endpoint groups (empty: any).'),
    field('Name', name, 'Default: wh- and random characters.'),
    field('Format', format),
    field('Jira project', project, 'With the jira format.'),
    field('CA certificate (PEM)', ca, 'The receiver’s private CA; empty: the system’s roots.'),
    h('div', {}, submit));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, out, async () => {
      const s = await post('/api/v1/webhooks', {
        name: name.value.trim() || undefined,
        url: url.value.trim(),
        events: list(events.value),
        groups: list(groups.value),
        format: format.value,
        jira_project: project.value.trim() || undefined,
        ca_pem: ca.value.trim() || undefined,
      });
      form.reset();
      render(out, secretBox(`Secret of ${s.webhook.name}`, s.secret));
      await refresh();
    });
  });

  render(main, heading('Webhooks'),
    h('p', {}, 'Audit entries sent to ITSM/SIEM receivers, signed, each subscription with its own queue. See docs/webhooks.md.'),
    status, subs,
    h('section', { class: 'card' }, h('h2', {}, 'Add a subscription'), form, out),
    deliveries);
  await refresh();
}
