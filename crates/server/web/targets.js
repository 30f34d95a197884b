// Agentless targets reached through jump points (`/api/v1/targets`), and
// the caller's SSH front-door details. A target's credential is only ever
// named here (the vault secret): its value reaches the jump point inside
// the gateway's connection to it, never this page.

import { get, post, del, seg } from './api.js';
import { h, render, table, field, fmtTime, busy, notice, showError, actionButton } from './ui.js';
import { can } from './app.js';
import { adminPage, createForm } from './admin.js';
import { PERMISSION as P } from './contract.js';

function address(t) {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.kind} ${host}:${t.port}`;
}

function hostKey(t) {
  if (t.kind !== 'ssh') return '—';
  if (t.host_key_fingerprint) return h('code', { class: 'fingerprint' }, t.host_key_fingerprint);
  return t.trust_on_first_use ? 'pinned at first use' : '—';
}

export function targetsPage() {
  return adminPage('Targets', {
    load: async (refresh, status) => {
      const targets = await get('/api/v1/targets');
      return [
        h('p', {}, 'Hosts without an agent, reached through a jump point. Sessions on them are authorized, audited and recorded like any endpoint\'s; the account\'s secret is injected by the jump point and never shown.'),
        table(
          'Targets',
          [
            { label: 'Name', cell: (t) => h('strong', {}, t.name) },
            { label: 'Group', cell: (t) => t.group },
            { label: 'Address', cell: (t) => address(t) },
            { label: 'Via', cell: (t) => t.via },
            { label: 'Account', cell: (t) => (t.user ? `${t.user} (${t.credential})` : '—') },
            { label: 'Host key', cell: (t) => hostKey(t) },
            { label: 'Rotation', cell: (t) => (t.rotate_after_use ? 'after each use' : '—') },
            { label: 'Added', cell: (t) => fmtTime(t.created_at) },
            {
              label: 'Actions',
              cell: (t) =>
                h('span', { class: 'actions' },
                  t.kind === 'ssh' && can(P.SHELL) ? h('a', { href: `#/terminal/${seg(t.name)}`, class: 'button', 'data-terminal': t.name }, 'Terminal') : null,
                  t.kind === 'ssh' && can(P.FILES) ? h('a', { href: `#/files/${seg(t.name)}`, class: 'button' }, 'Files') : null,
                  can(P.MANAGE_ENDPOINTS)
                    ? actionButton('Remove', 'danger', status, `Remove the target ${t.name}? Sessions open on it end.`, async () => {
                        await del(`/api/v1/targets/${seg(t.name)}`);
                        await refresh();
                      })
                    : null),
            },
          ],
          targets,
          'No target yet.',
        ),
      ];
    },
    form: can(P.MANAGE_ENDPOINTS) ? addTargetForm : null,
  });
}

