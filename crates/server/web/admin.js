// Administration: users, roles, groups, API clients, enrollment tokens.
// Every call goes to the same API routes `jg` and `jumpgate admin` use, so
// the gateway's authorization decides, not this page.

import { get, post, put, patch, del, seg } from './api.js';
import { h, render, heading, table, field, fmtTime, busy, notice, showError } from './ui.js';
import { main, ctx } from './app.js';
import { PERMISSIONS } from './contract.js';

const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** A page: heading, a list refreshed by `load`, and a creation form. */
async function adminPage(title, { load, form }) {
  const status = h('div', { 'aria-live': 'polite', class: 'status' });
  const slot = h('div', {});
  const refresh = async () => {
    try {
      render(slot, await load(refresh, status));
    } catch (e) {
      showError(status, e);
    }
  };
  render(main, heading(title), status, slot, form ? form(refresh, status) : null);
  await refresh();
}

function actionButton(label, cls, status, confirmText, fn) {
  const b = h('button', { type: 'button', class: cls }, label);
  b.addEventListener('click', () => {
    if (confirmText && !window.confirm(confirmText)) return;
    busy(b, status, fn);
  });
  return b;
}

function createForm(titleText, fields, submitLabel, onSubmit) {
  const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'grid-form' }, fields, h('div', {}, submit));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, out, async () => {
      const shown = await onSubmit();
      form.reset();
      render(out, shown || notice('Done.', 'ok'));
    });
  });
  return h('section', { class: 'card' }, h('h2', {}, titleText), form, out);
}

// --- Users ---------------------------------------------------------------

export function usersPage() {
  return adminPage('Users', {
    load: async (refresh, status) => {
      const users = await get('/api/v1/users');
      return table('Users', [
        { label: 'User', cell: (u) => h('strong', {}, u.username) },
        { label: 'Role', cell: (u) => u.role },
        { label: 'Groups', cell: (u) => u.groups.join(', ') || '—' },
        { label: 'MFA', cell: (u) => (u.mfa_enabled ? 'on' : 'off') },
        { label: 'Locked until', cell: (u) => fmtTime(u.locked_until) },
        { label: 'Created', cell: (u) => fmtTime(u.created_at) },
        {
          label: 'Actions',
          cell: (u) =>
            h('span', { class: 'actions' },
              u.locked_until ? actionButton('Unlock', '', status, null, async () => { await post(`/api/v1/users/${seg(u.username)}/unlock`); await refresh(); }) : null,
              u.mfa_enabled ? actionButton('Reset MFA', '', status, `Remove ${u.username}'s authenticator?`, async () => { await del(`/api/v1/users/${seg(u.username)}/mfa`); await refresh(); }) : null,
              actionButton('Sign out everywhere', '', status, `Revoke all of ${u.username}'s sessions?`, async () => { await post(`/api/v1/users/${seg(u.username)}/revoke-sessions`); render(status, notice(`${u.username}'s sessions were revoked.`, 'ok')); }),
              u.username === ctx.me.username ? null : actionButton('Delete', 'danger', status, `Delete user ${u.username}?`, async () => { await del(`/api/v1/users/${seg(u.username)}`); await refresh(); })),
        },
      ], users);
    },
    form: (refresh) => {
      const name = h('input', { required: true, autocomplete: 'off' });
      const pw = h('input', { type: 'password', required: true, autocomplete: 'new-password' });
      const role = h('input', { required: true, value: 'technician' });
      const groups = h('input', { placeholder: 'web, db' });
      const email = h('input', { type: 'email' });
      return createForm('Create a user', [field('User name', name), field('Initial password', pw), field('Role', role), field('Groups', groups, 'Comma-separated.'), field('E-mail', email)], 'Create user', async () => {
        await post('/api/v1/users', { username: name.value.trim(), password: pw.value, role: role.value.trim(), groups: list(groups.value), email: email.value.trim() || undefined });
        await refresh();
        return notice(`User ${name.value.trim()} created.`, 'ok');
      });
    },
  });
}

// --- Roles ---------------------------------------------------------------

