// The desktop page: an endpoint's screen over a `desktop` session on the
// same WebSocket session path as the terminal (session.js), drawn by the
// codec's browser decoder (crates/codec/js/desktop-decoder.js, served as
// /assets/desktop-decoder.js), with keyboard and mouse capture, the keys
// the browser keeps, clipboard, monitor choice and live figures.
//
// View only: the "View only" switch stops sending input at once (held keys
// and buttons are released first). A session opened without control cannot
// gain it (the gateway and the agent both drop its input): the page offers
// "Reconnect with control" instead.
//
// Watch mode (`#/watch/desktop/ID`, see `watchDesktopPage`): someone else's
// live desktop session, as the gateway fans it out to watchers — no options,
// no request, no acknowledgements (the owner paces the screen), a visible
// "Watching" label, and no input capture; a participant of the support
// session it belongs to (`…/drive`) may drive while the customer allows
// control (the gateway decides each message).
//
// The page offers the screen codecs its decoder draws (DESKTOP_CODECS) when
// it opens the session; the agent picks one. A control state noted
// `refused` answers a request that could not be done (a monitor that is
// gone): it is shown as a note and changes nothing else; one noted `failed`
// ended the session because something failed at the endpoint.

import { DesktopDecoder } from './desktop-decoder.js';
import { h, render, heading, field, notice } from './ui.js';
import { main, onLeave, can } from './app.js';
import { Session, T, encode, watchTarget } from './session.js';
import { SESSION_KIND as KIND, PERMISSION as P, REFUSAL_CODE, INPUT_STATE as IS, CONTROL_NOTE, DESKTOP_CODECS } from './contract.js';
import * as K from './keys.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Words for the technician about who has control. */
function controlText(state) {
  switch (state.input) {
    case IS.ALLOWED:
      return 'You have control';
    case IS.VIEW_ONLY:
      return 'View only';
    case IS.TAKEN_BACK:
      return 'The user took back control';
    case IS.ENDED:
      return state.note === CONTROL_NOTE.FAILED ? 'The session failed at the endpoint' : 'The user ended the session';
    default:
      return state.input;
  }
}

/** Watching the live desktop session `id`; `drive`: as a support participant, with input. */
export function watchDesktopPage(id, drive) {
  desktopPage(`session ${id}`, { session: id, drive });
}

