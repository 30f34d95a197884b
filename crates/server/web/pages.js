// Login, account (password, MFA enrollment), endpoints, sessions and the
// recordings list.

import { get, post, setCsrf, seg, ApiError } from './api.js';
import { h, render, showError, heading, table, field, fmtTime, fmtBytes, busy, notice } from './ui.js';
import { ctx, main, can, loadMe, onLeave } from './app.js';
import { ERROR, PERMISSION as P } from './contract.js';
import { recordingSearch } from './recording-search.js';
import { sshKeysSection } from './targets.js';

const REFRESH_MS = 3000;

// --- Login ---------------------------------------------------------------

export function loginPage() {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const totp = h('input', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', 'aria-describedby': 'totp-hint' });
  const totpField = field('Authentication code', totp, 'The 6-digit code from your authenticator app, or a recovery code.');
  totpField.hidden = true;
  const status = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'login-title' }, user && field('User name', user), field('Password', pass), totpField, status, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(submit, status, async () => {
      const body = { username: user.value.trim(), password: pass.value, cookie: true };
      if (!totpField.hidden && totp.value.trim()) body.totp = totp.value.trim();
      try {
        const res = await post('/api/v1/auth/login', body);
        setCsrf(res.csrf_token);
      } catch (e) {
        if (e instanceof ApiError && e.code === ERROR.MFA_REQUIRED) {
          const first = totpField.hidden;
          totpField.hidden = false;
          totp.focus();
          if (first) {
            render(status, notice('Enter the code from your authenticator app.'));
            return;
          }
          throw new ApiError(401, e.code, 'That code was not accepted. Wait for the next code and try again.');
        }
        throw e;
      }
      pass.value = '';
      totp.value = '';
      await loadMe();
      location.hash = ctx.me.mfa_enrollment_required || ctx.me.password_change_required ? '#/account' : '#/endpoints';
    });
  });
  render(main, h('h1', { id: 'login-title', tabindex: '-1', class: 'page-title' }, 'Log in to Jumpgate'), form);
  user.focus();
}

// --- Account -------------------------------------------------------------

export function accountPage() {
  const me = ctx.me;
  const parts = [heading('Account')];
  if (me.password_change_required) {
    parts.push(notice('Your password has expired. Choose a new one to continue.', 'warn'));
  } else if (me.mfa_enrollment_required) {
    parts.push(notice('This site requires two-factor authentication for your role. Set up an authenticator app to continue.', 'warn'));
  }
  const groups = me.groups.includes('*') ? 'all' : me.groups.join(', ') || 'none';
  parts.push(h('p', {}, `Signed in as ${me.username}, role ${me.role}, endpoint groups: ${groups}.`));
  parts.push(mfaSection(me), passwordSection());
  // Not while the account must first change its password or set up MFA.
  if (!me.password_change_required && !me.mfa_enrollment_required) parts.push(sshKeysSection());
  render(main, ...parts);
}

function mfaSection(me) {
  const slot = h('div', {});
  const status = h('div', { 'aria-live': 'polite' });
  const section = h('section', { class: 'card', 'aria-labelledby': 'mfa-title' }, h('h2', { id: 'mfa-title' }, 'Two-factor authentication'), status, slot);
  if (me.mfa_enabled) {
    render(slot, h('p', {}, 'An authenticator app is set up for your account.'));
    return section;
  }
  const start = h('button', { type: 'button', class: 'primary' }, 'Set up an authenticator app');
  start.addEventListener('click', () =>
    busy(start, status, async () => {
      const e = await post('/api/v1/me/mfa/totp');
      const qr = qrCode(e.qr_svg);
      const code = h('input', { inputmode: 'numeric', autocomplete: 'one-time-code', required: true, maxlength: 6, pattern: '[0-9]{6}' });
      const confirm = h('button', { type: 'submit', class: 'primary' }, 'Confirm');
      const form = h('form', {}, field('Code shown by the app', code), confirm);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        busy(confirm, status, async () => {
          const r = await post('/api/v1/me/mfa/totp/confirm', { code: code.value.trim() });
          await loadMe();
          render(
            slot,
            notice('Two-factor authentication is on.', 'ok'),
            h('p', {}, 'Keep these recovery codes somewhere safe; each works once if you lose your device:'),
            h('ol', { class: 'codes', id: 'recovery-codes' }, r.codes.map((c) => h('li', {}, h('code', {}, c)))),
            h('a', { href: '#/endpoints', class: 'button' }, 'Continue'),
          );
        });
      });
      render(
        slot,
        h('ol', { class: 'steps' },
          h('li', {}, 'Scan this QR code with your authenticator app:', h('div', {}, qr)),
          h('li', {}, 'Or enter this secret by hand: ', h('code', { id: 'totp-secret', class: 'secret' }, e.secret)),
          h('li', {}, 'Type the 6-digit code the app shows:', form)),
      );
      code.focus();
    }),
  );
  render(slot, h('p', {}, 'Protect your account with a time-based code from an authenticator app.'), start);
  return section;
}

