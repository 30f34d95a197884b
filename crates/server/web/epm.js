// Endpoint privilege management: the policy (edited as YAML, validated by
// the gateway, published as a signed bundle), what-if, the endpoints'
// policy versions, approval requests (live, one EventSource on
// `GET /api/v1/epm/requests/events`), offline codes and the events
// endpoints report.

import { get, post, apiText, sendText, ApiError } from './api.js';
import { h, render, heading, table, notice, busy, showError, fmtTime, field } from './ui.js';
import { main, onLeave, can } from './app.js';
import { PERMISSION as P } from './contract.js';

function tabs(here) {
  const items = [
    ['#/epm', 'Policy', P.EPM_MANAGE],
    ['#/epm/requests', 'Requests', P.EPM_APPROVE],
    ['#/epm/events', 'Events', null],
  ].filter(([, , perm]) => !perm || can(perm));
  return h('nav', { class: 'tabs', 'aria-label': 'Privilege management' },
    items.map(([href, label]) => h('a', { href, class: 'button', 'aria-current': href === here ? 'page' : null }, label)));
}

/** The problems of a refused policy, one per line with its field. */
function problemList(problems) {
  return h('div', { class: 'error', role: 'alert', id: 'epm-problems' },
    h('p', {}, `The policy has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`),
    h('ul', {}, problems.map((p) => h('li', {}, h('code', {}, p.field || '(document)'), ' ', p.message))));
}

/** Problems from an error answer (400 `invalid_policy`), if it has them. */
function problemsOf(e) {
  if (e instanceof ApiError && e.body && Array.isArray(e.body.problems)) return e.body.problems;
  return null;
}

// --- The policy ------------------------------------------------------------

