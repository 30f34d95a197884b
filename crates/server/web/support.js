// Attended support, the technician's side: the live queue (one
// EventSource on `GET /api/v1/support/events`, no polling), session keys,
// and one support session's page (chat, rights asked of the customer, the
// customer's screen and a shell once allowed, end).

import { get, post, del, seg } from './api.js';
import { h, render, heading, table, notice, busy, showError, fmtTime } from './ui.js';
import { ctx, main, onLeave } from './app.js';

const RIGHTS = [
  ['view', 'See the screen'],
  ['control', 'Control mouse and keyboard'],
  ['clipboard', 'Share the clipboard'],
  ['shell', 'Run commands'],
  ['files', 'Transfer files'],
];

/** A right's name for people (`control` → "Control mouse and keyboard"). */
const labelOf = (r) => (RIGHTS.find(([k]) => k === r) || [r, r])[1];

/**
 * The chat lines this page has seen, per support session, kept while the
 * console is open (both pages follow the events), so going back to a
 * session shows its conversation. In memory only: a reload starts empty
 * (the API has no transcript to read yet).
 */
const transcripts = new Map();
const MAX_LINES = 500;
function remember(id, line) {
  let lines = transcripts.get(id);
  if (!lines) transcripts.set(id, (lines = []));
  if (lines.some((l) => l.seq === line.seq)) return;
  lines.push(line);
  lines.sort((a, b) => a.seq - b.seq);
  if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
}

/** m:ss since an RFC 3339 time. */
function since(iso) {
  if (!iso) return '—';
  const s = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * Follows the caller's support events: `onEvent(event)` for each; the
 * browser's EventSource reconnects by itself (and the gateway starts each
 * connection with a snapshot). Closed when the page changes.
 */
function follow(onEvent, onState) {
  const es = new EventSource('/api/v1/support/events');
  const handle = (ev) => {
    try {
      onEvent(JSON.parse(ev.data));
    } catch {
      /* not an event */
    }
  };
  for (const name of ['snapshot', 'session', 'left', 'chat', 'invite']) es.addEventListener(name, handle);
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  onLeave(() => es.close());
  return es;
}

/** The state of a page's event stream, shown as a pill. */
function liveState(id) {
  const el = h('span', { class: 'conn-state live-state', role: 'status', id, dataset: { up: 'no' } }, 'Connecting…');
  const set = (up) => {
    el.textContent = up ? 'Live' : 'Reconnecting…';
    el.dataset.up = up ? 'yes' : 'no';
    el.title = up ? 'This page follows the gateway as it changes.' : 'Reconnecting to the gateway: this page may be out of date.';
  };
  return [el, set];
}

// --- The queue -----------------------------------------------------------

