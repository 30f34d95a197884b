// The terminal page (xterm.js on a PTY session) and the file transfer page
// (upload and download with progress), both over a session WebSocket.

import { Terminal } from './vendor/xterm/xterm.mjs';
import { FitAddon } from './vendor/addon-fit/addon-fit.mjs';
import { h, render, heading, field, notice, fmtBytes, errorBox } from './ui.js';
import { main, onLeave } from './app.js';
import { seg } from './api.js';
import { Session, T, stdin, resize, fileData, fileEnd, Sha256, CHUNK, watchTarget } from './session.js';
import { SESSION_KIND as KIND } from './contract.js';

const enc = new TextEncoder();

function exitText(status) {
  if (status.code !== null && status.code !== undefined) return `the shell exited with code ${status.code}`;
  if (status.signal) return `the shell was killed by signal ${status.signal}`;
  return 'the shell exited';
}

// --- Terminal ------------------------------------------------------------

/** Watching someone's live shell or command `id`, read-only (`#/watch/terminal/ID`). */
export function watchTerminalPage(id) {
  terminalPage(`session ${id}`, id);
}

export function terminalPage(endpoint, watchId = null) {
  const watching = watchId ? h('strong', { class: 'live-state watching', id: 'term-watching' }, 'Watching — read-only') : null;
  const state = h('span', { class: 'conn-state', role: 'status', 'aria-live': 'polite', id: 'term-state' }, 'Connecting…');
  const reconnect = h('button', { type: 'button', hidden: true, id: 'reconnect' }, 'Reconnect');
  const disconnect = h('button', { type: 'button', class: 'danger' }, 'Disconnect');
  const banner = h('div', { id: 'term-notice' });
  const box = h('div', { class: 'terminal', id: 'terminal', 'aria-label': `Terminal on ${endpoint}` });
  render(
    main,
    heading(watchId ? `Watching — terminal ${endpoint}` : `Terminal — ${endpoint}`),
    h('div', { class: 'toolbar' }, watching, state, reconnect, disconnect, watchId ? null : h('a', { href: `#/files/${seg(endpoint)}`, class: 'button' }, 'Files'),
      // The terminal captures Tab: keyboard users leave it with Alt+Shift+ArrowUp.
      h('small', { class: 'hint' }, 'Copy: select text, then Ctrl+Shift+C. Paste: Ctrl+Shift+V. Alt+Shift+ArrowUp leaves the terminal.')),
    banner,
    box,
  );

  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    allowProposedApi: false,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  term.attachCustomKeyEventHandler((ev) => {
    if (ev.type === 'keydown' && ev.altKey && ev.shiftKey && ev.key === 'ArrowUp') {
      reconnect.hidden ? disconnect.focus() : reconnect.focus();
      return false;
    }
    // Ctrl+Shift+C / V: the browser's copy and paste, not control characters.
    if (ev.type === 'keydown' && ev.ctrlKey && ev.shiftKey && (ev.key === 'C' || ev.key === 'V')) {
      if (ev.key === 'C' && term.hasSelection()) navigator.clipboard?.writeText(term.getSelection()).catch(() => {});
      return false;
    }
    return true;
  });
  try {
    fit.fit();
  } catch {
    /* not laid out yet */
  }

  let session = null;
  const connect = () => {
    render(banner);
    reconnect.hidden = true;
    disconnect.disabled = false;
    state.textContent = 'Connecting…';
    let ended = null;
    const request = { kind: KIND.SHELL, term: 'xterm-256color', cols: term.cols, rows: term.rows };
    session = new Session(watchId ? watchTarget(watchId) : endpoint, KIND.SHELL, watchId ? null : request, {
      onMessage: (m) => {
        switch (m.type) {
          case T.ACCEPTED:
            state.textContent = watchId ? `Watching ${endpoint}` : `Connected to ${endpoint}`;
            term.focus();
            break;
          case T.STDOUT:
          case T.STDERR:
            term.write(m.body);
            break;
          case T.EXIT:
            ended = exitText(m.json);
            break;
          case T.REFUSED:
            ended = `the endpoint refused the session: ${m.json.message}`;
            break;
          case T.CLOSED:
            ended = `the gateway closed the session: ${m.json.reason}`;
            break;
          default:
            break;
        }
      },
      onClose: (reason) => {
        const why = ended || reason || 'the session ended';
        state.textContent = 'Disconnected';
        render(banner, h('div', { class: 'notice warn', role: 'alert' }, `Disconnected: ${why}.`));
        reconnect.hidden = false;
        disconnect.disabled = true;
        reconnect.focus();
        session = null;
      },
    });
  };
  // A watcher types nothing (the gateway would drop it anyway).
  const live = () => session && !watchId;
  const dataSub = term.onData((d) => live() && session.send(stdin(enc.encode(d))));
  const binSub = term.onBinary((d) => live() && session.send(stdin(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff))));
  const resizeSub = term.onResize(({ cols, rows }) => live() && session.send(resize(cols, rows)));
  const ro = new ResizeObserver(() => {
    try {
      fit.fit();
    } catch {
      /* hidden */
    }
  });
  ro.observe(box);
  reconnect.addEventListener('click', () => {
    term.reset();
    connect();
  });
  disconnect.addEventListener('click', () => session && session.close());
  onLeave(() => {
    ro.disconnect();
    dataSub.dispose();
    binSub.dispose();
    resizeSub.dispose();
    if (session) session.close();
    term.dispose();
  });
  connect();
}