export async function epmPolicyPage() {
  const doc = await get('/api/v1/epm/policy');
  let revision = doc.revision;
  const yaml = await apiText('/api/v1/epm/policy?format=yaml');
  const editor = h('textarea', { id: 'epm-yaml', class: 'code', rows: 24, spellcheck: 'false', 'aria-label': 'Policy (YAML)' });
  editor.value = yaml;
  const status = h('div', { id: 'epm-status', 'aria-live': 'polite' });
  const rev = h('span', { id: 'epm-revision', class: 'hint' });
  const showRev = (d) => {
    rev.textContent = `Revision ${d.revision}${d.updated_by ? `, saved by ${d.updated_by} ${fmtTime(d.updated_at)}` : ''}`;
  };
  showRev(doc);

  const check = async (btn) =>
    busy(btn, status, async () => {
      const r = await sendText('POST', '/api/v1/epm/policy/validate', editor.value, 'application/yaml').catch((e) => {
        const p = problemsOf(e);
        if (p) return { problems: p };
        throw e;
      });
      render(status, r.problems.length ? problemList(r.problems) : notice('The policy is valid.', 'ok'));
    });
  const save = async (btn) =>
    busy(btn, status, async () => {
      try {
        const d = await sendText('PUT', '/api/v1/epm/policy', editor.value, 'application/yaml', { 'if-match': String(revision) });
        revision = d.revision;
        showRev(d);
        render(status, notice(`Saved as revision ${d.revision}. Publish it to send it to the endpoints.`, 'ok'));
      } catch (e) {
        const p = problemsOf(e);
        if (p) render(status, problemList(p));
        else throw e;
      }
    });
  const publish = async (btn) =>
    busy(btn, status, async () => {
      const b = await post('/api/v1/epm/publish', {});
      render(status, notice(`Published version ${b.version} (signed by ${b.key}); ${b.notified} connected endpoint(s) told.`, 'ok'));
      await drawBundles();
    });

  const validateBtn = h('button', { type: 'button', id: 'epm-validate' }, 'Validate');
  validateBtn.addEventListener('click', () => check(validateBtn));
  const saveBtn = h('button', { type: 'button', id: 'epm-save' }, 'Save draft');
  saveBtn.addEventListener('click', () => save(saveBtn));
  const publishBtn = h('button', { type: 'button', class: 'primary', id: 'epm-publish' }, 'Publish');
  publishBtn.addEventListener('click', () => publish(publishBtn));

  const bundles = h('div', { id: 'epm-bundles' });
  const endpoints = h('div', { id: 'epm-endpoints' });
  const drawBundles = async () => {
    const [list, status] = await Promise.all([get('/api/v1/epm/bundles'), get('/api/v1/epm/status')]);
    render(bundles, table('Published bundles', [
      { label: 'Version', cell: (b) => String(b.version) },
      { label: 'Published', cell: (b) => fmtTime(b.published_at) },
      { label: 'By', cell: (b) => b.published_by },
      { label: 'Signing key', cell: (b) => b.key },
      { label: 'SHA-256', cell: (b) => b.sha256.slice(0, 16) },
    ], list.slice(0, 10), 'Nothing published yet: endpoints elevate nothing.'));
    render(endpoints, table('Endpoints', [
      { label: 'Endpoint', cell: (s) => s.endpoint },
      { label: 'Online', cell: (s) => h('span', { class: s.online ? 'status online' : 'status offline' }, s.online ? 'online' : 'offline') },
      { label: 'Runs version', cell: (s) => (s.accepted_version == null ? '—' : String(s.accepted_version)) },
      { label: 'Last refusal', cell: (s) => s.last_refusal || '—' },
      { label: 'Dropped events', cell: (s) => String(s.dropped_events) },
    ], status, 'No endpoint yet.'));
  };

  render(
    main,
    heading('Privilege management'),
    tabs('#/epm'),
    h('section', { class: 'card', 'aria-labelledby': 'epm-policy-title' },
      h('h2', { id: 'epm-policy-title' }, 'Policy'),
      h('p', { class: 'hint' }, 'Applications, rules (the first match wins), admin sessions and the default for everything else. Same YAML as ', h('code', {}, 'jg epm policy export'), '.'),
      rev,
      editor,
      h('div', { class: 'actions' }, validateBtn, saveBtn, publishBtn),
      status),
    whatIfCard(),
    h('section', { class: 'card' }, h('h2', {}, 'Bundles'), bundles),
    h('section', { class: 'card' }, h('h2', {}, 'Endpoints'), endpoints),
  );
  await drawBundles();
  // Which version each endpoint runs changes as they take a bundle: the
  // tables follow every three seconds while the page is open.
  const timer = setInterval(() => drawBundles().catch(() => {}), 3000);
  onLeave(() => clearInterval(timer));
}

function whatIfCard() {
  const endpoint = h('input', { id: 'whatif-endpoint', required: true, autocomplete: 'off' });
  const user = h('input', { id: 'whatif-user', required: true, autocomplete: 'off' });
  const groups = h('input', { id: 'whatif-groups', autocomplete: 'off', placeholder: 'staff, oncall' });
  const command = h('input', { id: 'whatif-command', required: true, autocomplete: 'off', placeholder: '/usr/bin/apt install curl' });
  const published = h('input', { type: 'checkbox', id: 'whatif-published' });
  const out = h('div', { id: 'whatif-answer', 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Ask');
  const form = h('form', {},
    field('Endpoint', endpoint),
    field('Local user', user),
    field('Local groups', groups, 'Comma-separated; the gateway cannot know them.'),
    field('Command', command, 'Absolute path, then the arguments.'),
    h('div', { class: 'field' }, h('label', {}, published, ' Ask the last published policy instead of the draft')),
    btn);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(btn, out, async () => {
      const a = await post('/api/v1/epm/test', {
        endpoint: endpoint.value.trim(),
        user: user.value.trim(),
        groups: groups.value.split(',').map((g) => g.trim()).filter(Boolean),
        command: command.value.trim().split(/\s+/).filter(Boolean),
        published: published.checked,
      });
      render(out, h('dl', { class: 'facts' },
        h('dt', {}, 'Decision'), h('dd', { id: 'whatif-action' }, a.action),
        h('dt', {}, 'Rule'), h('dd', { id: 'whatif-rule' }, a.rule ? `${a.rule} (application ${a.application})` : 'none matched: the default applies'),
        h('dt', {}, 'Policy'), h('dd', {}, a.policy === 'draft' ? 'the draft' : a.policy),
        h('dt', {}, 'Endpoint groups'), h('dd', {}, a.endpoint_groups.join(', ') || '—')));
    });
  });
  return h('section', { class: 'card' }, h('h2', {}, 'What if…'), h('p', { class: 'hint' }, 'The decision and the rule, without running anything.'), form, out);
}