export function supportPage() {
  const sessions = new Map();
  const [live, setLive] = liveState('support-live');
  const waitingSlot = h('div', { id: 'support-waiting' });
  const mineSlot = h('div', { id: 'support-mine' });
  const status = h('div', { 'aria-live': 'polite' });
  const invites = h('div', { id: 'support-invites', 'aria-live': 'polite' });
  const queuesSlot = h('p', { id: 'support-queues', class: 'hint' });
  const keySlot = h('div', { id: 'support-key', 'aria-live': 'polite' });
  const keyBtn = h('button', { type: 'button', class: 'primary', id: 'support-make-key' }, 'Create session key');
  keyBtn.addEventListener('click', () =>
    busy(keyBtn, status, async () => {
      const k = await post('/api/v1/support/keys', {});
      render(
        keySlot,
        h('div', { class: 'card key-card' },
          h('p', {}, 'Read this key to your customer. They type it at the support portal:'),
          h('p', { class: 'big-key', id: 'support-key-value' }, k.key),
          h('small', {}, `Works once, until ${new Date(k.expires_at).toLocaleTimeString()}, queue ${k.queue || '—'}.`)),
      );
    }),
  );

  const accept = (s, btn) =>
    busy(btn, status, async () => {
      await post(`/api/v1/support/sessions/${seg(s.id)}/accept`, {});
      location.hash = `#/support/${encodeURIComponent(s.id)}`;
    });

  const draw = () => {
    const all = [...sessions.values()];
    const waiting = all.filter((s) => s.state === 'waiting' || s.state === 'pending');
    const mine = all.filter((s) => s.state === 'active' && s.participants.some((p) => p.username === ctx.me.username));
    render(
      waitingSlot,
      table('Customers waiting', [
        { label: 'Customer', cell: (s) => s.customer },
        { label: 'Problem', cell: (s) => s.problem || '—' },
        { label: 'Queue', cell: (s) => s.queue },
        { label: 'Waiting', cell: (s) => (s.state === 'pending' ? 'downloading the app' : h('span', { class: 'ticker', dataset: { since: s.joined_at } }, since(s.joined_at))) },
        { label: 'From', cell: (s) => (s.origin === 'key' ? `key${s.for_user ? ` (${s.for_user})` : ''}` : 'request form') },
        {
          label: 'Action',
          cell: (s) => {
            if (s.state !== 'waiting') return '—';
            const b = h('button', { type: 'button', class: 'primary', dataset: { accept: s.id } }, 'Accept');
            b.addEventListener('click', () => accept(s, b));
            return b;
          },
        },
      ], waiting, 'Nobody is waiting.'),
    );
    render(
      mineSlot,
      table('Your support sessions', [
        { label: 'Customer', cell: (s) => h('a', { href: `#/support/${encodeURIComponent(s.id)}` }, s.customer) },
        { label: 'Queue', cell: (s) => s.queue },
        { label: 'Granted', cell: (s) => s.granted.map(labelOf).join(', ') || '—' },
        { label: 'Client', cell: (s) => h('span', { class: s.online ? 'status online' : 'status offline' }, s.online ? 'connected' : 'offline') },
      ], mine, 'You have no support session.'),
    );
  };

  follow(
    (e) => {
      if (e.type === 'snapshot') {
        sessions.clear();
        for (const s of e.sessions) sessions.set(s.id, s);
      } else if (e.type === 'session') {
        if (e.session.state === 'ended') sessions.delete(e.session.id);
        else sessions.set(e.session.id, e.session);
      } else if (e.type === 'left') {
        sessions.delete(e.id);
      } else if (e.type === 'invite') {
        invites.prepend(
          notice(`${e.by} invited you to a support session as ${e.role}.`),
          h('p', { class: 'invite-link' }, h('a', { class: 'button primary', href: `#/support/${encodeURIComponent(e.id)}`, dataset: { invite: e.id } }, 'Open the session')),
        );
        return;
      } else {
        if (e.type === 'chat') remember(e.id, e.line);
        return;
      }
      draw();
    },
    (up) => {
      setLive(up);
      // Following the queue makes this technician available to queues
      // that assign automatically; say so, and who else is.
      if (up) showQueues(queuesSlot);
    },
  );
  // The waiting times tick here, with no call to the gateway.
  const tick = setInterval(() => {
    for (const el of waitingSlot.querySelectorAll('.ticker')) el.textContent = since(el.dataset.since);
  }, 1000);
  onLeave(() => clearInterval(tick));

  render(
    main,
    heading('Support'),
    h('div', { class: 'toolbar' }, keyBtn, live, h('a', { href: '#/support/history', id: 'support-history-link' }, 'History')),
    queuesSlot,
    status,
    invites,
    keySlot,
    h('h2', {}, 'Waiting'),
    waitingSlot,
    h('h2', {}, 'Your sessions'),
    mineSlot,
  );
  draw();
}

/** The caller's queues: which assign automatically, and who is available. */
async function showQueues(slot) {
  let qs;
  try {
    qs = await get('/api/v1/queues');
  } catch {
    return;
  }
  const mine = qs.filter((q) => q.members.includes(ctx.me.username));
  if (!mine.length) {
    render(slot, 'You are not a member of any support queue.');
    return;
  }
  render(
    slot,
    mine.map((q, i) => [
      i ? ' · ' : '',
      h('strong', {}, q.name),
      q.auto_assign
        ? ` assigns automatically; available now: ${q.available.join(', ') || 'nobody'}`
        : ': you accept customers yourself',
    ]),
  );
}