export function desktopPage(endpoint, watch = null) {
  const mayControl = can(P.DESKTOP_CONTROL);
  const wantControl = h('input', { type: 'checkbox', id: 'desk-opt-control', checked: mayControl, disabled: !mayControl });
  const wantClipboard = h('input', { type: 'checkbox', id: 'desk-opt-clipboard' });
  const connectBtn = h('button', { type: 'submit', class: 'primary', id: 'desk-connect' }, 'Connect');
  const options = h('form', { class: 'card desk-options', id: 'desk-options', 'aria-label': 'Session options' },
    h('label', { class: 'check' }, wantControl, ' Control keyboard and mouse', mayControl ? null : ' (your role may only watch)'),
    h('label', { class: 'check' }, wantClipboard, ' Share the clipboard (text, both ways)'),
    h('div', { class: 'toolbar' }, connectBtn,
      h('small', { class: 'hint' }, 'Depending on the endpoint group, the person at the endpoint is asked first and can take back control at any moment.')));

  const state = h('span', { class: 'conn-state', role: 'status', 'aria-live': 'polite', id: 'desk-state' }, 'Not connected');
  const fps = h('span', { id: 'desk-fps' }, '— fps');
  const rtt = h('span', { id: 'desk-rtt' }, '— ms');
  const kbps = h('span', { id: 'desk-kbps' }, '— kbit/s');
  const figures = h('span', { class: 'figures', 'aria-label': 'Live figures' }, fps, rtt, kbps);
  const scale = h('select', { id: 'desk-scale' }, h('option', { value: 'fit' }, 'Fit'), h('option', { value: '1' }, '1:1'));
  const monitor = h('select', { id: 'desk-monitor' });
  const monitorField = field('Monitor', monitor);
  monitorField.hidden = true;
  const viewOnly = h('input', { type: 'checkbox', id: 'desk-view-only' });
  const keysMenu = h('details', { class: 'menu', id: 'desk-keys' }, h('summary', {}, 'Send keys'),
    h('div', { class: 'menu-items' }, K.SPECIAL_KEYS.map((k) => h('button', { type: 'button', dataset: { combo: k.id } }, k.label))));
  const fullBtn = h('button', { type: 'button', id: 'desk-full' }, 'Full screen');
  const disconnect = h('button', { type: 'button', class: 'danger', id: 'desk-disconnect' }, 'Disconnect');
  const reconnect = h('button', { type: 'button', hidden: true, id: 'desk-reconnect' }, 'Reconnect');
  const withControl = h('button', { type: 'button', hidden: true, id: 'desk-with-control' }, 'Reconnect with control');
  const watching = watch
    ? h('strong', { class: 'live-state watching', id: 'desk-watching', dataset: { drive: watch.drive ? 'yes' : 'no' } },
      watch.drive ? 'Watching — you may drive while the customer allows control' : 'Watching — read-only')
    : null;
  const toolbar = h('div', { class: 'toolbar desk-toolbar', hidden: true },
    watching, state, figures, field('Scale', scale), monitorField,
    h('label', { class: 'check' }, viewOnly, ' View only'),
    keysMenu, fullBtn, disconnect, reconnect, withControl,
    watch && !watch.drive
      ? h('small', { class: 'hint' }, 'Nothing you do here reaches the endpoint.')
      : h('small', { class: 'hint' }, 'Click the screen to type into it; Alt+Shift+ArrowUp leaves it.'));
  const banner = h('div', { id: 'desk-banner' });
  // Answers to requests that could not be done (a monitor that is gone).
  const note = h('div', { id: 'desk-note' });

  const clipText = h('textarea', { id: 'desk-clip-text', rows: 3, spellcheck: 'false', 'aria-describedby': 'desk-clip-status' });
  const clipSend = h('button', { type: 'button', id: 'desk-clip-send' }, 'Send to the endpoint');
  const clipStatus = h('small', { id: 'desk-clip-status', class: 'hint', 'aria-live': 'polite' }, 'Text put here is sent to the endpoint\'s clipboard; text copied there appears here.');
  const clipPanel = h('details', { class: 'card desk-clip', id: 'desk-clipboard', hidden: true },
    h('summary', {}, 'Clipboard'), field('Clipboard text', clipText), h('div', { class: 'toolbar' }, clipSend, clipStatus));

  const canvas = h('canvas', { id: 'desk-canvas', width: 640, height: 360, 'aria-label': `Screen of ${endpoint}` });
  const cursorCanvas = h('canvas', { class: 'desk-cursor', width: 640, height: 360, 'aria-hidden': 'true' });
  // Keyboard input goes to this (invisible) text box: key events, and the
  // text of input methods and dead keys, which only arrive as input events.
  const keyTrap = h('textarea', { class: 'desk-keytrap', id: 'desk-input', 'aria-label': `Keyboard input to ${endpoint}`, autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false' });
  const screen = h('div', { class: 'desk-screen fit', id: 'desk-screen' }, canvas, cursorCanvas, keyTrap);
  const stage = h('div', { class: 'desk-stage', id: 'desk-stage', hidden: true }, screen);

  render(main, heading(watch ? `Watching — desktop ${endpoint}` : `Desktop — ${endpoint}`), watch ? null : options, toolbar, banner, note, clipPanel, stage);

  // --- Session state ----------------------------------------------------
  let session = null;
  let decoder = null;
  let opened = { control: false, clipboard: false };
  let control = null; // the last ControlState
  let info = null; // the last DesktopInfo
  let ended = null;
  let pingTimer = null;
  const stats = { frames: 0, bytes: 0, pingSent: new Map(), nextPing: 1 };
  let lastRefresh = 0;
  const held = new Map(); // KeyboardEvent.code → keysym pressed
  let buttons = 0;
  let pendingMove = null;
  let moveFrame = 0;
  const wheel = new K.WheelAccumulator();
  const shapes = new Map();
  let cursor = { x: 0, y: 0, shape: 0 };
  let cursorBox = null; // where the cursor was drawn (to clear it)

  const send = (type, body) => session && session.send(encode(type, body));
  const inputOn = () => !!session && opened.control && !viewOnly.checked && control && control.input === IS.ALLOWED;
  // A watcher's acknowledgements would be ignored: none are sent.
  const ack = (seq) => {
    if (!watch) send(T.FRAME_ACK, K.u32Body(seq));
  };

  const sendKey = (keysym, down) => send(T.KEY, K.keyBody(keysym, down));
  const releaseAll = () => {
    const had = held.size > 0 || buttons !== 0;
    for (const ks of held.values()) sendKey(ks, false);
    held.clear();
    if (buttons) {
      buttons = 0;
      if (pendingMove) send(T.POINTER, K.pointerBody(pendingMove.x, pendingMove.y, 0));
    }
    if (had || session) send(T.INPUT_RESET);
  };

  const drawCursor = () => {
    const ctx = cursorCanvas.getContext('2d');
    if (cursorBox) ctx.clearRect(cursorBox.x, cursorBox.y, cursorBox.w, cursorBox.h);
    cursorBox = null;
    const s = shapes.get(cursor.shape);
    if (!s || !cursor.shape || !s.image) return;
    const x = cursor.x - s.hot_x;
    const y = cursor.y - s.hot_y;
    ctx.putImageData(s.image, x, y);
    cursorBox = { x, y, w: s.width, h: s.height };
  };

  const setControl = (cs) => {
    if (cs.note === CONTROL_NOTE.REFUSED) {
      // Who has control did not change; the choice shown goes back to what is shown.
      render(note, h('div', { class: 'notice warn desk-banner', role: 'alert', id: 'desk-refused' }, `The endpoint could not do that: ${cs.message}.`));
      if (info) showMonitors();
      return;
    }
    control = cs;
    screen.dataset.control = cs.input;
    const why = cs.message ? ` (${cs.message})` : '';
    if (cs.input === IS.TAKEN_BACK) {
      const ask = h('button', { type: 'button', id: 'desk-ask-again', class: 'primary' }, 'Ask again');
      ask.addEventListener('click', () => {
        send(T.DESKTOP_COMMAND, { command: 'request-control' });
        ask.disabled = true;
        ask.textContent = 'Asked the user…';
      });
      render(banner, h('div', { class: 'notice warn desk-banner', role: 'alert', dataset: { state: cs.input } }, `The user took back control${why}. Your keyboard and mouse no longer reach the endpoint. `, opened.control && !watch ? ask : null));
      releaseAll();
    } else if (cs.input === IS.ENDED && cs.note === CONTROL_NOTE.FAILED) {
      ended = { text: `The session ended at the endpoint: ${cs.message || 'something failed there'}.` };
      render(banner, h('div', { class: 'notice warn desk-banner', role: 'alert', dataset: { state: cs.input } }, ended.text));
    } else if (cs.input === IS.ENDED) {
      ended = { text: `The user ended the session${why}.` };
      render(banner, h('div', { class: 'notice warn desk-banner', role: 'alert', dataset: { state: cs.input } }, `The user ended the session${why}.`));
    } else if (cs.input === IS.VIEW_ONLY) {
      render(banner, h('div', { class: 'notice info desk-banner', role: 'status', dataset: { state: cs.input } }, `View only${why}: the endpoint does not accept your keyboard and mouse.`));
    } else {
      render(banner, cs.message && !watch ? h('div', { class: 'notice ok desk-banner', role: 'status', dataset: { state: cs.input } }, `You have control (${cs.message}).`) : null);
    }
    showState();
  };

  const showState = () => {
    if (!session) return;
    const parts = [watch ? `Watching ${endpoint}` : `Connected to ${endpoint}`];
    // A read-only watcher is told who drives, not "You have control".
    if (control) parts.push(watch && !opened.control && control.input === IS.ALLOWED ? 'The technician has control' : controlText(control));
    if (info) parts.push(`${info.width}×${info.height}`);
    state.textContent = parts.join(' — ');
  };

  const showMonitors = () => {
    const list = info.monitors || [];
    monitorField.hidden = list.length < 2;
    const want = info.monitor === null || info.monitor === undefined ? '' : String(info.monitor);
    render(monitor, h('option', { value: '' }, 'All monitors'),
      list.map((m) => h('option', { value: String(m.id) }, `${m.name || `Monitor ${m.id}`} (${m.width}×${m.height}${m.primary ? ', primary' : ''})`)));
    monitor.value = want;
  };

  const onVideo = (body) => {
    const v = K.parseVideo(body);
    stats.bytes += body.length;
    const d = decoder;
    d.push(v.data).then(
      () => {
        if (d !== decoder) return;
        stats.frames += 1;
        screen.dataset.drawn = String(v.seq);
        ack(v.seq);
      },
      () => {
        if (d !== decoder) return;
        // Acknowledged all the same (it was consumed); a refresh restarts the stream.
        ack(v.seq);
      },
    );
  };

  const onMessage = (m) => {
    switch (m.type) {
      case T.ACCEPTED:
        state.textContent = watch ? `Watching ${endpoint}` : `Connected to ${endpoint}`;
        stage.hidden = false;
        fitHeight();
        keyTrap.focus();
        break;
      case T.CONTROL_STATE:
        setControl(m.json);
        break;
      case T.DESKTOP_INFO:
        if (!DESKTOP_CODECS.includes(m.json.codec)) {
          // Not one this page offered: it would be drawn wrongly.
          ended = { text: `The endpoint sends the screen in a codec this console does not draw (${m.json.codec}).` };
          if (session) session.close();
          break;
        }
        info = m.json;
        cursorCanvas.width = info.width;
        cursorCanvas.height = info.height;
        cursorBox = null;
        drawCursor();
        screen.dataset.width = String(info.width);
        screen.dataset.height = String(info.height);
        showMonitors();
        showState();
        break;
      case T.VIDEO:
        onVideo(m.body);
        break;
      case T.CURSOR:
        cursor = K.parseCursor(m.body);
        drawCursor();
        break;
      case T.CURSOR_SHAPE: {
        const s = K.parseCursorShape(m.body);
        if (s.width && s.height) s.image = new ImageData(new Uint8ClampedArray(s.rgba), s.width, s.height);
        shapes.set(s.id, s);
        drawCursor();
        break;
      }
      case T.PONG: {
        const n = K.readU64(m.body);
        const sent = stats.pingSent.get(n);
        stats.pingSent.delete(n);
        if (sent !== undefined) {
          const ms = performance.now() - sent;
          rtt.textContent = `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
          rtt.dataset.ms = String(ms);
        }
        break;
      }
      case T.CLIPBOARD:
        clipText.value = dec.decode(m.body);
        clipStatus.textContent = `Received ${m.body.length} bytes from the endpoint's clipboard.`;
        clipPanel.open = true;
        break;
      case T.REFUSED:
        if (m.json.code === REFUSAL_CODE.CONSENT_DENIED) {
          ended = { consent: true, text: `The user at the endpoint denied the session (${m.json.message}).` };
        } else {
          ended = { text: `The endpoint refused the desktop session: ${m.json.message}.` };
        }
        break;
      case T.CLOSED:
        if (!ended) ended = { text: `The gateway closed the session: ${m.json.reason}.` };
        break;
      default:
        break;
    }
  };

  const tick = () => {
    fps.textContent = `${stats.frames} fps`;
    kbps.textContent = `${Math.round((stats.bytes * 8) / 1000)} kbit/s`;
    fps.dataset.fps = String(stats.frames);
    stats.frames = 0;
    stats.bytes = 0;
    const n = stats.nextPing++;
    stats.pingSent.set(n, performance.now());
    if (stats.pingSent.size > 30) stats.pingSent.delete(stats.pingSent.keys().next().value);
    send(T.PING, K.u64Body(n));
  };

  const connect = (withCtl, withClip) => {
    opened = { control: withCtl, clipboard: withClip };
    ended = null;
    control = null;
    info = null;
    shapes.clear();
    render(banner);
    render(note);
    options.hidden = true;
    toolbar.hidden = false;
    reconnect.hidden = true;
    withControl.hidden = true;
    disconnect.disabled = false;
    viewOnly.checked = !withCtl;
    viewOnly.disabled = !withCtl;
    screen.classList.toggle('view-only', !withCtl);
    clipPanel.hidden = !withClip;
    keysMenu.hidden = !withCtl;
    state.textContent = 'Connecting… (the person at the endpoint may be asked first)';
    if (decoder) decoder.close();
    decoder = new DesktopDecoder(canvas, {
      onError: () => {
        const now = performance.now();
        if (now - lastRefresh > 2000) {
          lastRefresh = now;
          send(T.DESKTOP_COMMAND, { command: 'refresh' });
        }
      },
    });
    // The decoder draws every codec, reduced-size pictures included.
    const request = { kind: KIND.DESKTOP, control: withCtl, clipboard: withClip, codecs: [...DESKTOP_CODECS] };
    const s = new Session(watch ? watchTarget(watch.session) : endpoint, KIND.DESKTOP, watch ? null : request, {
      onMessage: (m) => {
        if (session === s) onMessage(m);
      },
      onClose: (reason) => {
        if (session !== s) return;
        session = null;
        clearInterval(pingTimer);
        pingTimer = null;
        const why = ended ? ended.text : `Disconnected: ${reason || 'the session ended'}.`;
        state.textContent = ended && ended.consent ? 'Denied by the user' : 'Disconnected';
        render(banner, h('div', { class: 'error desk-banner', role: 'alert', id: 'desk-ended', dataset: { consent: ended && ended.consent ? 'denied' : null } }, why));
        reconnect.hidden = false;
        withControl.hidden = opened.control || !mayControl || !!watch;
        disconnect.disabled = true;
        reconnect.focus();
      },
    });
    session = s;
    pingTimer = setInterval(tick, 1000);
  };

  // --- Input --------------------------------------------------------------
  const flushMove = () => {
    moveFrame = 0;
    if (!pendingMove || !inputOn()) return;
    send(T.POINTER, K.pointerBody(pendingMove.x, pendingMove.y, buttons));
  };
  const where = (ev) => K.toScreen(ev.clientX, ev.clientY, canvas.getBoundingClientRect(), canvas.width, canvas.height);
  screen.addEventListener('pointermove', (ev) => {
    if (!inputOn()) return;
    pendingMove = where(ev);
    // At most one move per animation frame.
    if (!moveFrame) moveFrame = requestAnimationFrame(flushMove);
  });
  const button = (ev) => {
    if (!inputOn()) return;
    ev.preventDefault();
    pendingMove = where(ev);
    buttons = K.buttonBits(ev.buttons);
    if (moveFrame) cancelAnimationFrame(moveFrame);
    moveFrame = 0;
    send(T.POINTER, K.pointerBody(pendingMove.x, pendingMove.y, buttons));
  };
  screen.addEventListener('pointerdown', (ev) => {
    keyTrap.focus({ preventScroll: true });
    if (!inputOn()) return;
    try {
      screen.setPointerCapture(ev.pointerId);
    } catch {
      /* not capturable */
    }
    button(ev);
  });
  screen.addEventListener('pointerup', button);
  screen.addEventListener('contextmenu', (ev) => ev.preventDefault());
  screen.addEventListener('wheel', (ev) => {
    if (!inputOn()) return;
    ev.preventDefault();
    const { dx, dy } = wheel.take(ev);
    if (dx || dy) send(T.WHEEL, K.wheelBody(dx, dy));
  }, { passive: false });

  keyTrap.addEventListener('keydown', (ev) => {
    // Keyboard users leave the screen with Alt+Shift+ArrowUp (Tab goes to the endpoint).
    if (ev.altKey && ev.shiftKey && ev.key === 'ArrowUp') {
      ev.preventDefault();
      releaseAll();
      (disconnect.disabled ? reconnect : disconnect).focus();
      return;
    }
    if (!inputOn() || ev.isComposing) return;
    const ks = K.keysymForEvent(ev);
    if (ks === null) return;
    ev.preventDefault();
    // The endpoint repeats held keys itself.
    if (ev.repeat && held.has(ev.code)) return;
    held.set(ev.code || `key-${ks}`, ks);
    sendKey(ks, true);
  });
  keyTrap.addEventListener('keyup', (ev) => {
    const id = ev.code || `key-${K.keysymForEvent(ev)}`;
    const ks = held.get(id);
    if (ks === undefined) return;
    ev.preventDefault();
    held.delete(id);
    if (inputOn()) sendKey(ks, false);
  });
  // Text without key events (input methods, dead keys, pasted by the
  // browser): each character pressed and released by its keysym.
  const typeText = (text) => {
    if (!inputOn() || !text) return;
    for (const ch of text) {
      const ks = K.keysymForChar(ch);
      sendKey(ks, true);
      sendKey(ks, false);
    }
  };
  keyTrap.addEventListener('input', (ev) => {
    if (!ev.isComposing) typeText(ev.data || (ev.inputType === 'insertLineBreak' ? '\n' : ''));
    if (!ev.isComposing) keyTrap.value = '';
  });
  keyTrap.addEventListener('compositionend', (ev) => {
    typeText(ev.data);
    keyTrap.value = '';
  });
  keyTrap.addEventListener('blur', () => {
    if (held.size || buttons) releaseAll();
  });

  keysMenu.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-combo]');
    if (!b) return;
    const combo = K.SPECIAL_KEYS.find((k) => k.id === b.dataset.combo);
    if (combo && inputOn()) for (const [ks, down] of K.comboEvents(combo.keys)) sendKey(ks, down);
    keysMenu.open = false;
    keyTrap.focus({ preventScroll: true });
  });
  viewOnly.addEventListener('change', () => {
    if (viewOnly.checked) releaseAll();
    screen.classList.toggle('view-only', viewOnly.checked);
  });
  scale.addEventListener('change', () => screen.classList.toggle('fit', scale.value === 'fit'));
  // "Fit" fits the screen into what is left of the window below the page's
  // heading, toolbar and banners (recomputed when they or the window change).
  const fitHeight = () => {
    if (stage.hidden) return;
    const top = stage.getBoundingClientRect().top + window.scrollY;
    stage.style.setProperty('--desk-fit-height', `${Math.max(160, Math.floor(window.innerHeight - top - 12))}px`);
  };
  const above = new ResizeObserver(fitHeight);
  for (const el of [options, toolbar, banner, clipPanel]) above.observe(el);
  window.addEventListener('resize', fitHeight);
  monitor.addEventListener('change', () => {
    render(note);
    send(T.DESKTOP_COMMAND, { command: 'monitor', monitor: monitor.value === '' ? null : Number(monitor.value) });
  });
  clipSend.addEventListener('click', () => {
    const bytes = enc.encode(clipText.value);
    send(T.CLIPBOARD, bytes);
    clipStatus.textContent = `Sent ${bytes.length} bytes to the endpoint's clipboard.`;
  });
  fullBtn.addEventListener('click', async () => {
    if (document.fullscreenElement) {
      await document.exitFullscreen().catch(() => {});
      return;
    }
    await stage.requestFullscreen().catch(() => {});
    // In full screen the browser can hand over the keys it normally keeps.
    if (navigator.keyboard && navigator.keyboard.lock) navigator.keyboard.lock().catch(() => {});
    keyTrap.focus({ preventScroll: true });
  });
  const onFull = () => {
    fullBtn.textContent = document.fullscreenElement ? 'Leave full screen' : 'Full screen';
    if (!document.fullscreenElement && navigator.keyboard && navigator.keyboard.unlock) navigator.keyboard.unlock();
  };
  document.addEventListener('fullscreenchange', onFull);

  options.addEventListener('submit', (ev) => {
    ev.preventDefault();
    connect(wantControl.checked && mayControl, wantClipboard.checked);
  });
  disconnect.addEventListener('click', () => {
    releaseAll();
    if (session) session.close();
  });
  reconnect.addEventListener('click', () => connect(opened.control, opened.clipboard));
  withControl.addEventListener('click', () => connect(true, opened.clipboard));

  onLeave(() => {
    above.disconnect();
    window.removeEventListener('resize', fitHeight);
    document.removeEventListener('fullscreenchange', onFull);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    clearInterval(pingTimer);
    if (moveFrame) cancelAnimationFrame(moveFrame);
    const s = session;
    session = null;
    if (s) s.close();
    if (decoder) decoder.close();
  });
  if (watch) {
    // Straight to the screen: the watched session's owner chose the options.
    connect(watch.drive, false);
    state.textContent = 'Connecting…';
  } else {
    wantControl.focus();
  }
}