// --- Approval requests and offline codes ------------------------------------

export function epmRequestsPage() {
  const requests = new Map();
  const status = h('div', { 'aria-live': 'polite' });
  const live = h('span', { class: 'conn-state live-state', role: 'status', id: 'epm-live', dataset: { up: 'no' } }, 'Connecting…');
  const slot = h('div', { id: 'epm-requests' });
  const decide = (r, approve, btn) =>
    busy(btn, status, async () => {
      const d = await post(`/api/v1/epm/requests/${encodeURIComponent(r.id)}/${approve ? 'approve' : 'deny'}`, { comment: '' });
      requests.set(d.id, d);
      draw();
    });
  const draw = () => {
    const all = [...requests.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const pending = all.filter((r) => r.state === 'pending');
    const done = all.filter((r) => r.state !== 'pending').slice(0, 20);
    render(slot,
      h('h2', {}, 'Waiting'),
      table('Waiting for approval', [
        { label: 'Endpoint', cell: (r) => r.endpoint },
        { label: 'User', cell: (r) => r.user },
        { label: 'Command', cell: (r) => [r.program, ...r.args].join(' ') },
        { label: 'Rule', cell: (r) => r.rule },
        { label: 'Reason', cell: (r) => r.reason || '—' },
        { label: 'Asked', cell: (r) => fmtTime(r.created_at) },
        {
          label: 'Action',
          cell: (r) => {
            const ok = h('button', { type: 'button', class: 'primary', dataset: { approve: r.id } }, 'Approve');
            ok.addEventListener('click', () => decide(r, true, ok));
            const no = h('button', { type: 'button', class: 'danger', dataset: { deny: r.id } }, 'Deny');
            no.addEventListener('click', () => decide(r, false, no));
            return h('div', { class: 'actions' }, ok, no);
          },
        },
      ], pending, 'Nothing is waiting.'),
      h('h2', {}, 'Answered'),
      table('Answered requests', [
        { label: 'Endpoint', cell: (r) => r.endpoint },
        { label: 'User', cell: (r) => r.user },
        { label: 'Command', cell: (r) => [r.program, ...r.args].join(' ') },
        { label: 'State', cell: (r) => r.state },
        { label: 'By', cell: (r) => r.decided_by || '—' },
        { label: 'When', cell: (r) => fmtTime(r.decided_at) },
      ], done, 'None yet.'));
  };
  const es = new EventSource('/api/v1/epm/requests/events');
  // Each request arrives (and again when it changes) as a `request` event.
  es.addEventListener('request', (ev) => {
    try {
      const r = JSON.parse(ev.data);
      requests.set(r.id, r);
      draw();
    } catch {
      /* not a request */
    }
  });
  es.onopen = () => {
    live.textContent = 'Live';
    live.dataset.up = 'yes';
  };
  es.onerror = () => {
    live.textContent = 'Reconnecting…';
    live.dataset.up = 'no';
  };
  onLeave(() => es.close());
  render(main, heading('Privilege management'), tabs('#/epm/requests'),
    h('p', {}, live),
    status,
    slot,
    codeCard());
  get('/api/v1/epm/requests').then((list) => {
    for (const r of list) if (!requests.has(r.id)) requests.set(r.id, r);
    draw();
  }).catch((e) => showError(status, e));
  draw();
}

function codeCard() {
  const endpoint = h('input', { id: 'code-endpoint', required: true, autocomplete: 'off' });
  const challenge = h('input', { id: 'code-challenge', required: true, autocomplete: 'off', placeholder: 'ABCD-EFGH-JK' });
  const out = h('div', { id: 'code-answer', 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', class: 'primary' }, 'Get the response');
  const form = h('form', {}, field('Endpoint', endpoint), field('Challenge', challenge, 'As the endpoint shows it to the person asking.'), btn);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(btn, out, async () => {
      const r = await post('/api/v1/epm/code', { endpoint: endpoint.value.trim(), challenge: challenge.value.trim() });
      const digits = r.response.length === 10 ? `${r.response.slice(0, 5)}-${r.response.slice(5)}` : r.response;
      render(out, h('p', {}, 'Read this response to them; it unlocks that one request once:'), h('p', { class: 'big-key', id: 'code-response' }, digits));
    });
  });
  return h('section', { class: 'card' }, h('h2', {}, 'Offline code'), h('p', { class: 'hint' }, 'For an endpoint that cannot reach the gateway: it shows a challenge, you give the response.'), form, out);
}

// --- Events ------------------------------------------------------------------

function describe(e) {
  const v = e.event || {};
  switch (v.kind) {
    case 'decision':
      return `${v.outcome}: ${[v.program, ...(v.args || [])].join(' ')} → ${v.action} (${v.rule ? `rule ${v.rule}` : 'default'})${v.reason ? `, reason: ${v.reason}` : ''}${v.detail ? ` — ${v.detail}` : ''}`;
    case 'exited':
      return `${v.program} ended with exit code ${v.exit_code}`;
    case 'approval-requested':
      return `approval requested (${v.request}): ${v.program} (rule ${v.rule})`;
    case 'bundle-accepted':
      return `policy version ${v.version} in force`;
    case 'bundle-refused':
      return `policy version ${v.version} refused: ${v.why}`;
    case 'admin-session':
      return `admin session ${v.ended ? 'ended' : 'started'} (${v.minutes} min)${v.reason ? `, reason: ${v.reason}` : ''}`;
    default:
      return v.kind || '?';
  }
}

export async function epmEventsPage() {
  const rows = [];
  let after = null;
  const filter = h('input', { id: 'events-endpoint', autocomplete: 'off', placeholder: 'all endpoints' });
  const slot = h('div', { id: 'epm-events' });
  const status = h('div', { 'aria-live': 'polite' });
  const draw = () =>
    render(slot, table('Events', [
      { label: 'When', cell: (e) => fmtTime(e.at) },
      { label: 'Endpoint', cell: (e) => e.endpoint },
      { label: 'User', cell: (e) => (e.event && e.event.user) || '—' },
      { label: 'What', cell: (e) => describe(e) },
    ], rows.slice(-500).reverse(), 'No events yet.'));
  const load = async () => {
    const q = new URLSearchParams({ limit: '500' });
    if (after !== null) q.set('after', String(after));
    if (filter.value.trim()) q.set('endpoint', filter.value.trim());
    const list = await get(`/api/v1/epm/events?${q}`);
    if (list.length) {
      rows.push(...list);
      after = list[list.length - 1].id;
      draw();
    }
  };
  filter.addEventListener('change', () => {
    rows.length = 0;
    after = null;
    draw();
    load().catch((e) => showError(status, e));
  });
  // Events are not pushed: new ones are asked for every two seconds.
  const timer = setInterval(() => load().catch((e) => showError(status, e)), 2000);
  onLeave(() => clearInterval(timer));
  render(main, heading('Privilege management'), tabs('#/epm/events'), field('Endpoint', filter), status, slot);
  draw();
  await load();
}