// --- History --------------------------------------------------------------

/** Seconds as "4 min 05 s" / "1 h 02 min". */
function span(secs) {
  if (secs === undefined || secs === null) return '—';
  const m = Math.floor(secs / 60);
  if (m >= 60) return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  return m ? `${m} min ${String(secs % 60).padStart(2, '0')} s` : `${secs} s`;
}

const PAGE = 50;

/**
 * Attended sessions of the caller's groups, newest first, 50 at a time:
 * queue, wait, duration, technicians, rights used, rating, how it ended.
 */
export async function supportHistoryPage() {
  const status = h('div', { 'aria-live': 'polite' });
  const queue = h('input', { id: 'sh-queue', autocomplete: 'off', placeholder: 'all queues', 'aria-label': 'Queue' });
  const filter = h('form', { class: 'inline-form toolbar' }, h('label', { for: 'sh-queue' }, 'Queue'), queue, h('button', { type: 'submit' }, 'Show'), h('a', { href: '#/support' }, 'Back to the queue'));
  const slot = h('div', { id: 'support-history' });
  const more = h('button', { type: 'button', id: 'sh-more', hidden: true }, 'Older sessions');
  let rows = [];
  const draw = () => render(
    slot,
    table('Attended support sessions', [
      { label: 'Customer', cell: (r) => h('a', { href: `#/support/${encodeURIComponent(r.id)}` }, r.customer) },
      { label: 'Queue', cell: (r) => r.queue },
      { label: 'Requested', cell: (r) => fmtTime(r.requested_at) },
      { label: 'Wait', cell: (r) => span(r.wait_secs) },
      { label: 'Duration', cell: (r) => span(r.duration_secs) },
      { label: 'Technicians', cell: (r) => r.technicians.join(', ') || '—' },
      { label: 'Rights used', cell: (r) => r.rights_used.map(labelOf).join(', ') || '—' },
      { label: 'Rating', cell: (r) => (r.rating ? h('span', { class: 'rating', title: `${r.rating} of 5` }, '★'.repeat(r.rating) + '☆'.repeat(5 - r.rating)) : '—') },
      { label: 'Outcome', cell: (r) => (r.state === 'ended' ? r.end_reason || 'ended' : r.state) },
    ], rows, 'No attended sessions yet.'),
  );
  const load = async (before) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (queue.value.trim()) q.set('queue', queue.value.trim());
    if (before) q.set('before', before);
    const page = await get(`/api/v1/support/sessions?${q}`);
    rows = before ? rows.concat(page) : page;
    more.hidden = page.length < PAGE;
    draw();
  };
  filter.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load(null).catch((e) => showError(status, e));
  });
  more.addEventListener('click', () => busy(more, status, () => load(rows[rows.length - 1].requested_at)));
  render(main, heading('Support history'), filter, status, slot, more);
  try {
    await load(null);
  } catch (e) {
    showError(status, e);
  }
}

// --- One support session -------------------------------------------------

/**
 * The technicians' card: who takes part, and for the owner and
 * participants, Invite… and Transfer… (inline forms: a username, a role or
 * a queue), and Remove for each teammate.
 */
