// The console's shell: who is signed in, the navigation, and hash routes
// (`#/endpoints`, `#/terminal/NAME`…; never a secret in a URL).

import { get, post, setCsrf, ApiError } from './api.js';
import { h, render, errorBox } from './ui.js';
import * as pages from './pages.js';
import * as admin from './admin.js';
import { PERMISSION as P } from './contract.js';
import { terminalPage, watchTerminalPage } from './terminal.js';
import { filesPage } from './terminal.js';
import { playerPage } from './player.js';
import { desktopPage, watchDesktopPage } from './desktop.js';
import { supportPage, supportSessionPage, supportHistoryPage } from './support.js';
import { epmPolicyPage, epmRequestsPage, epmEventsPage } from './epm.js';
import { packagesPage, inventoryPage } from './packages.js';
import { reportsPage } from './reports.js';
import { targetsPage } from './targets.js';
import { accessPage } from './access.js';
import { alertsPage } from './alerts.js';
import { webhooksPage } from './webhooks.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const nav = document.getElementById('nav');

/** The signed-in user (`/api/v1/me`), or null. */
export const ctx = { me: null, cleanup: [] };

export function can(permission) {
  return !!ctx.me && ctx.me.permissions.includes(permission);
}

const NAV = [
  { href: '#/endpoints', label: 'Endpoints', perm: P.VIEW },
  { href: '#/support', label: 'Support', perm: P.SUPPORT },
  { href: '#/epm', label: 'Privilege', perm: P.EPM_MANAGE },
  { href: '#/epm/requests', label: 'Elevation requests', perm: P.EPM_APPROVE },
  { href: '#/packages', label: 'Packages', perm: P.EPM_MANAGE },
  { href: '#/targets', label: 'Targets', perm: P.VIEW },
  { href: '#/inventory', label: 'Inventory', perm: P.VIEW },
  // Access requests: anyone who sees endpoints asks; approvers decide.
  { href: '#/access', label: 'Access requests', perm: P.VIEW },
  { href: '#/sessions', label: 'Sessions', perm: P.VIEW_AUDIT },
  { href: '#/recordings', label: 'Recordings', perm: P.VIEW_AUDIT },
  // Reports: `reports-read`, or `view-audit`, which implies it.
  { href: '#/reports', label: 'Reports', perm: [P.REPORTS_READ, P.VIEW_AUDIT] },
  { href: '#/admin/users', label: 'Users', perm: P.MANAGE_USERS },
  { href: '#/admin/roles', label: 'Roles', perm: P.MANAGE_USERS },
  { href: '#/admin/groups', label: 'Groups', perm: P.MANAGE_ENDPOINTS },
  { href: '#/admin/api-clients', label: 'API clients', perm: P.MANAGE_USERS },
  { href: '#/admin/enroll-tokens', label: 'Enrollment', perm: P.MANAGE_ENDPOINTS },
  { href: '#/admin/queues', label: 'Queues', perm: P.MANAGE_ENDPOINTS },
  { href: '#/admin/portal', label: 'Portal', perm: P.MANAGE_USERS },
  { href: '#/admin/alerts', label: 'Alerts', perm: P.MANAGE_ALERTS },
  { href: '#/admin/webhooks', label: 'Webhooks', perm: P.MANAGE_WEBHOOKS },
  { href: '#/account', label: 'Account', perm: null },
];

function drawNav() {
  const restricted = ctx.me.mfa_enrollment_required || ctx.me.password_change_required;
  const allowed = (perm) => (Array.isArray(perm) ? perm.some((p) => can(p)) : can(perm));
  const items = NAV.filter((n) => (restricted ? n.perm === null : n.perm === null || allowed(n.perm)));
  const here = location.hash.split('/').slice(0, 3).join('/');
  render(
    nav,
    h(
      'ul',
      {},
      items.map((n) =>
        h('li', {}, h('a', { href: n.href, 'aria-current': here.startsWith(n.href) ? 'page' : null }, n.label)),
      ),
    ),
  );
  document.getElementById('whoami').textContent = `${ctx.me.username} (${ctx.me.role})`;
  top.hidden = false;
}

/** Loads who is signed in; false when nobody is. */
export async function loadMe() {
  try {
    const s = await get('/api/v1/auth/session');
    setCsrf(s.csrf_token);
    ctx.me = await get('/api/v1/me');
    return true;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 400)) {
      ctx.me = null;
      return false;
    }
    throw e;
  }
}

function signedOut() {
  ctx.me = null;
  setCsrf(null);
  top.hidden = true;
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
  else route();
}