function addTargetForm(refresh) {
  const name = h('input', { name: 'name', required: true, autocapitalize: 'none', maxlength: 64 });
  const group = h('input', { name: 'group', placeholder: 'default', autocapitalize: 'none' });
  const via = h('input', { name: 'via', required: true, autocapitalize: 'none', list: 'jump-points' });
  const viaList = h('datalist', { id: 'jump-points' });
  const kind = h('select', { name: 'kind' }, h('option', { value: 'ssh' }, 'SSH'), h('option', { value: 'tcp' }, 'TCP (database, other protocols)'));
  const addr = h('input', { name: 'address', required: true, autocapitalize: 'none', placeholder: 'host or host:port' });
  const user = h('input', { name: 'user', autocapitalize: 'none' });
  const credential = h('input', { name: 'credential', autocapitalize: 'none' });
  const pin = h('select', { name: 'pin' }, h('option', { value: 'key' }, 'Pin this host key'), h('option', { value: 'tofu' }, 'Trust the key seen at first use'));
  const key = h('input', { name: 'host_key', autocapitalize: 'none', placeholder: 'ssh-ed25519 AAAA… (as in ssh-keyscan)' });
  const rotate = h('input', { name: 'rotate', type: 'checkbox' });
  const sshOnly = [
    field('Account', user, 'The user name on the target.'),
    field('Credential', credential, 'The vault secret holding its password or private key. Technicians never see it.'),
    field('Host key', pin),
    field('Host key (pinned)', key),
    h('div', { class: 'field' }, h('label', {}, rotate, ' Set a new random password after each session')),
  ];
  const showFields = () => {
    for (const f of sshOnly) f.hidden = kind.value !== 'ssh';
    key.closest('.field').hidden = kind.value !== 'ssh' || pin.value !== 'key';
    user.required = credential.required = kind.value === 'ssh';
  };
  kind.addEventListener('input', showFields);
  pin.addEventListener('input', showFields);
  get('/api/v1/endpoints')
    .then((eps) => render(viaList, eps.map((e) => h('option', { value: e.name }))))
    .catch(() => {});
  const section = createForm(
    'Add a target',
    [
      field('Name', name, 'What technicians type: jg shell NAME, ssh USER+NAME@gateway.'),
      field('Group', group, 'The endpoint group whose rights apply.'),
      field('Jump point', via, 'An endpoint marked as a jump point (jg endpoints jump-point NAME on) whose agent runs with --jump-point.'),
      viaList,
      field('Kind', kind),
      field('Address', addr),
      ...sshOnly,
    ],
    'Add target',
    async () => {
      const body = { name: name.value.trim(), via: via.value.trim() };
      if (group.value.trim()) body.group = group.value.trim();
      if (kind.value === 'ssh') {
        body.ssh = addr.value.trim();
        body.user = user.value.trim();
        body.credential = credential.value.trim();
        if (pin.value === 'tofu') body.trust_on_first_use = true;
        else if (key.value.trim()) body.host_key = key.value.trim();
        body.rotate_after_use = rotate.checked;
      } else {
        body.tcp = addr.value.trim();
      }
      const t = await post('/api/v1/targets', body);
      await refresh();
      setTimeout(showFields);
      return notice(`Target ${t.name} added (${address(t)} via ${t.via}).`, 'ok');
    },
  );
  showFields();
  return section;
}

// --- The caller's SSH keys (on the Account page) ---------------------------

/** The Account page's SSH section: the front door's address and host key,
 * and the caller's public keys. */
export function sshKeysSection() {
  const status = h('div', { 'aria-live': 'polite' });
  const door = h('div', {});
  const list = h('div', {});
  const load = async () => {
    try {
      const [keys, host] = await Promise.all([get('/api/v1/ssh-keys'), get('/api/v1/ssh/host-key')]);
      render(
        door,
        host.port
          ? h('p', {}, 'Connect with any SSH client: ', h('code', {}, `ssh -p ${host.port} USER+ENDPOINT@${location.hostname}`), ', or ', h('code', {}, 'jg ssh-config'), ' for plain ', h('code', {}, 'ssh ENDPOINT'), '. The gateway\'s host key: ', h('code', { class: 'fingerprint', id: 'ssh-host-fingerprint' }, host.fingerprint), '.')
          : h('p', {}, 'The SSH front door is off on this site ([ssh] listen). Keys added here work once it is on.'),
      );
      render(
        list,
        table(
          'SSH keys',
          [
            { label: 'Fingerprint', cell: (k) => h('code', { class: 'fingerprint' }, k.fingerprint) },
            { label: 'Type', cell: (k) => k.algorithm },
            { label: 'Comment', cell: (k) => k.comment || '—' },
            { label: 'Added', cell: (k) => fmtTime(k.created_at) },
            { label: 'Last used', cell: (k) => fmtTime(k.last_used_at) },
            {
              label: 'Actions',
              cell: (k) =>
                actionButton('Remove', 'danger', status, `Remove the key ${k.fingerprint}?`, async () => {
                  await del(`/api/v1/ssh-keys/${seg(k.id)}`);
                  await load();
                }),
            },
          ],
          keys,
          'No SSH key yet.',
        ),
      );
    } catch (e) {
      showError(status, e);
    }
  };
  const key = h('textarea', { name: 'public_key', rows: 3, required: true, spellcheck: false, placeholder: 'ssh-ed25519 AAAA… you@laptop (the .pub file: never the private key)' });
  const submit = h('button', { type: 'submit' }, 'Add key');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', {}, field('Public key', key), out, submit);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, out, async () => {
      const k = await post('/api/v1/ssh-keys', { public_key: key.value.trim() });
      key.value = '';
      render(out, notice(`Key ${k.fingerprint} added.`, 'ok'));
      await load();
    });
  });
  load();
  return h('section', { class: 'card', 'aria-labelledby': 'ssh-title' }, h('h2', { id: 'ssh-title' }, 'SSH'), door, status, list, form);
}