function drawTeam(slot, id, s, status) {
  const me = s.participants.find((p) => p.username === ctx.me.username);
  const working = me && (me.role === 'owner' || me.role === 'participant');
  const live = s.state !== 'ended';
  const people = h('ul', { class: 'ss-people', id: 'ss-people' },
    s.participants.length
      ? s.participants.map((p) => {
        const li = h('li', { dataset: { user: p.username } }, h('strong', {}, p.username), ` ${p.role}`);
        const mayRemove = live && me && me.role === 'owner' && p.username !== me.username;
        if (mayRemove) {
          const b = h('button', { type: 'button', class: 'link', dataset: { remove: p.username } }, 'Remove');
          b.addEventListener('click', () => busy(b, status, () => del(`/api/v1/support/sessions/${seg(id)}/participants/${seg(p.username)}`)));
          li.append(' ', b);
        }
        return li;
      })
      : h('li', {}, 'Nobody has taken this session yet.'));
  if (!live || !working) {
    render(slot, people);
    return;
  }
  const user = h('input', { id: 'ss-invite-user', autocomplete: 'off', required: true, placeholder: 'username', 'aria-label': 'Technician to invite' });
  const role = h('select', { id: 'ss-invite-role', 'aria-label': 'As' },
    h('option', { value: 'participant' }, 'participant (chats, works with the rights granted)'),
    h('option', { value: 'observer' }, 'observer (reads along)'));
  const inviteBtn = h('button', { type: 'submit', class: 'primary', id: 'ss-invite' }, 'Invite');
  const invite = h('form', { class: 'inline-form', id: 'ss-invite-form' }, user, role, inviteBtn);
  invite.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(inviteBtn, status, async () => {
      await post(`/api/v1/support/sessions/${seg(id)}/invite`, { user: user.value.trim(), as: role.value });
      user.value = '';
    });
  });

  const toWhom = h('select', { id: 'ss-transfer-kind', 'aria-label': 'Transfer to' },
    h('option', { value: 'user' }, 'a technician'),
    h('option', { value: 'queue' }, 'a queue'));
  const target = h('input', { id: 'ss-transfer-to', autocomplete: 'off', required: true, placeholder: 'username', 'aria-label': 'Technician or queue' });
  toWhom.addEventListener('change', () => {
    target.placeholder = toWhom.value === 'user' ? 'username' : 'queue name';
  });
  const transferBtn = h('button', { type: 'submit', id: 'ss-transfer' }, 'Transfer');
  const transfer = h('form', { class: 'inline-form', id: 'ss-transfer-form' }, 'to ', toWhom, target, transferBtn);
  transfer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const to = target.value.trim();
    const what = toWhom.value === 'user' ? `to ${to}` : `back to queue ${to}`;
    if (!window.confirm(`Transfer this session ${what}? The customer is told, and allows rights again for the new technician.`)) return;
    busy(transferBtn, status, async () => {
      await post(`/api/v1/support/sessions/${seg(id)}/transfer`, toWhom.value === 'user' ? { user: to } : { queue: to });
      location.hash = '#/support';
    });
  });
  render(
    slot,
    people,
    h('h3', {}, 'Invite a teammate'),
    invite,
    me.role === 'owner' ? [h('h3', {}, 'Transfer the session'), transfer] : null,
  );
}