export function rolesPage() {
  return adminPage('Roles', {
    load: async (refresh, status) => {
      const roles = await get('/api/v1/roles');
      return table('Roles', [
        { label: 'Role', cell: (r) => h('strong', {}, r.name) },
        { label: 'Description', cell: (r) => r.description || '—' },
        { label: 'Permissions', cell: (r) => r.permissions.join(', ') },
        { label: 'Built in', cell: (r) => (r.builtin ? 'yes' : 'no') },
        {
          label: 'Actions',
          cell: (r) => (r.builtin ? '—' : actionButton('Delete', 'danger', status, `Delete role ${r.name}?`, async () => { await del(`/api/v1/roles/${seg(r.name)}`); await refresh(); })),
        },
      ], roles);
    },
    form: (refresh) => {
      const name = h('input', { required: true });
      const desc = h('input', {});
      const boxes = PERMISSIONS.map((p) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: p }), ` ${p}`));
      const perms = h('fieldset', {}, h('legend', {}, 'Permissions'), boxes);
      return createForm('Create a role', [field('Name', name), field('Description', desc), perms], 'Create role', async () => {
        const permissions = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
        await post('/api/v1/roles', { name: name.value.trim(), description: desc.value.trim(), permissions });
        await refresh();
        return notice(`Role ${name.value.trim()} created.`, 'ok');
      });
    },
  });
}

// --- Groups --------------------------------------------------------------

/** Desktop consent modes of an endpoint group (the API's `consent`). */
const CONSENT = [
  ['prompt', 'Ask the user (Allow / Deny, denied after 30 s)'],
  ['notify', 'Notify the user (no question; indicator shown)'],
  ['none', 'Unattended (no question, no indicator; audited)'],
];

function consentSelect(value, label) {
  return h('select', { 'aria-label': label }, CONSENT.map(([v, text]) => h('option', { value: v, selected: v === (value || 'prompt') }, text)));
}

export function groupsPage() {
  return adminPage('Groups', {
    load: async (refresh, status) => {
      const [groups, endpoints] = await Promise.all([get('/api/v1/groups'), get('/api/v1/endpoints')]);
      const move = (e) => {
        const sel = h('select', { 'aria-label': `Group of ${e.name}` }, groups.map((g) => h('option', { value: g.name, selected: g.name === e.group }, g.name)));
        sel.addEventListener('change', () =>
          busy(sel, status, async () => {
            await patchGroup(e.name, sel.value);
            render(status, notice(`${e.name} moved to ${sel.value}.`, 'ok'));
            await refresh();
          }),
        );
        return sel;
      };
      return h('div', {},
        table('Groups', [
          { label: 'Group', cell: (g) => h('strong', {}, g.name) },
          { label: 'Description', cell: (g) => g.description || '—' },
          { label: 'Endpoints', cell: (g) => String(g.endpoints) },
          {
            label: 'Desktop consent',
            cell: (g) => {
              const sel = consentSelect(g.consent, `Desktop consent of ${g.name}`);
              sel.dataset.group = g.name;
              sel.addEventListener('change', () =>
                busy(sel, status, async () => {
                  await patch(`/api/v1/groups/${seg(g.name)}`, { consent: sel.value });
                  render(status, notice(`Desktop sessions on ${g.name} now: ${sel.selectedOptions[0].textContent}.`, 'ok'));
                  await refresh();
                }),
              );
              return sel;
            },
          },
          { label: 'Actions', cell: (g) => actionButton('Delete', 'danger', status, `Delete group ${g.name}?`, async () => { await del(`/api/v1/groups/${seg(g.name)}`); await refresh(); }) },
        ], groups),
        h('h2', {}, 'Endpoint membership'),
        table('Endpoint groups', [
          { label: 'Endpoint', cell: (e) => e.name },
          { label: 'Group', cell: move },
          { label: 'Remove', cell: (e) => actionButton('Remove endpoint', 'danger', status, `Remove endpoint ${e.name}? Its agent must enroll again.`, async () => { await del(`/api/v1/endpoints/${seg(e.name)}`); await refresh(); }) },
        ], endpoints, 'No endpoint is enrolled yet.'));
    },
    form: (refresh) => {
      const name = h('input', { required: true });
      const desc = h('input', {});
      const consent = consentSelect('prompt');
      consent.removeAttribute('aria-label');
      consent.id = 'group-consent';
      return createForm('Create a group', [field('Name', name), field('Description', desc), field('Desktop consent', consent, 'How the person at an endpoint of this group takes part in desktop sessions.')], 'Create group', async () => {
        await post('/api/v1/groups', { name: name.value.trim(), description: desc.value.trim(), consent: consent.value });
        await refresh();
        return notice(`Group ${name.value.trim()} created.`, 'ok');
      });
    },
  });
}

