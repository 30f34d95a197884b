// The Package Manager: upload Debian packages (checked by the gateway and
// stored in blob storage with a signed manifest), assign them to endpoint
// groups (install, pin a version, remove), see what each endpoint did with
// the installer's output; and the inventory: which endpoints run which
// package, e.g. openssl older than 3.0.11 (Debian version order).

import { get, put, del, seg, sendText } from './api.js';
import { h, render, heading, table, notice, busy, fmtTime, fmtBytes, field } from './ui.js';
import { main, can } from './app.js';
import { PERMISSION as P } from './contract.js';

function tabs(here) {
  const items = [
    ['#/packages', 'Packages', P.EPM_MANAGE],
    ['#/inventory', 'Inventory', null],
  ].filter(([, , perm]) => !perm || can(perm));
  return h('nav', { class: 'tabs', 'aria-label': 'Package Manager' },
    items.map(([href, label]) => h('a', { href, class: 'button', 'aria-current': href === here ? 'page' : null }, label)));
}

/** The outcome as a badge (failed/refused stand out). */
function outcome(o) {
  const bad = o === 'failed' || o === 'refused';
  return h('span', { class: bad ? 'status offline' : 'status online' }, o);
}

export async function packagesPage() {
  const status = h('div', { id: 'pkg-status', 'aria-live': 'polite' });
  const list = h('div', { id: 'pkg-list' });
  const assignments = h('div', { id: 'pkg-assignments' });
  const results = h('div', { id: 'pkg-results' });
  const packageSelect = h('select', { id: 'pkg-assign-package' });
  const groupSelect = h('select', { id: 'pkg-assign-group' });

  const draw = async () => {
    const [pkgs, assigned, done, groups] = await Promise.all([
      get('/api/v1/packages'),
      get('/api/v1/packages/assignments'),
      get('/api/v1/packages/status'),
      get('/api/v1/groups').catch(() => []),
    ]);
    render(list, table('Uploaded packages', [
      { label: 'Name', cell: (p) => p.name },
      { label: 'Version', cell: (p) => p.version },
      { label: 'Arch', cell: (p) => p.architecture },
      { label: 'Size', cell: (p) => fmtBytes(p.size) },
      { label: 'Publisher', cell: (p) => p.publisher || 'unsigned' },
      { label: 'SHA-256', cell: (p) => h('code', {}, p.sha256.slice(0, 16)) },
      { label: 'Uploaded', cell: (p) => `${fmtTime(p.uploaded_at)} by ${p.uploaded_by}` },
    ], pkgs, 'No package uploaded yet.'));
    const names = [...new Set(pkgs.map((p) => p.name))];
    const keep = packageSelect.value;
    render(packageSelect, names.map((n) => h('option', { value: n }, n)));
    if (names.includes(keep)) packageSelect.value = keep;
    const keepGroup = groupSelect.value;
    render(groupSelect, groups.map((g) => h('option', { value: g.name }, g.name)));
    if (groups.some((g) => g.name === keepGroup)) groupSelect.value = keepGroup;
    render(assignments, table('Assignments', [
      { label: 'Group', cell: (a) => a.group },
      { label: 'Package', cell: (a) => a.package },
      { label: 'Action', cell: (a) => a.action },
      { label: 'Version', cell: (a) => (a.action === 'install' ? a.version || 'newest' : '—') },
      { label: 'By', cell: (a) => `${a.updated_by}, ${fmtTime(a.updated_at)}` },
      { label: '', cell: (a) => {
        const b = h('button', { type: 'button', 'aria-label': `Forget ${a.package} for ${a.group}` }, 'Unassign');
        b.addEventListener('click', () => busy(b, status, async () => {
          await del(`/api/v1/packages/assignments/${seg(a.group)}/${seg(a.package)}`);
          await draw();
        }));
        return b;
      } },
    ], assigned, 'Nothing assigned.'));
    render(results, table('Endpoints', [
      { label: 'Endpoint', cell: (r) => r.endpoint },
      { label: 'Package', cell: (r) => r.package },
      { label: 'Action', cell: (r) => r.action },
      { label: 'Outcome', cell: (r) => outcome(r.outcome) },
      { label: 'Installed', cell: (r) => r.version || '—' },
      { label: 'Message', cell: (r) => r.message },
      { label: 'Installer output', cell: (r) => (r.output
        ? h('details', {}, h('summary', {}, 'Show'), h('pre', { class: 'code' }, r.output))
        : '—') },
      { label: 'When', cell: (r) => fmtTime(r.updated_at) },
    ], done, 'No endpoint has reported yet.'));
  };

  // Upload.
  const file = h('input', { type: 'file', id: 'pkg-file', accept: '.deb,application/vnd.debian.binary-package' });
  const sig = h('input', { type: 'file', id: 'pkg-signature', accept: '.minisig' });
  const uploadBtn = h('button', { type: 'button', class: 'primary', id: 'pkg-upload' }, 'Upload');
  uploadBtn.addEventListener('click', () => busy(uploadBtn, status, async () => {
    const f = file.files[0];
    if (!f) throw new Error('Choose a .deb file first.');
    const extra = {};
    if (sig.files[0]) {
      const text = await sig.files[0].text();
      extra['x-jumpgate-signature'] = btoa(text);
    }
    const p = await sendText('POST', '/api/v1/packages', f, 'application/vnd.debian.binary-package', extra);
    render(status, notice(`Uploaded ${p.name} ${p.version} (${p.architecture}, ${fmtBytes(p.size)}), manifest signed by ${p.key}.`, 'ok'));
    file.value = '';
    sig.value = '';
    await draw();
  }));

  // Assign.
  const version = h('input', { type: 'text', id: 'pkg-assign-version', placeholder: 'newest' });
  const action = h('select', { id: 'pkg-assign-action' },
    h('option', { value: 'install' }, 'Install / upgrade to'),
    h('option', { value: 'remove' }, 'Remove'));
  const assignBtn = h('button', { type: 'button', class: 'primary', id: 'pkg-assign' }, 'Assign');
  assignBtn.addEventListener('click', () => busy(assignBtn, status, async () => {
    const body = { group: groupSelect.value, package: packageSelect.value, action: action.value };
    if (action.value === 'install' && version.value.trim()) body.version = version.value.trim();
    const a = await put('/api/v1/packages/assignments', body);
    render(status, notice(`${a.assignment.action} ${a.assignment.package}${a.resolved_version ? ` ${a.resolved_version}` : ''} on ${a.assignment.group}: ${a.notified} connected endpoint(s) told.`, 'ok'));
    await draw();
  }));
  const refresh = h('button', { type: 'button', id: 'pkg-refresh' }, 'Refresh');
  refresh.addEventListener('click', () => busy(refresh, status, draw));

  await draw();
  render(
    main,
    heading('Packages'),
    tabs('#/packages'),
    h('section', { class: 'card', 'aria-labelledby': 'pkg-upload-title' },
      h('h2', { id: 'pkg-upload-title' }, 'Upload'),
      h('p', { class: 'hint' }, 'A Debian package (.deb); the gateway checks it, keeps it in blob storage with a signed manifest, and endpoints verify both before installing. Same as ', h('code', {}, 'jg epm packages upload'), '.'),
      field('Package', file),
      field('Publisher signature (optional)', sig, 'The minisign signature file (FILE.deb.minisig).'),
      h('div', { class: 'actions' }, uploadBtn)),
    h('section', { class: 'card', 'aria-labelledby': 'pkg-assign-title' },
      h('h2', { id: 'pkg-assign-title' }, 'Assign to a group'),
      field('Package', packageSelect),
      field('Group', groupSelect),
      field('Action', action),
      field('Version', version, 'Pin a version (install only); empty: the newest uploaded.'),
      h('div', { class: 'actions' }, assignBtn, refresh)),
    status,
    h('section', { class: 'card' }, h('h2', {}, 'Uploaded'), list),
    h('section', { class: 'card' }, h('h2', {}, 'Assignments'), assignments),
    h('section', { class: 'card' }, h('h2', {}, 'Endpoints'), results),
  );
}

