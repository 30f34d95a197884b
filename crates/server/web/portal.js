// The support portal: people without an account redeem a session key or
// ask for help, then download the support app. Talks to the portal's
// public API only (`/api/v1/portal…`); builds no markup from strings (only
// textContent), so nothing an administrator or the API returns can become
// markup or script. Colours come from /portal/theme.css (no inline style).

const $ = (id) => document.getElementById(id);

/** An error answer of the portal's API, with what the page shows. */
class PortalError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new PortalError(0, 'network', 'The support site cannot be reached. Check your internet connection and try again.');
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const retry = Number.parseInt(res.headers.get('retry-after') || '', 10);
    throw new PortalError(res.status, json && json.error ? json.error : `http_${res.status}`, json && json.message ? json.message : '', Number.isFinite(retry) ? retry : null);
  }
  return json;
}

/** What a person reads for a failed request. */
function explain(err) {
  switch (err.code) {
    case 'invalid_session_key':
      // The gateway's one answer for unknown, used and expired keys.
      return err.message || 'This key is not valid. Ask your technician for a new one.';
    case 'rate_limited': {
      const s = err.retryAfter && err.retryAfter > 0 ? err.retryAfter : 60;
      return `Too many attempts. Please try again in ${s} s.`;
    }
    case 'queue_full':
      return 'All technicians for this topic are busy right now. Please try again in a few minutes.';
    case 'network':
      return err.message;
    default:
      if (err.status === 400 && err.message) return `Please check your entry: ${err.message}`;
      if (err.status >= 500) return 'The support site has a problem right now. Please try again in a few minutes.';
      return err.message || `The support site answered ${err.status}.`;
  }
}

function show(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

/** One view at a time; the new view's heading takes the focus. */
function view(name) {
  $('loading').hidden = true;
  $('start').hidden = name !== 'start';
  $('download').hidden = name !== 'download';
  const title = $(name === 'start' ? 'start-title' : 'download-title');
  if (name === 'download') title.focus();
}

// --- Branding and queues -------------------------------------------------

async function load() {
  let info;
  try {
    info = await call('GET', '/api/v1/portal');
  } catch (e) {
    $('loading').hidden = true;
    show($('load-error'), explain(e));
    return;
  }
  document.title = info.site_name;
  $('site-name').textContent = info.site_name;
  $('foot-name').textContent = info.site_name;
  if (info.has_logo) {
    const logo = $('logo');
    logo.src = '/portal/logo';
    logo.alt = `${info.site_name} logo`;
    logo.hidden = false;
  }
  const t = info.texts || {};
  show($('welcome'), t.welcome);
  show($('key-help'), t.key_help);
  show($('form-help'), t.form_help);
  show($('privacy'), t.privacy);
  const select = $('queue');
  for (const q of info.queues) {
    const o = document.createElement('option');
    o.value = q.name;
    o.textContent = q.name;
    select.appendChild(o);
  }
  const describe = () => {
    const q = info.queues.find((x) => x.name === select.value);
    show($('queue-description'), q ? q.description : '');
  };
  select.addEventListener('change', describe);
  describe();
  // One public queue: nothing to choose.
  $('queue-field').hidden = info.queues.length <= 1;
  $('request-form').hidden = info.queues.length === 0;
  $('no-queues').hidden = info.queues.length !== 0;
  view('start');
}

// --- The two ways in -----------------------------------------------------

async function submit(form, errorSlot, send) {
  const button = form.querySelector('button[type=submit]');
  show(errorSlot, null);
  button.disabled = true;
  try {
    downloadPage(await send());
  } catch (e) {
    show(errorSlot, e instanceof PortalError ? explain(e) : String(e));
  } finally {
    button.disabled = false;
  }
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('key');
  const digits = input.value.replace(/\D/g, '');
  if (digits.length === 0) {
    show($('key-error'), 'Enter the session key your technician gave you, for example 123 456 7890.');
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  submit(ev.target, $('key-error'), () => call('POST', '/api/v1/portal/key', { key: input.value }));
});

// Digits grouped as they are read aloud (123 456 7890), whatever was typed.
$('key').addEventListener('blur', (ev) => {
  const d = ev.target.value.replace(/\D/g, '');
  if (d.length === 10) ev.target.value = `${d.slice(0, 3)} ${d.slice(3, 6)} ${d.slice(6)}`;
});

$('request-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $('name');
  const problem = $('problem');
  for (const el of [name, problem]) el.removeAttribute('aria-invalid');
  const missing = [name, problem].find((el) => !el.value.trim());
  if (missing) {
    missing.setAttribute('aria-invalid', 'true');
    show($('request-error'), missing === name ? 'Please enter your name.' : 'Please describe your problem in a few words.');
    missing.focus();
    return;
  }
  submit(ev.target, $('request-error'), () =>
    call('POST', '/api/v1/portal/requests', { name: name.value.trim(), problem: problem.value.trim(), queue: $('queue').value }),
  );
});

// --- Download ------------------------------------------------------------

let timer = null;

function downloadPage(answer) {
  const link = $('download-link');
  link.href = answer.download;
  link.removeAttribute('aria-disabled');
  link.classList.remove('disabled');
  const until = new Date(answer.expires_at).getTime();
  const expiry = $('expiry');
  const clock = new Date(until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const tick = () => {
    const left = Math.max(0, Math.round((until - Date.now()) / 1000));
    if (left === 0) {
      clearInterval(timer);
      timer = null;
      expiry.textContent = 'This download link has expired. Choose “Start over” to get a new one.';
      expiry.classList.add('expired');
      link.setAttribute('aria-disabled', 'true');
      link.classList.add('disabled');
      link.removeAttribute('href');
      return;
    }
    const m = Math.floor(left / 60);
    const s = String(left % 60).padStart(2, '0');
    expiry.textContent = `The download link is valid for ${m}:${s} (until ${clock}).`;
  };
  if (timer) clearInterval(timer);
  // Screen readers hear the time once, not every second.
  expiry.setAttribute('aria-live', 'off');
  tick();
  if (Number.isFinite(until)) timer = setInterval(tick, 1000);
  setTimeout(() => expiry.setAttribute('aria-live', 'polite'), 1500);
  $('key').value = '';
  $('problem').value = '';
  view('download');
}

$('again').addEventListener('click', () => {
  if (timer) clearInterval(timer);
  timer = null;
  $('expiry').classList.remove('expired');
  view('start');
  $('key').focus();
});

for (const b of document.querySelectorAll('button.copy')) {
  b.addEventListener('click', async () => {
    const text = $(b.dataset.copy).textContent;
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
      $('copy-status').textContent = 'Copied to the clipboard.';
      setTimeout(() => {
        b.textContent = 'Copy';
      }, 2000);
    } catch {
      // No clipboard access: select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents($(b.dataset.copy));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  });
}

$('skip').addEventListener('click', (e) => {
  e.preventDefault();
  $('main').focus();
});

load();
