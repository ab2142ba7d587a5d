// Proof Market — the market page.
//
// Vanilla ES2020, no build step; the node's Content-Security-Policy allows only this
// file as script, so there are no inline handlers and no HTML built from strings: every
// piece of data reaches the DOM as text (`textContent` / text nodes).
//
// Data flow:
// - Public market data (statements, book, trades, ?info, ?statistics, /health) comes
//   from the public endpoints; without a login it is polled every 3 s.
// - After login, one live stream (`GET …/events?statement=K`, Server-Sent Events read
//   with fetch(), since EventSource cannot send the Authorization header) brings the
//   selected statement's book and trades and the user's own order transitions and
//   wallet movements; the page re-reads what a frame names instead of guessing.
'use strict';

(() => {
  const ROOT = '/_db/market/v0_0';
  const POLL_MS = 3000;              // public data without a live stream
  const SLOW_POLL_MS = 15000;        // health, statement list, depth summaries
  const RECONNECT_MS = 1000;         // after the stream ends or breaks
  const STALL_MS = 45000;            // no bytes (not even a keep-alive) for this long: reconnect
  const MAX_ORDER_ROWS = 200;
  const TOKEN_KEY = 'pm.session';    // sessionStorage only: the token dies with the tab

  const STATUS_RANK = { created: 0, processing: 1, completed: 2, withdrawn: 2 };

  const state = {
    statements: [],          // as listed
    depth: new Map(),        // statement key → {bid, ask, orders}
    selected: null,          // statement key
    book: { requests: [], proposals: [] },
    trades: [],              // newest first
    info: null,
    stats: null,
    session: null,           // {user, jwt}
    wallet: null,
    orders: new Map(),       // key → order JSON (own orders, both sides)
    side: 'request',         // trade form tab
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  /** Creates an element: `props` are attributes (`class`, `data-*`, …); children are
   * nodes or strings (always added as text). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const setText = (id, text) => { $(id).textContent = text; };

  const show = (el, on) => el.classList.toggle('hidden', !on);

  function toast(message, kind = 'info') {
    const t = h('div', { class: `toast toast-${kind}`, role: 'status' }, message);
    $('toasts').append(t);
    setTimeout(() => t.classList.add('toast-out'), 4200);
    setTimeout(() => t.remove(), 4700);
  }

  // ---------------------------------------------------------------- formatting

  const amountFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
  const intFmt = new Intl.NumberFormat();
  const fmtAmount = (v) => (v === null || v === undefined ? '—' : amountFmt.format(Number(v)));
  const fmtInt = (v) => (v === null || v === undefined ? '—' : intFmt.format(v));

  const fmtBytes = (n) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);

  function fmtMinutes(m) {
    if (m === null || m === undefined) return 'any';
    if (m < 1) return `${Math.max(1, Math.round(m * 60))} s`;
    return `${Number(m.toFixed(2))} min`;
  }

  const fmtTime = (ms) => new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const fmtDate = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

  function fmtAgo(ms) {
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 5) return 'just now';
    if (s < 3600) return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
    return s < 86400 ? `${Math.floor(s / 3600)} h ago` : new Date(ms).toLocaleDateString();
  }

  /** Runs `fn` once, `ms` after the last of a burst of calls. */
  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  // ---------------------------------------------------------------- HTTP API

  /** An error answer: `status` (0: unreachable) and the node's `errorMessage`. */
  const apiError = (status, message) => Object.assign(new Error(message), { status });

  /** Calls the market; answers the parsed JSON or throws an apiError. `auth` sends the session's token (a 401 then ends the session). */
  async function api(path, { method = 'GET', body, auth = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && state.session) headers.Authorization = `Bearer ${state.session.jwt}`;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .catch(() => { throw apiError(0, 'the market cannot be reached'); });
    const data = await res.json().catch(() => null);
    if (!res.ok && !(path === '/health' && data)) {
      const msg = (data && data.errorMessage) || `${res.status} ${res.statusText}`;
      if (res.status === 401 && auth && state.session) endSession('Your session has expired; please log in again.');
      throw apiError(res.status, msg);
    }
    return data;
  }

  const q = (terms) => encodeURIComponent(JSON.stringify(terms));

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
      if (s && s.user && s.jwt && tokenExpiry(s.jwt) > Date.now()) return s;
    } catch (e) { /* ignore a damaged entry */ }
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  /** The token's expiry (ms), read from its claims; 0 if unreadable. */
  function tokenExpiry(jwt) {
    try {
      const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part)).exp * 1000;
    } catch (e) {
      return 0;
    }
  }

  let renewTimer = null;

  /** Renews the token a few minutes before it expires (`POST …/user/renew`). */
  function scheduleRenew() {
    clearTimeout(renewTimer);
    if (!state.session) return;
    const wait = Math.max(10000, tokenExpiry(state.session.jwt) - Date.now() - 5 * 60000);
    renewTimer = setTimeout(async () => {
      try {
        const r = await api(`${ROOT}/user/renew`, { method: 'POST', auth: true });
        state.session.jwt = r.jwt;
        sessionStorage.setItem(TOKEN_KEY, JSON.stringify(state.session));
        scheduleRenew();
      } catch (e) { /* a 401 ends the session; otherwise the next call will tell */ }
    }, Math.min(wait, 2 ** 31 - 1));
  }

  async function login(user, password) {
    const r = await api('/_open/auth', { method: 'POST', body: { username: user, password } });
    startSession({ user, jwt: r.jwt });
  }

  function startSession(session) {
    state.session = session;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
    scheduleRenew();
    renderAccount();
    refreshWallet();
    loadMyOrders();
    live.follow(state.selected);
  }

  /** Forgets the token locally (other sessions of the user keep theirs). */
  function endSession(message) {
    state.session = null;
    state.wallet = null;
    state.orders.clear();
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(renewTimer);
    live.stop();
    renderAccount();
    renderOrders();
    if (message) toast(message, 'warn');
  }

  function wireLoginForm() {
    let signup = false;
    const form = $('login-form');
    $('login-mode').addEventListener('click', () => {
      signup = !signup;
      show($('login-email'), signup);
      $('login-submit').textContent = signup ? 'Sign up' : 'Log in';
      $('login-mode').textContent = signup ? 'I have an account' : 'Create account';
      $('login-password').autocomplete = signup ? 'new-password' : 'current-password';
      setText('login-error', '');
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const user = $('login-user').value.trim();
      const password = $('login-password').value;
      if (!user || !password) return setText('login-error', 'Enter a user name and a password.');
      $('login-submit').disabled = true;
      setText('login-error', '');
      try {
        if (signup) {
          const body = { user, passwd: password };
          const email = $('login-email').value.trim();
          if (email) body.email = email;
          await api(`${ROOT}/user/signup`, { method: 'POST', body });
          toast(`Welcome, ${user}! Your account is ready.`, 'ok');
        }
        await login(user, password);
        form.reset();
      } catch (e) {
        setText('login-error', e.message);
      } finally {
        $('login-submit').disabled = false;
      }
    });
    $('logout').addEventListener('click', () => endSession(null));
  }

  // ---------------------------------------------------------------- account / wallet

  function renderAccount() {
    const s = state.session;
    show($('login-form'), !s);
    show($('user-panel'), !!s);
    show($('trade-locked'), !s);
    show($('orders-locked'), !s);
    show($('orders-wrap'), !!s);
    renderTradeForm();
    if (!s) return;
    setText('user-name', s.user);
    setText('user-avatar', s.user.slice(0, 1).toUpperCase());
    renderWallet();
  }

  function renderWallet() {
    const w = state.wallet;
    for (const f of ['balance', 'blocked', 'deposit', 'locked']) {
      const el = $(f === 'balance' ? 'balance-available' : `balance-${f}`);
      el.textContent = w ? fmtAmount(w[f]) : '–';
      if (w) el.dataset.value = String(w[f]);
    }
  }

  function setWallet(w) {
    if (!state.session || !w || w.user.toLowerCase() !== state.session.user.toLowerCase()) return;
    const before = state.wallet && state.wallet.balance;
    state.wallet = w;
    renderWallet();
    if (before !== undefined && before !== null && before !== w.balance) {
      const el = $('balance-available');
      el.classList.remove('flash');
      void el.offsetWidth; // restart the animation
      el.classList.add('flash');
    }
  }

  async function refreshWallet() {
    if (!state.session) return;
    try {
      setWallet(await api(`${ROOT}/user/${encodeURIComponent(state.session.user)}/balance`, { auth: true }));
    } catch (e) { /* shown on the next success */ }
  }
  // Movement frames carry deltas that may already be in the last snapshot; re-read instead.
  const refreshWalletSoon = debounce(refreshWallet, 150);

  // ---------------------------------------------------------------- statements

  async function loadStatements() {
    try {
      const list = await api(`${ROOT}/statement?limit=1000`);
      state.statements = list.sort((a, b) => b.createdOn - a.createdOn);
    } catch (e) {
      return;
    }
    setText('stat-statements', fmtInt(state.statements.length));
    setText('statements-count', `${state.statements.length} listed`);
    if (!state.selected || !findStatement(state.selected)) {
      const fromHash = new URLSearchParams(location.hash.slice(1)).get('statement');
      const first = findStatement(fromHash) || state.statements[0];
      if (first) selectStatement(first._key);
    }
    renderStatements();
    renderDetail();
    loadDepthSummaries();
  }

  const findStatement = (key) => state.statements.find((s) => s._key === key) || null;

  /** Best bid / ask and open orders of each listed statement, for the list's cards. */
  async function loadDepthSummaries() {
    const keys = state.statements.slice(0, 40).map((s) => s._key);
    await Promise.all(keys.map(async (k) => {
      try {
        noteDepth(k, await api(`${ROOT}/book/${k}`));
      } catch (e) { /* leave the last known */ }
    }));
    renderStatements();
  }

  function noteDepth(key, book) {
    const sum = (ls) => ls.reduce((n, l) => n + l.ordersAmount, 0);
    state.depth.set(key, {
      bid: book.requests.length ? book.requests[0].cost : null,
      ask: book.proposals.length ? book.proposals[0].cost : null,
      orders: sum(book.requests) + sum(book.proposals),
    });
    let total = 0;
    for (const d of state.depth.values()) total += d.orders;
    setText('stat-open-orders', fmtInt(total));
  }

  /** The circuit summary as chips; `compact` (the list) leaves out the instructions. */
  function circuitChips(c, compact = false) {
    if (!c) return [h('span', { class: 'chip chip-muted' }, 'circuit summary unavailable')];
    return [
      h('span', { class: 'chip chip-fn', title: 'entry function' }, h('span', { class: 'mono' }, `${c.function}()`)),
      h('span', { class: 'chip', title: 'public inputs' }, `${c.public_inputs} input${c.public_inputs === 1 ? '' : 's'}`),
      h('span', { class: 'chip', title: 'circuit rows' }, `${fmtInt(c.rows)} rows`),
      compact ? null : h('span', { class: 'chip', title: 'IR instructions' }, `${fmtInt(c.instructions)} instructions`),
      h('span', { class: 'chip', title: 'size of the circuit IR' }, `${fmtBytes(c.ir_bytes)} IR`),
    ];
  }

  function renderStatements() {
    const filter = $('statement-filter').value.trim().toLowerCase();
    const list = $('statement-list');
    const items = state.statements.filter((s) => !filter ||
      [s.name, s.description, s.sender, s._key, s.circuit && s.circuit.function]
        .some((t) => t && String(t).toLowerCase().includes(filter)));
    // Re-rendered on every book change: keep keyboard focus on the same card.
    const focused = document.activeElement && document.activeElement.closest('[data-statement-key]');
    list.replaceChildren(...items.map(statementCard));
    if (focused) {
      const again = list.querySelector(`[data-statement-key="${CSS.escape(focused.dataset.statementKey)}"] button`);
      if (again) again.focus();
    }
    if (!items.length) {
      list.append(h('li', { class: 'empty' }, state.statements.length ? 'No statement matches.' : 'No statements yet.'));
    }
  }

  function statementCard(s) {
    const d = state.depth.get(s._key);
    const active = s._key === state.selected;
    const desc = (s.description || '').length > 110 ? `${s.description.slice(0, 107)}…` : s.description;
    const btn = h('button', {
      type: 'button', class: `statement${active ? ' active' : ''}`, 'aria-pressed': String(active),
      onclick: () => selectStatement(s._key),
    },
    h('span', { class: 'statement-top' },
      h('strong', { class: 'statement-name' }, s.name),
      h('span', { class: 'mono muted small' }, `#${s._key}`)),
    h('span', { class: 'statement-meta small muted' }, `${s.type} · by ${s.sender}`),
    desc ? h('span', { class: 'statement-desc' }, desc) : null,
    h('span', { class: 'chips' }, circuitChips(s.circuit, true)),
    h('span', { class: 'statement-depth small' },
      h('span', { class: 'bid' }, `Bid ${d && d.bid !== null ? fmtAmount(d.bid) : '—'}`),
      h('span', { class: 'ask' }, `Ask ${d && d.ask !== null ? fmtAmount(d.ask) : '—'}`),
      h('span', { class: 'muted' }, `${d ? d.orders : 0} open`)));
    return h('li', { 'data-testid': 'statement-item', 'data-statement-key': s._key }, btn);
  }

  function selectStatement(key) {
    if (key === state.selected) return;
    state.selected = key;
    history.replaceState(null, '', `#statement=${encodeURIComponent(key)}`);
    state.book = { requests: [], proposals: [] };
    state.trades = [];
    state.info = state.stats = null;
    renderStatements();
    renderDetail();
    renderMarket();
    renderOrders();
    loadMarket(key);
    if (state.session) live.follow(key);
  }

  // ---------------------------------------------------------------- selected statement

  /** Reads the selected statement's book, trades and statistics. `what` limits it. */
  async function loadMarket(key, what = { book: true, trades: true, stats: true }) {
    const base = `${ROOT}/statement/${key}`;
    const jobs = [];
    if (what.book) jobs.push(api(`${ROOT}/book/${key}`).then((b) => { if (key === state.selected) setBook(b); }));
    if (what.trades) jobs.push(api(`${base}/trades?limit=100`).then((t) => { if (key === state.selected) setTrades(t); }));
    if (what.stats) {
      jobs.push(Promise.all([api(`${base}?info`), api(`${base}?statistics`)]).then(([info, stats]) => {
        if (key !== state.selected) return;
        state.info = info;
        state.stats = stats;
        renderStats();
      }));
    }
    await Promise.allSettled(jobs);
  }
  const refreshStatsSoon = debounce(() => state.selected && loadMarket(state.selected, { stats: true }), 300);

  function setBook(b) {
    state.book = { requests: b.requests || [], proposals: b.proposals || [] };
    noteDepth(state.selected, state.book);
    renderBook();
    renderStatements();
  }

  function setTrades(list) {
    state.trades = list.map((t) => ({ ...t, at: t.matched_time }));
    renderMarket();
  }

  /** A trade from the stream, once (a resumed stream may repeat it). */
  function addTrade(t) {
    const id = `${t.request_key}/${t.proposal_key}`;
    if (state.trades.some((x) => `${x.request_key}/${x.proposal_key}` === id)) return;
    state.trades.unshift({ request_key: t.request_key, proposal_key: t.proposal_key, price: t.price, at: t.at });
    state.trades.sort((a, b) => b.at - a.at);
    state.trades.length = Math.min(state.trades.length, 100);
    renderMarket();
  }

  function renderDetail() {
    const s = findStatement(state.selected);
    show($('detail-empty'), !s);
    show($('detail-body'), !!s);
    if (!s) return;
    setText('detail-name', s.name);
    setText('detail-type', s.type);
    setText('detail-key', `statement #${s._key}`);
    setText('detail-description', s.description || 'No description.');
    setText('detail-sender', s.sender);
    setText('detail-created', fmtDate(s.createdOn));
    setText('detail-input-desc', s.input_description || 'not described');
    const a = $('detail-url');
    const safe = /^https?:\/\//i.test(s.url || '');
    show($('detail-url-row'), safe);
    if (safe) {
      a.href = s.url;
      a.textContent = s.url.replace(/^https?:\/\//i, '');
    }
    $('detail-circuit').replaceChildren(...circuitChips(s.circuit));
    renderStats();
  }

  function renderStats() {
    const i = state.info || {};
    const st = state.stats || {};
    const change = i.daily_change;
    const cls = change > 0 ? 'up' : change < 0 ? 'down' : '';
    const items = [
      ['Last price', fmtAmount(i.current), 'stat-last'],
      ["Today's change", change === undefined ? '—' : `${change > 0 ? '+' : ''}${fmtAmount(change)}`, 'stat-change', cls],
      ['Day range', i.min === null || i.min === undefined ? '—' : `${fmtAmount(i.min)} – ${fmtAmount(i.max)}`, 'stat-range'],
      ['Volume today', fmtAmount(i.volume), 'stat-volume'],
      ['Trades today', fmtInt(i.trades), 'stat-trades'],
      ['Proofs delivered', fmtInt(st.completed), 'stat-completed'],
      ['Avg. price', fmtAmount(st.avg_cost), 'stat-avg-cost'],
      ['Avg. generation', st.avg_eval_time === null || st.avg_eval_time === undefined ? '—' : fmtMinutes(st.avg_eval_time), 'stat-avg-eval'],
    ];
    $('stats').replaceChildren(...items.map(([label, value, id, c]) =>
      h('div', { class: 'stat' }, h('dt', {}, label), h('dd', { 'data-testid': id, class: c || null }, value))));
  }

  const renderMarket = () => { renderTrades(); renderChart(); renderBook(); renderStats(); };

  // ---------------------------------------------------------------- book

  function renderBook() {
    const { requests, proposals } = state.book;
    // Bars show cumulative depth from the best price outwards, on one scale for both sides.
    const cum = (ls) => { let n = 0; return ls.map((l) => (n += l.ordersAmount)); };
    const cr = cum(requests);
    const cp = cum(proposals);
    const max = Math.max(1, cr[cr.length - 1] || 0, cp[cp.length - 1] || 0);
    const rows = (levels, c, side) => {
      if (!levels.length) return [h('div', { class: 'book-empty muted small' }, side === 'bid' ? 'No open requests' : 'No open proposals')];
      return levels.slice(0, 15).map((l, i) => {
        const bar = h('span', { class: `depth depth-${side}` });
        bar.style.width = `${(100 * c[i]) / max}%`;
        return h('div', { class: 'book-row', 'data-testid': `book-${side}-level`, 'data-cost': String(l.cost) },
          bar,
          h('span', { class: `price ${side}` }, fmtAmount(l.cost)),
          h('span', { class: 'muted' }, fmtMinutes(l.eval_time)),
          h('span', {}, fmtInt(l.ordersAmount)));
      });
    };
    $('book-bids').replaceChildren(...rows(requests, cr, 'bid'));
    $('book-asks').replaceChildren(...rows(proposals, cp, 'ask'));
    const bid = requests.length ? requests[0].cost : null;
    const ask = proposals.length ? proposals[0].cost : null;
    setText('book-spread', bid !== null && ask !== null ? `spread ${fmtAmount(ask - bid)}` : '');
    const sum = (ls) => ls.reduce((n, l) => n + l.ordersAmount, 0);
    const last = state.trades.length ? state.trades[0].price : null;
    $('book-foot').replaceChildren(...[
      ['Best bid', fmtAmount(bid), 'bid'], ['Best ask', fmtAmount(ask), 'ask'],
      ['Last trade', fmtAmount(last), ''], ['Open orders', fmtInt(sum(requests) + sum(proposals)), ''],
    ].map(([k, v, c]) => h('div', {}, h('dt', {}, k), h('dd', { class: c || null }, v))));
  }

  // ---------------------------------------------------------------- trades and chart

  function renderTrades() {
    const rows = state.trades.map((t) => h('tr', { 'data-testid': 'trade-row', 'data-trade-key': t.request_key },
      h('td', { title: fmtDate(t.at) }, fmtTime(t.at)),
      h('td', { class: 'num strong' }, fmtAmount(t.price)),
      h('td', { class: 'mono muted' }, t.request_key),
      h('td', { class: 'mono muted' }, t.proposal_key)));
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: '4', class: 'empty' }, 'No trades yet.')));
    $('trades-body').replaceChildren(...rows);
    setText('trades-count', state.trades.length ? `${state.trades.length} shown` : '');
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }

  /** "Nice" tick values covering [lo, hi]. */
  function ticks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / n;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw);
    const out = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.5; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  /** The price chart: an SVG line over the trades' times, drawn at the box's width. */
  function renderChart() {
    const box = $('price-chart');
    const pts = state.trades.slice().reverse();
    box.dataset.points = String(pts.length);
    if (!pts.length) {
      box.replaceChildren(h('div', { class: 'chart-empty muted' }, 'No trades yet — the chart fills in as proofs are bought.'));
      return;
    }
    const W = Math.max(280, box.clientWidth || 560);
    const H = 230;
    const pad = { l: 56, r: 16, t: 14, b: 28 };
    const prices = pts.map((p) => p.price);
    let lo = Math.min(...prices);
    let hi = Math.max(...prices);
    // Some room above and below, so the line never runs along the frame.
    const margin = lo === hi ? Math.max(1, lo * 0.1) : (hi - lo) * 0.1;
    lo = Math.max(0, lo - margin);
    hi += margin;
    const yt = ticks(lo, hi, 4);
    lo = Math.min(lo, yt[0]);
    hi = Math.max(hi, yt[yt.length - 1]);
    let t0 = pts[0].at;
    let t1 = pts[pts.length - 1].at;
    if (t0 === t1) { t0 -= 60000; t1 += 60000; }
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
    const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (H - pad.t - pad.b);

    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Trade prices over time' });
    const grad = s('linearGradient', { id: 'pm-area', x1: 0, y1: 0, x2: 0, y2: 1 },
      s('stop', { offset: '0%', 'stop-color': '#4f46e5', 'stop-opacity': 0.22 }),
      s('stop', { offset: '100%', 'stop-color': '#4f46e5', 'stop-opacity': 0 }));
    svg.append(s('defs', {}, grad));
    for (const v of yt) {
      if (v < lo || v > hi) continue;
      svg.append(s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
      svg.append(s('text', { class: 'axis', x: pad.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, fmtAmount(v)));
    }
    for (const t of [t0, (t0 + t1) / 2, t1]) {
      svg.append(s('text', { class: 'axis', x: x(t), y: H - 8, 'text-anchor': t === t0 ? 'start' : t === t1 ? 'end' : 'middle' }, fmtTime(t)));
    }
    // A step line: the price holds until the next trade.
    let d = '';
    pts.forEach((p, i) => {
      d += i === 0 ? `M${x(p.at)},${y(p.price)}` : `H${x(p.at)}V${y(p.price)}`;
    });
    const last = pts[pts.length - 1];
    const area = `${d}H${x(last.at)}V${H - pad.b}H${x(pts[0].at)}Z`;
    svg.append(s('path', { class: 'area', d: area, fill: 'url(#pm-area)' }));
    svg.append(s('path', { class: 'line', d }));
    for (const p of pts.slice(-60)) {
      svg.append(s('circle', { class: 'dot', cx: x(p.at), cy: y(p.price), r: 3.2 },
        s('title', {}, `${fmtAmount(p.price)} at ${fmtDate(p.at)}`)));
    }
    svg.append(s('line', { class: 'last', x1: pad.l, x2: W - pad.r, y1: y(last.price), y2: y(last.price) }));
    box.replaceChildren(svg);
    setText('chart-caption', `${pts.length} trade${pts.length === 1 ? '' : 's'} · last ${fmtAmount(last.price)}`);
  }

  // ---------------------------------------------------------------- my orders

  async function loadMyOrders() {
    if (!state.session) return;
    const terms = q([{ key: 'sender', value: state.session.user }]);
    try {
      const [reqs, props] = await Promise.all([
        api(`${ROOT}/request?q=${terms}&limit=1000`, { auth: true }),
        api(`${ROOT}/proposal?q=${terms}&limit=1000`, { auth: true }),
      ]);
      for (const o of [...reqs, ...props]) mergeOrder(o);
      renderOrders();
    } catch (e) {
      if (e.status !== 401) toast(`Could not load your orders: ${e.message}`, 'error');
    }
  }

  const sideOf = (o) => (o._id && o._id.startsWith('proposal/') ? 'proposal' : 'request');

  /** Keeps the newer of what we hold and `o` (a re-read may answer before a frame that
   * came later, or after). */
  function mergeOrder(o) {
    const cur = state.orders.get(o._key);
    if (cur && cur.updatedOn > o.updatedOn) return;
    if (cur && cur.updatedOn === o.updatedOn && STATUS_RANK[cur.status] > STATUS_RANK[o.status]) return;
    state.orders.set(o._key, { ...cur, ...o });
  }

  /** Applies a transition named by a frame to one of our orders, if we hold it. */
  function patchOrder(key, at, fields) {
    const o = state.orders.get(key);
    if (!o) return false;
    if (o.updatedOn > at) return true; // already newer
    state.orders.set(key, { ...o, ...fields, updatedOn: at });
    return true;
  }

  /** Re-reads orders the stream named that we do not hold yet; keeps our own. */
  async function fetchOrders(pairs) {
    await Promise.allSettled(pairs.map(async ([side, key]) => {
      const o = await api(`${ROOT}/${side}/${key}`, { auth: true });
      if (state.session && o.sender.toLowerCase() === state.session.user.toLowerCase()) mergeOrder(o);
    }));
    renderOrders();
  }

  function renderOrders() {
    const body = $('orders-body');
    if (!state.session) { body.replaceChildren(); return; }
    const only = $('orders-only-selected').checked;
    const list = [...state.orders.values()]
      .filter((o) => !only || o.statement_key === state.selected)
      .sort((a, b) => b.createdOn - a.createdOn || Number(b._key) - Number(a._key))
      .slice(0, MAX_ORDER_ROWS);
    const rows = list.map(orderRow);
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: '9', class: 'empty' }, 'No orders yet — place one with the Trade panel.')));
    body.replaceChildren(...rows);
  }

  function orderRow(o) {
    const side = sideOf(o);
    const st = findStatement(o.statement_key);
    const proof = o.proof_key
      ? h('button', { type: 'button', class: 'btn btn-chip', 'data-field': 'proof-key', onclick: () => showProof(o.proof_key) }, `#${o.proof_key}`)
      : h('span', { class: 'muted', 'data-field': 'proof-key' }, '—');
    const action = o.status === 'created'
      ? h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'data-testid': 'withdraw', onclick: () => withdraw(side, o._key) }, 'Withdraw')
      : null;
    return h('tr', { 'data-order-key': o._key, 'data-side': side, class: o.statement_key === state.selected ? 'current' : null },
      h('td', { class: 'mono' }, `#${o._key}`),
      h('td', {}, h('span', { class: `side side-${side}` }, side === 'request' ? 'Buy' : 'Sell')),
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => selectStatement(o.statement_key) }, st ? st.name : `#${o.statement_key}`)),
      h('td', { class: 'num' }, fmtAmount(o.cost)),
      h('td', { class: 'num', 'data-field': 'price' }, o.price === undefined ? '—' : fmtAmount(o.price)),
      h('td', {}, h('span', { class: `badge badge-${o.status}`, 'data-field': 'status' }, o.status)),
      h('td', { class: 'muted', title: fmtDate(o.updatedOn) }, fmtAgo(o.updatedOn)),
      h('td', {}, proof),
      h('td', { class: 'num' }, action));
  }

  async function withdraw(side, key) {
    try {
      mergeOrder(await api(`${ROOT}/${side}/${key}`, { method: 'DELETE', auth: true }));
      renderOrders();
      toast(`Order #${key} withdrawn.`, 'ok');
    } catch (e) {
      toast(`Could not withdraw #${key}: ${e.message}`, 'error');
    }
  }

  async function showProof(key) {
    const dl = $('proof-fields');
    dl.replaceChildren(h('dt', {}, 'Loading…'));
    setText('proof-title', `Proof #${key}`);
    const dialog = $('proof-dialog');
    if (!dialog.open) dialog.showModal();
    try {
      const p = await api(`${ROOT}/proof/${key}`, { auth: true });
      const fields = [
        ['Statement', `#${p.statement_key}`], ['Request', `#${p.request_key}`], ['Proposal', `#${p.proposal_key}`],
        ['Producer', p.sender], ['Proof system', p.proof_system || '—'],
        ['Generation time', fmtMinutes(p.generation_time)], ['Delivered', fmtDate(p.createdOn)],
        ['Public input', JSON.stringify(p.input)], ['Output', p.output || '—'],
      ];
      dl.replaceChildren(...fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)]));
    } catch (e) {
      dl.replaceChildren(h('dt', { class: 'form-error' }, e.message));
    }
  }

  // ---------------------------------------------------------------- trade forms

  function renderTradeForm() {
    const logged = !!state.session;
    show($('request-form'), logged && state.side === 'request');
    show($('proposal-form'), logged && state.side === 'proposal');
    for (const b of document.querySelectorAll('.tab')) {
      const on = b.dataset.side === state.side;
      b.classList.toggle('active', on);
      b.setAttribute('aria-selected', String(on));
    }
  }

  function wireTradeForms() {
    for (const b of document.querySelectorAll('.tab')) {
      b.addEventListener('click', () => { state.side = b.dataset.side; renderTradeForm(); });
    }
    for (const side of ['request', 'proposal']) {
      const form = $(`${side}-form`);
      form.addEventListener('submit', (ev) => { ev.preventDefault(); placeOrder(side, form); });
    }
  }

  async function placeOrder(side, form) {
    const err = form.querySelector('.form-error');
    err.textContent = '';
    if (!state.selected) return (err.textContent = 'Select a statement first.');
    const cost = Number(form.elements.cost.value);
    if (!(cost > 0)) return (err.textContent = 'Enter a price above 0.');
    const body = { statement_key: state.selected, cost };
    const evalTime = form.elements.eval_time.value;
    if (evalTime) body.eval_time = Number(evalTime);
    if (side === 'request') {
      try {
        body.input = JSON.parse(form.elements.input.value);
      } catch (e) {
        return (err.textContent = 'The public input must be JSON, e.g. [{"field": 1}, {"field": 11}].');
      }
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const o = await api(`${ROOT}/${side}`, { method: 'POST', body, auth: true });
      mergeOrder(o);
      renderOrders();
      refreshWalletSoon();
      toast(`${side === 'request' ? 'Request' : 'Proposal'} #${o._key} placed — ${o.status}.`, 'ok');
      form.elements.cost.value = '';
    } catch (e) {
      err.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- live stream

  /** The user's live stream: one fetch() read as Server-Sent Events, reopened after it
   * ends or breaks (with Last-Event-ID, so missed events are replayed), or anew when
   * another statement is selected. */
  const live = (() => {
    let ctl = null;          // AbortController of the current connection
    let lastId = null;       // last `id:` seen, sent back as Last-Event-ID
    let generation = 0;      // bumps on restart/stop: a stale loop exits
    let following;           // the statement of the running stream (undefined: none)
    let connected = false;

    function setStatus(text, cls) {
      const el = $('stream-status');
      el.textContent = text;
      el.className = `live live-${cls}`;
      el.dataset.state = cls;
    }

    function stop() {
      generation += 1;
      if (ctl) ctl.abort();
      ctl = null;
      following = undefined;
      connected = false;
      setStatus('offline', 'off');
    }

    /** Streams `stmt`'s public frames (and the user's own): a new stream, with no
     * Last-Event-ID, unless one already follows `stmt`. */
    function follow(stmt) {
      if (following === stmt || !state.session) return;
      stop();
      lastId = null;
      following = stmt;
      run(generation, stmt);
    }

    async function run(gen, stmt) {
      let delay = RECONNECT_MS;
      while (gen === generation && state.session) {
        setStatus(lastId ? 'reconnecting…' : 'connecting…', 'wait');
        try {
          await connect(gen, stmt);
          delay = RECONNECT_MS; // ended cleanly (e.g. `lagged`): reconnect soon
        } catch (e) {
          if (gen !== generation) return;
          if (e.status === 401) return endSession('Your session has expired; please log in again.');
          if (e.status === 404) { setStatus('statement gone', 'off'); return; }
          if (e.status === 400 && lastId) lastId = null; // an id the node no longer takes
          delay = e.retryAfter || Math.min(delay * 2, 15000);
        }
        connected = false;
        if (gen !== generation) return;
        setStatus('reconnecting…', 'wait');
        await new Promise((r) => setTimeout(r, delay));
      }
    }

    async function connect(gen, stmt) {
      ctl = new AbortController();
      const headers = { Authorization: `Bearer ${state.session.jwt}`, Accept: 'text/event-stream' };
      if (lastId) headers['Last-Event-ID'] = lastId;
      const url = `${ROOT}/events${stmt ? `?statement=${encodeURIComponent(stmt)}` : ''}`;
      const res = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
      if (!res.ok || !res.body) {
        const err = new Error(`stream refused: ${res.status}`);
        err.status = res.status;
        err.retryAfter = Number(res.headers.get('Retry-After')) * 1000 || 0;
        throw err;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      let stall = null;
      const watchdog = () => { clearTimeout(stall); stall = setTimeout(() => ctl && ctl.abort(), STALL_MS); };
      watchdog();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== generation) break;
          watchdog();
          buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const frame = parseBlock(block);
            if (frame && gen === generation) dispatch(frame, stmt);
          }
        }
      } finally {
        clearTimeout(stall);
      }
    }

    /** One SSE block → {id, event, data}; null for comments (keep-alives) only. */
    function parseBlock(block) {
      let event = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
      if (id !== null) lastId = id;
      if (!data.length) return null;
      try {
        return { id, event, data: JSON.parse(data.join('\n')) };
      } catch (e) {
        return null; // not ours: skip it
      }
    }

    function dispatch(frame, stmt) {
      if (frame.event === 'hello') {
        connected = true;
        setStatus('live', 'on');
        // A fresh stream (not a resume) may have missed what happened before it: re-read.
        if (!frame.data.resumed) resync(stmt, false);
        return;
      }
      try {
        onFrame(frame.event, frame.data, stmt);
      } catch (e) {
        console.error('live frame', frame.event, e);
      }
    }

    return { follow, stop, isLive: () => connected };
  })();

  /** Re-reads everything a stream could have told us. */
  function resync(stmt, full) {
    loadMyOrders();
    refreshWallet();
    if (stmt && stmt === state.selected) loadMarket(stmt, { book: full, trades: true, stats: true });
  }

  /** Applies one live frame. Own frames name orders by key (`proved`, `withdrawn`,
   * `rolled_back`, `resold` also come as the statement's public frames: only orders we
   * hold change); public frames carry the selected statement's book and trades. Frames
   * may repeat after a resume, so each is applied idempotently. */
  function onFrame(event, d, stmt) {
    const forSelected = d.statement_key === state.selected;
    let mine = false; // did one of our orders change?
    switch (event) {
      case 'wallet': setWallet(d); break;
      case 'movement': refreshWalletSoon(); break;
      case 'book': if (forSelected) setBook(d); break;
      case 'trade': if (forSelected) { addTrade(d); refreshStatsSoon(); } break;
      case 'placed': mergeOrder(d); mine = true; break;
      case 'matched': {
        // Always concerns us; the other side may be someone else's order.
        const fields = { status: 'processing', price: d.price, matched_time: d.at };
        // (`|`, not `||`: both are applied.)
        mine = patchOrder(d.request_key, d.at, { ...fields, proposal_key: d.proposal_key })
          | patchOrder(d.proposal_key, d.at, { ...fields, request_key: d.request_key });
        if (!mine) fetchOrders([['request', d.request_key], ['proposal', d.proposal_key]]);
        if (forSelected) addTrade(d);
        break;
      }
      case 'proved':
        mine = patchOrder(d.request_key, d.at, { status: 'completed', proof_key: d.proof_key })
          | patchOrder(d.proposal_key, d.at, { status: 'completed', proof_key: d.proof_key });
        if (forSelected) refreshStatsSoon();
        break;
      case 'resold': mine = patchOrder(d.request_key, d.at, { status: 'completed', proof_key: d.proof_key, price: d.price }); break;
      case 'withdrawn': mine = patchOrder(d.key, d.at, { status: 'withdrawn' }); break;
      case 'rolled_back':
        // The request goes back to the book, the late proposal is withdrawn: re-read both.
        if (state.orders.has(d.request_key) || state.orders.has(d.proposal_key)) {
          fetchOrders([['request', d.request_key], ['proposal', d.proposal_key]]);
        }
        break;
      case 'reset':
        toast('Live updates were interrupted; refreshing.', 'warn');
        resync(stmt, true);
        break;
      default: // `order` (the book frame after it has the depth); `lagged` (the node ends
        break; // the stream, and the loop reconnects with Last-Event-ID)
    }
    if (mine) {
      renderOrders();
      refreshWalletSoon();
    }
  }

  // ---------------------------------------------------------------- polling

  async function pollHealth() {
    const el = $('health');
    try {
      const hl = await api('/health');
      const ok = hl.status === 'ok';
      el.textContent = ok ? 'healthy' : hl.status;
      el.className = `health ${ok ? 'health-ok' : 'health-warn'}`;
      el.title = `node ${hl.node} · ${hl.live_nodes} live node${hl.live_nodes === 1 ? '' : 's'} · Redis ${hl.redis}`;
      setText('footer-node', `node ${hl.node} · ${hl.live_nodes} live`);
    } catch (e) {
      el.textContent = 'unreachable';
      el.className = 'health health-down';
    }
  }

  /** Public data of the selected statement, when no live stream brings it. */
  function pollMarket() {
    if (!state.selected || document.hidden) return;
    if (state.session && live.isLive()) return;
    loadMarket(state.selected);
  }

  function slowPoll() {
    pollHealth();
    loadStatements();
    if (state.session && live.isLive() && state.selected) loadMarket(state.selected, { stats: true });
    renderOrders(); // keeps "updated … ago" fresh
  }

  // ---------------------------------------------------------------- start

  function init() {
    wireLoginForm();
    wireTradeForms();
    $('statement-filter').addEventListener('input', renderStatements);
    $('orders-only-selected').addEventListener('change', renderOrders);
    window.addEventListener('resize', debounce(renderChart, 150));
    window.addEventListener('hashchange', () => {
      const k = new URLSearchParams(location.hash.slice(1)).get('statement');
      if (k && findStatement(k)) selectStatement(k);
    });
    // A stored session shows at once; its stream opens once a statement is selected.
    state.session = loadSession();
    renderAccount();
    renderMarket();
    pollHealth();
    loadStatements().then(() => { if (state.session) startSession(state.session); });
    setInterval(pollMarket, POLL_MS);
    setInterval(slowPoll, SLOW_POLL_MS);
  }

  init();
})();