// --- Files ---------------------------------------------------------------

export function filesPage(endpoint) {
  render(main, heading(`Files — ${endpoint}`), uploadSection(endpoint), downloadSection(endpoint),
    h('p', {}, h('a', { href: `#/terminal/${seg(endpoint)}` }, `Open a terminal on ${endpoint}`)));
}

function progressUi() {
  const bar = h('progress', { max: 100, value: 0, 'aria-label': 'Transfer progress' });
  const text = h('span', { class: 'progress-text', 'aria-live': 'polite' });
  const wrap = h('div', { class: 'progress', hidden: true }, bar, text);
  return {
    wrap,
    set(done, total) {
      wrap.hidden = false;
      bar.max = Math.max(total, 1);
      bar.value = done;
      const pct = total ? Math.floor((done / total) * 100) : 100;
      text.textContent = `${fmtBytes(done)} of ${fmtBytes(total)} (${pct}%)`;
    },
  };
}

function uploadSection(endpoint) {
  const file = h('input', { type: 'file', required: true });
  const dest = h('input', { value: '/tmp/', required: true, autocomplete: 'off', spellcheck: 'false' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Upload');
  const cancel = h('button', { type: 'button', hidden: true }, 'Cancel');
  const progress = progressUi();
  const status = h('div', { 'aria-live': 'polite', id: 'upload-status' });
  const form = h('form', {}, field('File', file), field('Destination on the endpoint', dest, 'A directory (ending in /) keeps the file name; otherwise the full path of the new file.'), h('div', { class: 'toolbar' }, submit, cancel), progress.wrap, status);
  let active = null;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = file.files && file.files[0];
    if (!f) {
      render(status, errorBox('Choose a file first.'));
      return;
    }
    submit.disabled = true;
    cancel.hidden = false;
    render(status, notice(`Uploading ${f.name}…`));
    active = upload(endpoint, f, dest.value.trim(), progress, (err, result) => {
      active = null;
      submit.disabled = false;
      cancel.hidden = true;
      render(status, err ? errorBox(err) : notice(`Uploaded ${f.name} (${fmtBytes(f.size)}), SHA-256 ${result.sha256} verified by the endpoint.`, 'ok'));
    });
  });
  cancel.addEventListener('click', () => active && active.close());
  onLeave(() => active && active.close());
  return h('section', { class: 'card', 'aria-labelledby': 'up-title' }, h('h2', { id: 'up-title' }, 'Upload to the endpoint'), form);
}

