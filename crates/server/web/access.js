// Access requests with approval: a technician asks for access to a group
// or an endpoint for a window (the group requires approval for some of its
// permissions); approvers approve or deny here or with `jg access`.
// `GET /api/v1/access-requests` lists the caller's own requests, those they
// may decide (`can_decide`) and, for auditors, those of their groups.
// Elevation requests (kind `elevation`: a user on an endpoint asks to run a
// program elevated and waits) are listed and decided here too, by holders
// of `epm-approve` on the endpoint's group.

import { get, post, seg } from './api.js';
import { h, render, heading, table, notice, busy, showError, fmtTime, field } from './ui.js';
import { main, ctx } from './app.js';

const WINDOWS = [
  ['15 minutes', 900],
  ['1 hour', 3600],
  ['2 hours', 7200],
  ['4 hours', 14400],
  ['8 hours', 28800],
];

function windowText(secs) {
  if (secs % 3600 === 0) return `${secs / 3600}h`;
  if (secs % 60 === 0) return `${secs / 60}m`;
  return `${secs}s`;
}

const approvals = (r) => `${r.decisions.filter((d) => d.decision === 'approve').length}/${r.approvals_required}`;
const targetOf = (r) => (r.endpoint ? `endpoint ${r.endpoint}` : `group ${r.group}`);
// What is asked: the permissions, or the program an elevation would run.
const asks = (r) => {
  if (!r.elevation) return r.permissions.join(', ');
  const e = r.elevation;
  return h('span', { class: 'elevation', dataset: { program: e.program } },
    h('code', {}, [e.program, ...e.args].join(' ')),
    ` (rule ${e.rule || 'default'})`);
};
const windowOf = (r) => (r.elevation ? '—' : windowText(r.window_secs));
const kindOf = (r) => h('span', { class: `kind kind-${r.kind}`, dataset: { kind: r.kind } }, r.kind);

export async function accessPage() {
  const status = h('div', { id: 'access-status', 'aria-live': 'polite' });
  const slot = h('div', { id: 'access-requests' });

  const act = (r, verb, btn) =>
    busy(btn, status, async () => {
      const body = verb === 'cancel' ? undefined : {};
      const d = await post(`/api/v1/access-requests/${seg(r.id)}/${verb}`, body);
      const what = d.kind === 'elevation' ? 'Elevation request' : 'Access request';
      render(status, notice(`${what} ${d.id} is ${d.state}${d.state === 'pending' ? ` (${approvals(d)} approvals)` : ''}.`, 'ok'));
      await draw();
    });

  const draw = async () => {
    const list = await get('/api/v1/access-requests');
    const me = ctx.me ? ctx.me.username : '';
    const waiting = list.filter((r) => r.can_decide);
    render(slot,
      h('h2', {}, 'Waiting for your decision'),
      table('Waiting for your decision', [
        { label: 'Kind', cell: kindOf },
        { label: 'Requester', cell: (r) => r.requester },
        { label: 'Target', cell: (r) => targetOf(r) },
        { label: 'Asks', cell: asks },
        { label: 'Window', cell: windowOf },
        { label: 'Reason', cell: (r) => r.reason },
        { label: 'Approvals', cell: (r) => approvals(r) },
        { label: 'Asked', cell: (r) => fmtTime(r.created_at) },
        {
          label: 'Action',
          cell: (r) => {
            const ok = h('button', { type: 'button', class: 'primary', dataset: { approve: r.id } }, 'Approve');
            ok.addEventListener('click', () => act(r, 'approve', ok));
            const no = h('button', { type: 'button', class: 'danger', dataset: { deny: r.id } }, 'Deny');
            no.addEventListener('click', () => act(r, 'deny', no));
            return h('div', { class: 'actions' }, ok, no);
          },
        },
      ], waiting, 'Nothing is waiting for you.'),
      h('h2', {}, 'Requests'),
      table('Access requests', [
        { label: 'Id', cell: (r) => r.id },
        { label: 'Kind', cell: kindOf },
        { label: 'State', cell: (r) => h('span', { class: `state state-${r.state}`, dataset: { state: r.state, id: r.id } }, r.state) },
        { label: 'Requester', cell: (r) => r.requester },
        { label: 'Target', cell: (r) => targetOf(r) },
        { label: 'Asks', cell: asks },
        { label: 'Window', cell: windowOf },
        { label: 'Approvals', cell: (r) => approvals(r) },
        { label: 'Until', cell: (r) => (r.until ? fmtTime(r.until) : '—') },
        { label: 'Reason', cell: (r) => r.reason },
        {
          label: 'Action',
          cell: (r) => {
            if (r.requester !== me || !['pending', 'active'].includes(r.state)) return '';
            const c = h('button', { type: 'button', dataset: { cancel: r.id } }, r.state === 'active' ? 'End now' : 'Withdraw');
            c.addEventListener('click', () => act(r, 'cancel', c));
            return c;
          },
        },
      ], list, 'No access requests.'));
    slot.dataset.loaded = 'yes';
  };

  // The request form.
  const target = h('input', { id: 'access-target', required: true, autocomplete: 'off', placeholder: 'group or endpoint' });
  const windowSel = h('select', { id: 'access-window' }, WINDOWS.map(([label, secs]) => h('option', { value: String(secs) }, label)));
  windowSel.value = '3600';
  const reason = h('input', { id: 'access-reason', required: true, maxlength: '200', autocomplete: 'off', placeholder: 'INC-123' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Request access');
  const form = h('form', {},
    field('Group or endpoint', target, 'group:NAME or endpoint:NAME when a name is both.'),
    field('For', windowSel, 'The grant starts when the last approval needed arrives.'),
    field('Reason', reason, 'A ticket number or a short text; approvers see it.'),
    send);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(send, status, async () => {
      const r = await post('/api/v1/access-requests', {
        target: target.value.trim(),
        window_secs: Number(windowSel.value),
        reason: reason.value,
      });
      render(status, notice(`Requested ${r.id}: ${r.approvals_required} approval(s) needed.`, 'ok'));
      reason.value = '';
      await draw();
    });
  });

  render(main, heading('Access requests'),
    h('p', { class: 'hint' }, 'Groups may require an approved request before sessions on their endpoints; approvers are told and decide here or with jg access. Elevation requests from endpoints\u2019 users wait here too for a holder of epm-approve.'),
    h('section', { class: 'card narrow' }, h('h2', {}, 'Request access'), form),
    status,
    slot);
  await draw().catch((e) => showError(status, e));
}