window.addEventListener('jg-unauthenticated', () => {
  if (ctx.me) signedOut();
});

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await post('/api/v1/auth/logout');
  } catch {
    /* the session may already be gone */
  }
  signedOut();
});

document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

const routes = [
  [/^#\/login$/, () => pages.loginPage()],
  [/^#\/account$/, () => pages.accountPage()],
  [/^#\/endpoints$/, () => pages.endpointsPage()],
  [/^#\/terminal\/([^/]+)$/, (m) => terminalPage(decodeURIComponent(m[1]))],
  [/^#\/files\/([^/]+)$/, (m) => filesPage(decodeURIComponent(m[1]))],
  [/^#\/desktop\/([^/]+)$/, (m) => desktopPage(decodeURIComponent(m[1]))],
  [/^#\/support$/, () => supportPage()],
  [/^#\/support\/history$/, () => supportHistoryPage()],
  [/^#\/support\/([^/]+)$/, (m) => supportSessionPage(decodeURIComponent(m[1]))],
  [/^#\/epm$/, () => epmPolicyPage()],
  [/^#\/epm\/requests$/, () => epmRequestsPage()],
  [/^#\/epm\/events$/, () => epmEventsPage()],
  [/^#\/packages$/, () => packagesPage()],
  [/^#\/inventory$/, () => inventoryPage()],
  [/^#\/targets$/, () => targetsPage()],
  [/^#\/sessions$/, () => pages.sessionsPage()],
  // Someone's live session, watched (`/drive`: a support participant, with input).
  [/^#\/watch\/desktop\/([^/]+)(\/drive)?$/, (m) => watchDesktopPage(decodeURIComponent(m[1]), !!m[2])],
  [/^#\/watch\/terminal\/([^/]+)$/, (m) => watchTerminalPage(decodeURIComponent(m[1]))],
  [/^#\/recordings$/, () => pages.recordingsPage()],
  [/^#\/reports$/, () => reportsPage()],
  [/^#\/access$/, () => accessPage()],
  // `?t=SECONDS`: the player opens at that moment (a search hit).
  [/^#\/recordings\/([^/?]+)(?:\?t=([0-9.e+-]+))?$/, (m) => playerPage(decodeURIComponent(m[1]), Number(m[2]) || 0)],
  [/^#\/admin\/users$/, () => admin.usersPage()],
  [/^#\/admin\/roles$/, () => admin.rolesPage()],
  [/^#\/admin\/groups$/, () => admin.groupsPage()],
  [/^#\/admin\/api-clients$/, () => admin.apiClientsPage()],
  [/^#\/admin\/enroll-tokens$/, () => admin.enrollTokensPage()],
  [/^#\/admin\/queues$/, () => admin.queuesPage()],
  [/^#\/admin\/portal$/, () => admin.portalPage()],
  [/^#\/admin\/alerts$/, () => alertsPage()],
  [/^#\/admin\/webhooks$/, () => webhooksPage()],
];

/** Registers something to undo when the page changes (timers, sockets). */
export function onLeave(fn) {
  ctx.cleanup.push(fn);
}

export async function route() {
  // In-page anchors (`#main`) are not pages.
  if (location.hash && !location.hash.startsWith('#/')) return;
  for (const fn of ctx.cleanup.splice(0)) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
  const hash = location.hash || '#/endpoints';
  if (!ctx.me && hash !== '#/login') {
    location.hash = '#/login';
    return;
  }
  if (ctx.me) {
    const restricted = ctx.me.mfa_enrollment_required || ctx.me.password_change_required;
    if (restricted && hash !== '#/account') {
      location.hash = '#/account';
      return;
    }
    if (hash === '#/login') {
      location.hash = '#/endpoints';
      return;
    }
    drawNav();
  }
  const found = routes.find(([re]) => re.test(hash));
  try {
    if (!found) {
      render(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'There is no such page. ', h('a', { href: '#/endpoints' }, 'Go to endpoints')));
    } else {
      await found[1](hash.match(found[0]));
    }
  } catch (e) {
    render(main, errorBox(e));
  }
  const title = main.querySelector('h1');
  if (title) {
    document.title = `${title.textContent} — Jumpgate`;
    // Keyboard and screen-reader users land on the new page, unless the
    // page put the focus somewhere useful itself (a form's first field).
    const active = document.activeElement;
    if (!active || active === document.body || !main.contains(active)) title.focus();
  }
}

export { main };

window.addEventListener('hashchange', route);

(async () => {
  try {
    await loadMe();
  } catch (e) {
    render(main, errorBox(e));
    return;
  }
  if (!location.hash || location.hash === '#') location.hash = ctx.me ? '#/endpoints' : '#/login';
  else route();
})();