function patchGroup(endpoint, group) {
  return put(`/api/v1/endpoints/${seg(endpoint)}/group`, { group });
}

// --- API clients ---------------------------------------------------------

function secretBox(label, value) {
  return h('div', { class: 'notice ok', role: 'status' }, h('p', {}, `${label} — shown once, copy it now:`), h('code', { class: 'secret' }, value));
}

export function apiClientsPage() {
  return adminPage('API clients', {
    load: async (refresh, status) => {
      const clients = await get('/api/v1/api-clients');
      return table('API clients', [
        { label: 'Name', cell: (c) => h('strong', {}, c.name) },
        { label: 'Client id', cell: (c) => h('code', {}, c.client_id) },
        { label: 'Role', cell: (c) => c.role },
        { label: 'Scopes', cell: (c) => c.scopes.join(', ') },
        { label: 'Groups', cell: (c) => c.groups.join(', ') || '—' },
        { label: 'Secret rotated', cell: (c) => fmtTime(c.secret_rotated_at) },
        {
          label: 'Actions',
          cell: (c) =>
            h('span', { class: 'actions' },
              actionButton('Rotate secret', '', status, `Rotate ${c.name}'s secret? The old one stops working.`, async () => {
                const s = await post(`/api/v1/api-clients/${seg(c.name)}/rotate`);
                render(status, secretBox(`New secret of ${c.name}`, s.client_secret));
              }),
              actionButton('Delete', 'danger', status, `Delete API client ${c.name}?`, async () => { await del(`/api/v1/api-clients/${seg(c.name)}`); await refresh(); })),
        },
      ], clients);
    },
    form: (refresh) => {
      const name = h('input', { required: true });
      const role = h('input', { required: true, value: 'auditor' });
      const scopes = h('input', { required: true, value: 'read' });
      const groups = h('input', { placeholder: 'web, db' });
      return createForm('Create an API client', [field('Name', name), field('Role', role), field('Scopes', scopes, 'read, write'), field('Groups', groups, 'Comma-separated.')], 'Create client', async () => {
        const s = await post('/api/v1/api-clients', { name: name.value.trim(), role: role.value.trim(), scopes: list(scopes.value), groups: list(groups.value) });
        await refresh();
        return h('div', {}, h('p', {}, `Client id: ${s.client_id}`), secretBox('Client secret', s.client_secret));
      });
    },
  });
}

// --- Enrollment tokens ---------------------------------------------------

export function enrollTokensPage() {
  return adminPage('Enrollment tokens', {
    load: async () =>
      h('p', {}, 'An enrollment token lets one new agent join the site (see the README: ', h('code', {}, 'jumpgate agent --enroll-token …'), '). Tokens are shown once and expire.'),
    form: () => {
      const group = h('input', { placeholder: 'default' });
      const ttl = h('input', { value: '1h' });
      return createForm('Create an enrollment token', [field('Group', group), field('Valid for', ttl, 'e.g. 30m, 1h, 1d')], 'Create token', async () => {
        const t = await post('/api/v1/enroll-tokens', { group: group.value.trim() || undefined, ttl: ttl.value.trim() || undefined });
        return h('div', {}, secretBox(`Token for group ${t.group}, valid until ${fmtTime(t.expires_at)}`, t.token));
      });
    },
  });
}