/**
 * The gateway's QR code SVG as a DOM node: parsed as SVG (never as HTML),
 * so the secret it encodes never becomes a URL, even a data: one.
 */
function qrCode(svgText) {
  const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
  const root = doc.documentElement;
  if (root.nodeName !== 'svg' || doc.querySelector('parsererror')) {
    return h('p', {}, 'The QR code cannot be shown; enter the secret below by hand.');
  }
  const svg = document.importNode(root, true);
  svg.setAttribute('class', 'qr');
  svg.setAttribute('width', '200');
  svg.setAttribute('height', '200');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code to scan with your authenticator app');
  return svg;
}

function passwordSection() {
  const cur = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const status = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Change password');
  const form = h('form', {}, field('Current password', cur), field('New password', next), status, submit);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, status, async () => {
      await post('/api/v1/me/password', { current_password: cur.value, new_password: next.value });
      cur.value = '';
      next.value = '';
      render(status, notice('Password changed.', 'ok'));
      await loadMe();
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': 'pw-title' }, h('h2', { id: 'pw-title' }, 'Password'), form);
}

// --- Endpoints -----------------------------------------------------------

export async function endpointsPage() {
  const search = h('input', { type: 'search', placeholder: 'Name, host or OS', 'aria-controls': 'endpoint-list' });
  const group = h('select', {}, h('option', { value: '' }, 'All groups'));
  const state = h('select', {}, h('option', { value: '' }, 'Any status'), h('option', { value: 'online' }, 'Online'), h('option', { value: 'offline' }, 'Offline'), h('option', { value: 'conflict' }, 'In conflict'));
  const summary = h('p', { 'aria-live': 'polite', class: 'summary' });
  const list = h('div', { id: 'endpoint-list' });
  const status = h('div', {});
  let endpoints = [];
  let drawn = null;
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = endpoints.filter(
      (e) =>
        (!q || [e.name, e.hostname, e.os, e.arch].some((s) => (s || '').toLowerCase().includes(q))) &&
        (!group.value || e.group === group.value) &&
        (!state.value || (state.value === 'conflict' ? Boolean(e.conflict) : (state.value === 'online') === e.online)),
    );
    // Redraw only on a change: a refresh must not steal keyboard focus.
    const signature = JSON.stringify([rows, endpoints.length]);
    if (signature === drawn) return;
    drawn = signature;
    const online = endpoints.filter((e) => e.online).length;
    const conflicts = endpoints.filter((e) => e.conflict).length;
    summary.textContent = `${online} of ${endpoints.length} endpoints online; showing ${rows.length}.` +
      (conflicts ? ` ${conflicts} in identity conflict (a second agent with the same key was refused).` : '');
    render(
      list,
      table(
        'Endpoints',
        [
          { label: 'Name', cell: (e) => h('strong', {}, e.name) },
          {
            label: 'Status',
            cell: (e) => [
              h('span', { class: `status ${e.online ? 'online' : 'offline'}`, 'data-endpoint': e.name }, e.online ? 'online' : 'offline'),
              e.conflict
                ? h('span', {
                    class: 'status conflict',
                    'data-conflict': e.name,
                    title: `A second agent with this endpoint's identity was refused ${e.conflict.count} time(s), last from ${e.conflict.newcomer} at ${fmtTime(e.conflict.last_at)}. Its key exists twice: re-enroll the endpoint (jg admin endpoints reenroll ${e.name}).`,
                  }, 'conflict')
                : null,
            ],
          },
          { label: 'Group', cell: (e) => e.group },
          { label: 'OS', cell: (e) => `${e.os} ${e.arch}`.trim() },
          { label: 'Host', cell: (e) => e.hostname },
          { label: 'Last seen', cell: (e) => (e.online ? 'now' : fmtTime(e.last_seen)) },
          {
            label: 'Actions',
            cell: (e) =>
              h('span', { class: 'actions' },
                can(P.SHELL) && e.online ? h('a', { href: `#/terminal/${seg(e.name)}`, class: 'button' }, 'Terminal') : null,
                can(P.FILES) && e.online ? h('a', { href: `#/files/${seg(e.name)}`, class: 'button' }, 'Files') : null,
                can(P.DESKTOP_VIEW) && e.online ? h('a', { href: `#/desktop/${seg(e.name)}`, class: 'button' }, 'Desktop') : null),
          },
        ],
        rows,
        endpoints.length ? 'No endpoint matches the filter.' : 'No endpoint is enrolled yet.',
      ),
    );
  };
  const load = async () => {
    try {
      endpoints = await get('/api/v1/endpoints');
      showError(status, null);
      const groups = [...new Set(endpoints.map((e) => e.group))].sort();
      const have = [...group.options].map((o) => o.value);
      for (const g of groups) if (!have.includes(g)) group.appendChild(h('option', { value: g }, g));
      draw();
    } catch (e) {
      showError(status, e);
    }
  };
  for (const el of [search, group, state]) el.addEventListener('input', draw);
  render(
    main,
    heading('Endpoints'),
    h('div', { class: 'filters', role: 'search' }, field('Search', search), field('Group', group), field('Status', state)),
    summary,
    status,
    list,
  );
  await load();
  const timer = setInterval(load, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}

// --- Sessions ------------------------------------------------------------

export async function sessionsPage() {
  const status = h('div', { 'aria-live': 'polite' });
  const active = h('section', { 'aria-labelledby': 'active-title' });
  const past = h('section', { 'aria-labelledby': 'past-title' });
  let drawn = null;
  const load = async () => {
    let rows;
    try {
      rows = await get('/api/v1/sessions');
    } catch (e) {
      showError(status, e);
      return;
    }
    // Redraw only on a change: a refresh must not steal keyboard focus.
    const signature = JSON.stringify(rows);
    if (signature === drawn) return;
    drawn = signature;
    const live = rows.filter((r) => !r.ended_at);
    const ended = rows.filter((r) => r.ended_at);
    const common = [
      { label: 'User', cell: (r) => r.username },
      { label: 'Endpoint', cell: (r) => r.endpoint },
      { label: 'Kind', cell: (r) => r.kind },
      { label: 'Target', cell: (r) => r.target || '—' },
      { label: 'Started', cell: (r) => fmtTime(r.started_at) },
    ];
    render(
      active,
      h('h2', { id: 'active-title' }, `Active (${live.length})`),
      table('Active sessions', [
        ...common,
        {
          label: 'Actions',
          cell: (r) => {
            // Supervisors watch shells, commands and desktops (read-only).
            const kind = { shell: 'terminal', exec: 'terminal', desktop: 'desktop' }[r.kind];
            const watch = can(P.MONITOR_SESSIONS) && kind
              ? h('a', { class: 'button', href: `#/watch/${kind}/${seg(r.id)}`, dataset: { watch: r.id } }, 'Watch')
              : null;
            if (!can(P.MANAGE_ENDPOINTS)) return watch || '—';
            const b = h('button', { type: 'button', class: 'danger', dataset: { session: r.id } }, 'Terminate');
            b.addEventListener('click', () => {
              if (!window.confirm(`Terminate ${r.username}'s ${r.kind} session on ${r.endpoint}?`)) return;
              busy(b, status, async () => {
                await post(`/api/v1/sessions/${seg(r.id)}/terminate`);
                render(status, notice(`Session on ${r.endpoint} terminated.`, 'ok'));
                await load();
              });
            });
            return watch ? h('span', { class: 'actions' }, watch, b) : b;
          },
        },
      ], live, 'No session is active.'),
    );
    render(
      past,
      h('h2', { id: 'past-title' }, 'Past'),
      table('Past sessions', [
        ...common,
        { label: 'Ended', cell: (r) => fmtTime(r.ended_at) },
        { label: 'Traffic', cell: (r) => `${fmtBytes(r.bytes_up)} ↑ ${fmtBytes(r.bytes_down)} ↓` },
        { label: 'Outcome', cell: (r) => r.outcome },
      ], ended, 'No past session.'),
    );
  };
  render(main, heading('Sessions'), status, active, past);
  await load();
  const timer = setInterval(load, REFRESH_MS * 2);
  onLeave(() => clearInterval(timer));
}

// --- Recordings ----------------------------------------------------------

export async function recordingsPage() {
  const status = h('div', { 'aria-live': 'polite' });
  const user = h('input', { type: 'search', placeholder: 'any user' });
  const endpoint = h('input', { type: 'search', placeholder: 'any endpoint' });
  const apply = h('button', { type: 'submit' }, 'Filter');
  const list = h('div', {});
  const form = h('form', { class: 'filters', role: 'search' }, field('User', user), field('Endpoint', endpoint), apply);
  const load = async () => {
    const q = new URLSearchParams({ limit: '200' });
    if (user.value.trim()) q.set('user', user.value.trim());
    if (endpoint.value.trim()) q.set('endpoint', endpoint.value.trim());
    let rows;
    try {
      rows = await get(`/api/v1/recordings?${q}`);
      showError(status, null);
    } catch (e) {
      render(list);
      showError(status, e);
      return;
    }
    render(
      list,
      table('Recordings', [
        { label: 'User', cell: (r) => r.username },
        { label: 'Endpoint', cell: (r) => r.endpoint },
        { label: 'Kind', cell: (r) => r.kind || 'terminal' },
        { label: 'Started', cell: (r) => fmtTime(r.started_at) },
        { label: 'Duration', cell: (r) => `${Math.round(r.duration_secs)} s` },
        { label: 'Size', cell: (r) => `${r.width}×${r.height}` },
        { label: 'Input', cell: (r) => (r.input_recorded ? 'recorded' : 'not recorded') },
        { label: 'Replay', cell: (r) => h('a', { href: `#/recordings/${seg(r.id)}`, class: 'button' }, 'Play') },
      ], rows, 'No recording yet.'),
    );
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });
  render(main, heading('Recordings'), recordingSearch(), form, status, list);
  await load();
}
