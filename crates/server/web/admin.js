// Administration: users, roles, groups, API clients, enrollment tokens.
// Every call goes to the same API routes `jg` and `jumpgate admin` use, so
// the gateway's authorization decides, not this page.

import { get, post, put, patch, del, seg } from './api.js';
import { h, render, heading, table, field, fmtTime, busy, notice, showError, splitList as list, actionButton } from './ui.js';
import { main, ctx } from './app.js';
import { PERMISSIONS } from './contract.js';

/** A page: heading, a list refreshed by `load`, and a creation form. */
export async function adminPage(title, { load, form }) {
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

export function createForm(titleText, fields, submitLabel, onSubmit) {
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


// --- Support queues ------------------------------------------------------

/** Members' and groups' names for the queue forms (what the caller may list). */
async function queueChoices() {
  const [users, groups] = await Promise.all([
    get('/api/v1/users').catch(() => []),
    get('/api/v1/groups').catch(() => []),
  ]);
  return { users: users.map((u) => u.username), groups: groups.map((g) => g.name) };
}

function datalist(id, values) {
  return h('datalist', { id }, values.map((v) => h('option', { value: v })));
}

/** The fields of a queue (creation or editing), and how to read them back. */
function queueFields(q, choices) {
  const lists = q ? 'edit' : 'new';
  const description = h('input', { value: q ? q.description : '', maxlength: '200' });
  const group = h('input', { required: true, value: q ? q.group : 'default', list: `queue-groups-${lists}`, autocomplete: 'off' });
  const members = h('input', { value: q ? q.members.join(', ') : '', placeholder: 'tina, tom', list: `queue-users-${lists}`, autocomplete: 'off' });
  const maxWaiting = h('input', { type: 'number', min: '1', max: '10000', value: String(q ? q.max_waiting : 200) });
  const pub = h('input', { type: 'checkbox', checked: q ? q.public : true });
  const auto = h('input', { type: 'checkbox', checked: q ? q.auto_assign : false });
  // Defaults the creation form returns to after each queue it made.
  for (const el of [description, group, members, maxWaiting]) el.defaultValue = el.value;
  const fields = [
    field('Description', description, 'Shown to customers on the portal.'),
    field('Endpoint group', group, 'Its permissions decide who may handle the queue’s sessions.'),
    field('Members', members, 'Technicians, comma-separated.'),
    field('Most waiting', maxWaiting, 'Further requests are asked to try later.'),
    h('fieldset', {}, h('legend', {}, 'Options'),
      h('label', { class: 'check' }, pub, ' Offered on the portal’s request form'),
      h('label', { class: 'check' }, auto, ' Assign new customers to a member in turn')),
    datalist(`queue-groups-${lists}`, choices.groups),
    datalist(`queue-users-${lists}`, choices.users),
  ];
  const read = () => ({
    description: description.value.trim(),
    group: group.value.trim(),
    members: list(members.value),
    max_waiting: Number.parseInt(maxWaiting.value, 10) || undefined,
    public: pub.checked,
    auto_assign: auto.checked,
  });
  return { fields, read };
}

export async function queuesPage() {
  const choices = await queueChoices();
  const editSlot = h('div', {});
  const edit = (q, refresh, status) => {
    const { fields, read } = queueFields(q, choices);
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const out = h('div', { 'aria-live': 'polite' });
    const form = styled(h('form', { class: 'grid-form' }, fields, h('div', { class: 'actions' }, save, cancel)), { alignItems: 'start' });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(save, out, async () => {
        await patch(`/api/v1/queues/${seg(q.name)}`, read());
        render(editSlot);
        render(status, notice(`Queue ${q.name} saved.`, 'ok'));
        await refresh();
      });
    });
    cancel.addEventListener('click', () => render(editSlot));
    const card = h('section', { class: 'card', 'aria-labelledby': 'edit-queue-title' }, h('h2', { id: 'edit-queue-title', tabindex: '-1' }, `Edit queue ${q.name}`), form, out);
    render(editSlot, card);
    card.querySelector('h2').focus();
  };
  return adminPage('Support queues', {
    load: async (refresh, status) => {
      const queues = await get('/api/v1/queues');
      return h('div', {},
        h('p', { class: 'hint' }, 'Customers land in a queue from the portal’s request form or with a technician’s session key; its members see it live. ', h('a', { href: '/portal', target: '_blank', rel: 'noopener' }, 'Open the portal'), '.'),
        table('Support queues', [
          { label: 'Queue', cell: (q) => h('strong', { dataset: { queue: q.name } }, q.name) },
          { label: 'Description', cell: (q) => q.description || '—' },
          { label: 'Group', cell: (q) => q.group },
          { label: 'Members', cell: (q) => q.members.join(', ') || '—' },
          { label: 'Portal', cell: (q) => (q.public ? 'offered' : 'keys only') },
          { label: 'Auto-assign', cell: (q) => (q.auto_assign ? 'on' : 'off') },
          { label: 'Most waiting', cell: (q) => String(q.max_waiting) },
          {
            label: 'Actions',
            cell: (q) =>
              h('span', { class: 'actions' },
                actionButton('Edit', '', status, null, async () => edit(q, refresh, status)),
                actionButton('Delete', 'danger', status, `Delete queue ${q.name}?`, async () => {
                  await del(`/api/v1/queues/${seg(q.name)}`);
                  render(editSlot);
                  render(status, notice(`Queue ${q.name} deleted.`, 'ok'));
                  await refresh();
                })),
          },
        ], queues, 'No queue yet: create one below.'),
        editSlot);
    },
    form: (refresh) => {
      const name = h('input', { required: true, autocomplete: 'off', maxlength: '64' });
      const { fields, read } = queueFields(null, choices);
      const card = createForm('Create a queue', [field('Name', name), fields], 'Create queue', async () => {
        const q = await post('/api/v1/queues', { name: name.value.trim(), ...read() });
        await refresh();
        return notice(`Queue ${q.name} created.`, 'ok');
      });
      // Inputs in one line whatever the length of their hints.
      styled(card.querySelector('form'), { alignItems: 'start' });
      return card;
    },
  });
}