export async function inventoryPage() {
  const status = h('div', { id: 'inv-status', 'aria-live': 'polite' });
  const out = h('div', { id: 'inv-results' });
  const pkg = h('input', { type: 'text', id: 'inv-package', placeholder: 'openssl' });
  const constraint = h('input', { type: 'text', id: 'inv-version', placeholder: '< 3.0.11' });
  const group = h('input', { type: 'text', id: 'inv-group', placeholder: 'all groups' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'inv-search' }, 'Search');
  const form = h('form', { class: 'card', 'aria-label': 'Inventory query' },
    field('Package', pkg),
    field('Version', constraint, 'A constraint in Debian order: <, <=, =, >=, > (strict < and >), e.g. < 3.0.11.'),
    field('Group', group),
    h('div', { class: 'actions' }, go));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(go, status, async () => {
      const q = new URLSearchParams();
      if (pkg.value.trim()) q.set('package', pkg.value.trim());
      if (constraint.value.trim()) q.set('version', constraint.value.trim());
      if (group.value.trim()) q.set('group', group.value.trim());
      const rows = await get(`/api/v1/packages/inventory?${q}`);
      render(out, h('p', { id: 'inv-count' }, `${rows.length} endpoint package${rows.length === 1 ? '' : 's'} match.`),
        table('Installed packages', [
          { label: 'Endpoint', cell: (r) => r.endpoint },
          { label: 'Group', cell: (r) => r.group },
          { label: 'Package', cell: (r) => r.package },
          { label: 'Version', cell: (r) => r.version },
          { label: 'Arch', cell: (r) => r.architecture },
          { label: 'Reported', cell: (r) => fmtTime(r.reported_at) },
        ], rows, 'No endpoint matches.'));
    });
  });
  render(main, heading('Inventory'), tabs('#/inventory'),
    h('p', { class: 'hint' }, 'Which endpoints run which packages, as they last reported (dpkg), e.g. every endpoint whose openssl is older than 3.0.11. Same as ', h('code', {}, 'jg epm inventory'), '.'),
    form, status, out);
}