export async function supportSessionPage(id) {
  const status = h('div', { 'aria-live': 'polite' });
  const head = h('div', { id: 'ss-head', class: 'ss-head' });
  // What the customer just allowed or took back, said once, plainly.
  const news = h('p', { id: 'ss-news', class: 'ss-news', role: 'status' });
  const rights = h('div', { id: 'ss-rights', class: 'ss-rights' });
  const tools = h('div', { id: 'ss-tools', class: 'toolbar' });
  const log = h('ol', { class: 'chat-log', id: 'ss-chat', 'aria-live': 'polite', 'aria-label': 'Chat' });
  const text = h('input', { id: 'ss-chat-text', autocomplete: 'off', maxlength: 4096, 'aria-label': 'Message to the customer', placeholder: 'Write to the customer…' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const form = h('form', { class: 'chat-form' }, text, send);
  const end = h('button', { type: 'button', class: 'danger', id: 'ss-end' }, 'End session');
  const team = h('div', { id: 'ss-team', class: 'ss-team' });
  const [live, setLive] = liveState('ss-live');
  const pin = pinButton(id, () => s, status);
  let s = null;
  let before = null;

  const addLine = (l) => {
    remember(id, l);
    if (log.querySelector(`[data-seq="${l.seq}"]`)) return;
    const at = new Date(l.at);
    const li = h('li', { class: `chat-${l.from_kind}`, dataset: { seq: String(l.seq) } },
      h('span', { class: 'chat-from' }, l.from_kind === 'system' ? '' : `${l.from}: `),
      h('span', { class: 'chat-text' }, l.text),
      Number.isNaN(at.getTime()) ? null : h('time', { class: 'chat-at', datetime: l.at }, at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
    // In the gateway's order, whichever of the POST's answer and the event came first.
    const later = [...log.children].find((x) => Number(x.dataset.seq) > l.seq);
    log.insertBefore(li, later || null);
    log.scrollTop = log.scrollHeight;
  };

  const tell = (next) => {
    if (!before) return;
    const who = next.customer || 'The customer';
    const gained = next.granted.filter((r) => !before.includes(r));
    const lost = before.filter((r) => !next.granted.includes(r));
    // Another change (a teammate joined): the last news stays as it was.
    if (!gained.length && !lost.length) return;
    if (lost.length) news.textContent = `${who} took back: ${lost.map(labelOf).join(', ')}.`;
    else if (gained.length) news.textContent = `${who} allowed: ${gained.map(labelOf).join(', ')}.`;
    news.dataset.kind = lost.length ? 'lost' : 'gained';
  };

  const draw = () => {
    if (!s) return;
    tell(s);
    before = [...s.granted];
    const people = s.participants.map((p) => `${p.username} (${p.role})`).join(', ') || 'nobody yet';
    const ended = s.state === 'ended';
    render(
      head,
      h('p', { class: 'ss-customer' }, h('strong', {}, s.customer), s.problem ? ` — ${s.problem}` : ''),
      h('p', { class: 'ss-meta' },
        h('span', { class: `ss-state ss-state-${s.state}` }, s.state),
        h('span', { class: s.online ? 'status online' : 'status offline' }, s.online ? 'client connected' : 'client offline'),
        h('span', {}, `queue ${s.queue}`),
        s.hostname ? h('span', {}, s.hostname) : null,
        h('span', {}, `technicians: ${people}`)),
      h('div', { class: 'toolbar ss-actions' }, ended ? null : end, h('a', { href: '#/support' }, 'Back to the queue'), ended ? null : live),
    );
    render(
      rights,
      RIGHTS.map(([r, label]) => {
        const granted = s.granted.includes(r);
        const asked = s.asked.includes(r);
        const b = h('button', {
          type: 'button',
          class: `right ${granted ? 'right-granted' : asked ? 'right-asked' : ''}`,
          dataset: { right: r },
          disabled: granted || asked || !s.online,
          'aria-pressed': granted ? 'true' : 'false',
          title: granted ? 'Allowed by the customer' : asked ? 'Waiting for the customer to answer' : !s.online ? 'The customer\'s client is offline' : null,
        }, granted ? `✓ ${label}` : asked ? `${label}: asked…` : `Ask: ${label}`);
        b.addEventListener('click', () => busy(b, status, () => post(`/api/v1/support/sessions/${seg(id)}/rights`, { right: r })));
        return b;
      }),
    );
    const target = `support:${id}`;
    const me = s.participants.find((p) => ctx.me && p.username === ctx.me.username);
    // A teammate's screen already shown: join it rather than open a second
    // capture (participants drive it while the customer allows control).
    const drives = me && (me.role === 'owner' || me.role === 'participant') && s.granted.includes('control');
    const joins = (s.screens || []).filter((x) => !ctx.me || x.technician !== ctx.me.username).map((x) =>
      h('a', {
        class: 'button',
        href: `#/watch/desktop/${seg(x.session)}${drives ? '/drive' : ''}`,
        dataset: { screen: x.session },
      }, drives ? `Join ${x.technician}'s screen` : `Watch ${x.technician}'s screen`));
    render(
      tools,
      ...joins,
      s.granted.includes('view') ? h('a', { class: 'button primary', href: `#/desktop/${encodeURIComponent(target)}`, id: 'ss-open-screen' }, 'Open the screen') : null,
      s.granted.includes('shell') ? h('a', { class: 'button primary', href: `#/terminal/${encodeURIComponent(target)}`, id: 'ss-open-shell' }, 'Open a shell') : null,
      // Pin as unattended: the owner, with the right to enroll endpoints.
      s.online && ctx.me && s.owner === ctx.me.username && ctx.me.permissions.includes('manage-endpoints') ? pin : null,
    );
    drawTeam(team, id, s, status);
    if (ended) {
      render(tools, notice(`This session has ended${s.end_reason ? `: ${s.end_reason}` : ''}.`));
      rights.hidden = true;
      form.hidden = true;
      news.hidden = true;
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = text.value.trim();
    if (!t) return;
    busy(send, status, async () => {
      const line = await post(`/api/v1/support/sessions/${seg(id)}/chat`, { text: t });
      text.value = '';
      addLine(line);
      text.focus();
    });
  });
  end.addEventListener('click', () => {
    if (!window.confirm(`End the support session with ${s ? s.customer : 'this customer'}? Their app is told and closes the session.`)) return;
    busy(end, status, async () => {
      await post(`/api/v1/support/sessions/${seg(id)}/end`, {});
      if (s) {
        s.state = 'ended';
        draw();
      }
    });
  });

  render(
    main,
    heading('Support session'),
    status,
    head,
    h('div', { class: 'ss-grid' },
      h('section', { class: 'card ss-card', 'aria-labelledby': 'ss-rights-title' }, h('h2', { id: 'ss-rights-title' }, 'What the customer allows'),
        h('p', { class: 'hint' }, 'Each right needs the customer\'s Allow in their window; they can take any of them back at any time.'), rights, news, tools),
      h('section', { class: 'card ss-card', 'aria-labelledby': 'ss-chat-title' }, h('h2', { id: 'ss-chat-title' }, 'Chat'), log, form)),
    h('section', { class: 'card ss-card', 'aria-labelledby': 'ss-team-title' }, h('h2', { id: 'ss-team-title' }, 'Technicians'), team),
  );
  for (const l of transcripts.get(id) || []) addLine(l);
  try {
    s = await get(`/api/v1/support/sessions/${seg(id)}`);
  } catch (e) {
    showError(status, e);
    return;
  }
  draw();
  // The chat so far, as the gateway keeps it (a reload loses nothing).
  try {
    for (const l of await get(`/api/v1/support/sessions/${seg(id)}/transcript`)) addLine(l);
  } catch (e) {
    showError(status, e);
  }
  follow(
    (e) => {
      if (e.type === 'session' && e.session.id === id) {
        s = e.session;
        draw();
      } else if (e.type === 'snapshot') {
        const found = e.sessions.find((x) => x.id === id);
        if (found) {
          s = found;
          draw();
        }
      } else if (e.type === 'left' && e.id === id) {
        s.state = 'ended';
        s.end_reason = e.reason;
        draw();
      } else if (e.type === 'chat' && e.id === id) {
        addLine(e.line);
      }
    },
    setLive,
  );
}

/**
 * "Pin as unattended…": asks for the endpoint group, then offers the
 * customer to make their machine an endpoint of it for good (they allow it
 * in their window and give an administrator's password). The outcome comes
 * as a system line of the chat.
 */
function pinButton(id, current, status) {
  const b = h('button', {
    type: 'button',
    id: 'ss-pin',
    title: 'Offer the customer to make this machine an endpoint for good: they allow it in their window and give an administrator password.',
  }, 'Pin as unattended…');
  b.addEventListener('click', () => {
    const s = current();
    const answer = window.prompt(`Make ${s ? s.customer : 'the customer'}'s machine an endpoint for good, in which group?`, 'default');
    const group = (answer || '').trim();
    if (!group) return;
    busy(b, status, async () => {
      await post(`/api/v1/support/sessions/${seg(id)}/pin`, { group });
      render(status, notice(`Offered: the customer answers in their window (group ${group}). The outcome appears in the chat.`));
    });
  });
  return b;
}