function upload(endpoint, f, dest, progress, done) {
  const hash = new Sha256();
  let finished = false;
  const finish = (err, r) => {
    if (finished) return;
    finished = true;
    done(err, r);
  };
  const dir = dest.endsWith('/');
  const request = { kind: KIND.UPLOAD, path: dest || '/tmp/', mode: 0o644, size: f.size, file_name: f.name };
  if (!dir) delete request.file_name;
  let sentAll = false;
  const pump = async (s) => {
    let offset = 0;
    progress.set(0, f.size);
    while (offset < f.size) {
      // Back-pressure: keep at most 1 MiB queued in the browser.
      while (s.buffered > 1024 * 1024) {
        if (s.closed) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (s.closed) return;
      const piece = new Uint8Array(await f.slice(offset, offset + CHUNK).arrayBuffer());
      hash.update(piece);
      s.send(fileData(piece));
      offset += piece.length;
      progress.set(Math.max(0, offset - s.buffered), f.size);
    }
    const sha = hash.hex();
    s.send(fileEnd(f.size, sha));
    sentAll = true;
    while (s.buffered > 0 && !s.closed) {
      progress.set(f.size - s.buffered, f.size);
      await new Promise((r) => setTimeout(r, 20));
    }
    progress.set(f.size, f.size);
  };
  const s = new Session(endpoint, 'upload', request, {
    onMessage: (m) => {
      if (m.type === T.ACCEPTED) pump(s).catch((e) => finish(e));
      else if (m.type === T.REFUSED) finish(new Error(`The endpoint refused the upload: ${m.json.message}`));
      else if (m.type === T.CLOSED) finish(new Error(`The gateway closed the session: ${m.json.reason}`));
      else if (m.type === T.FILE_RESULT) {
        if (m.json.ok) finish(null, m.json);
        else finish(new Error(`The endpoint could not write the file: ${m.json.message}`));
        s.close();
      }
    },
    onClose: (reason) => finish(new Error(reason ? `Upload failed: ${reason}.` : sentAll ? 'The endpoint did not confirm the upload.' : 'Upload cancelled.')),
  });
  return s;
}

function downloadSection(endpoint) {
  const path = h('input', { required: true, autocomplete: 'off', spellcheck: 'false', placeholder: '/var/log/syslog' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Download');
  const progress = progressUi();
  const status = h('div', { 'aria-live': 'polite', id: 'download-status' });
  const form = h('form', {}, field('Path on the endpoint', path), submit, progress.wrap, status);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    render(status, notice('Downloading…'));
    const p = path.value.trim();
    const name = p.split('/').filter(Boolean).pop() || 'download';
    const parts = [];
    const hash = new Sha256();
    let size = 0;
    let received = 0;
    let result = null;
    const s = new Session(endpoint, KIND.DOWNLOAD, { kind: KIND.DOWNLOAD, path: p }, {
      onMessage: (m) => {
        if (m.type === T.ACCEPTED) {
          size = m.json.size || 0;
          progress.set(0, size);
        } else if (m.type === T.FILE_DATA) {
          parts.push(m.body);
          hash.update(m.body);
          received += m.body.length;
          progress.set(received, size);
        } else if (m.type === T.FILE_END) {
          const sha = hash.hex();
          if (sha !== m.json.sha256.toLowerCase() || received !== m.json.size) {
            result = new Error(`The file arrived damaged (SHA-256 ${sha}, the endpoint sent ${m.json.sha256}).`);
          } else {
            const blob = new Blob(parts, { type: 'application/octet-stream' });
            const url = URL.createObjectURL(blob);
            const a = h('a', { href: url, download: name, class: 'button' }, `Save ${name} again`);
            a.click();
            setTimeout(() => URL.revokeObjectURL(url), 60000);
            result = { ok: true, sha };
          }
          s.close();
        } else if (m.type === T.REFUSED) {
          result = new Error(`The endpoint refused: ${m.json.message}`);
        } else if (m.type === T.FILE_RESULT && !m.json.ok) {
          result = new Error(`The endpoint could not read the file: ${m.json.message}`);
        } else if (m.type === T.CLOSED) {
          result = new Error(`The gateway closed the session: ${m.json.reason}`);
        }
      },
      onClose: (reason) => {
        submit.disabled = false;
        if (result && result.ok) render(status, notice(`Downloaded ${name} (${fmtBytes(received)}), SHA-256 ${result.sha} verified.`, 'ok'));
        else render(status, errorBox(result || new Error(reason ? `Download failed: ${reason}.` : 'Download failed.')));
      },
    });
    onLeave(() => s.close());
  });
  return h('section', { class: 'card', 'aria-labelledby': 'down-title' }, h('h2', { id: 'down-title' }, 'Download from the endpoint'), form);
}