// --- Support portal branding --------------------------------------------

/** Styles set through the CSSOM (allowed by the CSP, unlike style attributes). */
function styled(el, props) {
  Object.assign(el.style, props);
  return el;
}

/** Largest logo the gateway takes (`support::portal::LOGO_MAX`). */
const LOGO_MAX = 64 * 1024;

function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Draws an image file on a canvas (no blob: or data: URL, which the CSP forbids). */
async function drawPreview(canvas, file) {
  const bmp = await createImageBitmap(file);
  const scale = Math.min(1, 240 / bmp.width, 80 / bmp.height);
  canvas.width = Math.max(1, Math.round(bmp.width * scale));
  canvas.height = Math.max(1, Math.round(bmp.height * scale));
  canvas.getContext('2d').drawImage(bmp, 0, 0, canvas.width, canvas.height);
  bmp.close();
}

export async function portalPage() {
  const s = await get('/api/v1/portal/settings');
  const status = h('div', { 'aria-live': 'polite', class: 'status' });
  const siteName = h('input', { required: true, maxlength: '80', value: s.site_name });
  const color = (v) => styled(h('input', { type: 'color', value: v, class: 'swatch' }), { width: '5rem', height: '2.4rem', padding: '2px' });
  const primary = color(s.colors.primary);
  const background = color(s.colors.background);
  const text = color(s.colors.text);
  const area = (v, rows = 3) =>
    styled(h('textarea', { rows: String(rows), maxlength: '2000' }, v || ''), { width: '100%', maxWidth: '44rem', font: 'inherit', padding: '.45rem .55rem', border: '1px solid #8c959f', borderRadius: '5px' });
  const welcome = area(s.texts.welcome);
  const keyHelp = area(s.texts.key_help, 2);
  const formHelp = area(s.texts.form_help, 2);
  const privacy = area(s.texts.privacy, 2);

  // Logo: the stored one (from the public route), a new one drawn on a canvas.
  let logo; // undefined: keep; '': remove; base64: new
  const logoBox = { maxHeight: '80px', maxWidth: '240px', border: '1px solid var(--line)', borderRadius: '6px', padding: '4px', background: '#fff' };
  const current = styled(h('img', { class: 'logo-preview', alt: 'Current logo', src: s.logo ? `/portal/logo?${Date.now()}` : null, hidden: !s.logo }), logoBox);
  const chosen = styled(h('canvas', { class: 'logo-preview', hidden: true, role: 'img', 'aria-label': 'New logo' }), logoBox);
  const none = h('span', { class: 'hint', hidden: !!s.logo }, 'No logo.');
  const file = h('input', { type: 'file', accept: 'image/png,image/jpeg' });
  const remove = h('button', { type: 'button', class: 'danger', hidden: !s.logo }, 'Remove logo');
  const logoStatus = h('div', { 'aria-live': 'polite' });
  file.addEventListener('change', async () => {
    render(logoStatus);
    const f = file.files[0];
    if (!f) return;
    if (!['image/png', 'image/jpeg'].includes(f.type)) {
      render(logoStatus, errorText('The logo must be a PNG or JPEG image.'));
      file.value = '';
      return;
    }
    if (f.size > LOGO_MAX) {
      render(logoStatus, errorText(`The logo is ${Math.ceil(f.size / 1024)} KiB; at most 64 KiB.`));
      file.value = '';
      return;
    }
    try {
      await drawPreview(chosen, f);
    } catch {
      render(logoStatus, errorText('This file is not an image the browser can show.'));
      file.value = '';
      return;
    }
    logo = base64(new Uint8Array(await f.arrayBuffer()));
    current.hidden = true;
    none.hidden = true;
    chosen.hidden = false;
    remove.hidden = false;
    render(logoStatus, notice('New logo chosen; save to publish it.', 'info'));
  });
  remove.addEventListener('click', () => {
    logo = '';
    file.value = '';
    current.hidden = true;
    chosen.hidden = true;
    none.hidden = false;
    remove.hidden = true;
    render(logoStatus, notice('The logo will be removed when you save.', 'info'));
  });

  // A small live preview in the chosen colours (CSSOM, not style attributes).
  const pvName = styled(h('span', { class: 'pv-name' }, s.site_name), { fontWeight: '700', fontSize: '1.05rem' });
  const pvBar = styled(h('div', { class: 'pv-bar' }, pvName), { padding: '.6rem .9rem' });
  const pvText = styled(h('p', {}, s.texts.welcome), { margin: '0 0 .75rem', whiteSpace: 'pre-line' });
  const pvButton = styled(h('span', { class: 'pv-button' }, 'Request help'), { display: 'inline-block', padding: '.4rem .9rem', borderRadius: '5px', fontWeight: '600' });
  const pvBody = styled(h('div', { class: 'pv-body' }, pvText, pvButton), { padding: '.9rem' });
  const preview = styled(h('div', { class: 'portal-preview', 'aria-hidden': 'true' }, pvBar, pvBody), { maxWidth: '30rem', border: '1px solid var(--line)', borderRadius: '8px', overflow: 'hidden' });
  const lum = (hex) => {
    const c = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const paint = () => {
    const on = 1.05 / (lum(primary.value) + 0.05) >= (lum(primary.value) + 0.05) / 0.05 ? '#ffffff' : '#111418';
    pvBar.style.background = primary.value;
    pvBar.style.color = on;
    pvButton.style.background = primary.value;
    pvButton.style.color = on;
    pvBody.style.background = background.value;
    pvBody.style.color = text.value;
    pvName.textContent = siteName.value || '—';
    pvText.textContent = welcome.value;
  };
  for (const el of [primary, background, text, siteName, welcome]) el.addEventListener('input', paint);
  paint();

  const save = h('button', { type: 'submit', class: 'primary' }, 'Save portal');
  const form = h('form', { class: 'portal-form' },
    h('section', { class: 'card' }, h('h2', {}, 'Name and colours'),
      field('Site name', siteName, 'Shown at the top of the portal and as the page title.'),
      styled(h('div', { class: 'swatches' }, field('Main colour', primary, 'Header and buttons.'), field('Background', background), field('Text', text)), { display: 'flex', flexWrap: 'wrap', gap: '0 2rem' }),
      h('h3', {}, 'Preview'), preview),
    h('section', { class: 'card' }, h('h2', {}, 'Logo'),
      styled(h('div', { class: 'logo-row' }, current, chosen, none), { margin: '0 0 .75rem' }),
      field('Upload a logo', file, 'PNG or JPEG, at most 64 KiB. Shown beside the site name.'),
      remove, logoStatus),
    h('section', { class: 'card' }, h('h2', {}, 'Texts'),
      field('Welcome', welcome, 'The first thing visitors read.'),
      field('Session key help', keyHelp, 'Beside the session key field.'),
      field('Request form help', formHelp, 'Above the “Describe your problem” form.'),
      field('Privacy note', privacy, 'At the bottom of the page; leave empty for none.')),
    h('div', { class: 'actions' }, save, h('a', { class: 'button', href: '/portal', target: '_blank', rel: 'noopener' }, 'Open the portal')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(save, status, async () => {
      const body = {
        site_name: siteName.value.trim(),
        colors: { primary: primary.value, background: background.value, text: text.value },
        texts: { welcome: welcome.value, key_help: keyHelp.value, form_help: formHelp.value, privacy: privacy.value },
      };
      if (logo !== undefined) body.logo = logo;
      const saved = await put('/api/v1/portal/settings', body);
      logo = undefined;
      file.value = '';
      render(status, notice('The portal is updated.', 'ok'));
      render(logoStatus);
      if (saved.logo) {
        current.src = `/portal/logo?${Date.now()}`;
        current.hidden = false;
        chosen.hidden = true;
        none.hidden = true;
        remove.hidden = false;
      }
      status.scrollIntoView({ block: 'nearest' });
    });
  });
  render(main, heading('Support portal'), h('p', { class: 'hint' }, 'What people without an account see when they ask for help: the site’s name, logo, colours and texts.'), status, form);
}

function errorText(text) {
  return h('div', { class: 'error', role: 'alert' }, text);
}
