// The console's pages. Each takes the page element and the route argument, fills the page,
// and may return a function that stops its timers and sockets when the user leaves.

import {
  session, isAdmin, canSubmit, h, append, clear, replace, api, query, ApiError,
  SEVERITIES, SEVERITY_COLORS, sevRank, badge, severity, fmtTime, ago, num, timeEl, get,
  notice, errorNotice, spinner, jsonBlock, card, table, tableRow, kv, field, select, button,
  busy, toLocalInput, fromLocalInput, color, timeChart, barList,
} from './ui.js';

function header(title, ...extra) {
  return h('header', { class: 'page-head' }, h('h1', {}, title), h('div', { class: 'actions' }, extra));
}

function needs(role) {
  return `needs the ${role} role; you are ${session.me.role}`;
}

// ---- Overview ----------------------------------------------------------------------------

const RANGES = {
  '1h': { secs: 3600, bucket: 60, label: 'last hour' },
  '24h': { secs: 86400, bucket: 900, label: 'last 24 hours' },
  '7d': { secs: 7 * 86400, bucket: 3 * 3600, label: 'last 7 days' },
};

async function overview(page) {
  let range = sessionStorage.getItem('vigil.range') || '1h';
  const body = h('div', { class: 'overview' }, spinner());
  const rangeSel = select(Object.keys(RANGES).map((k) => [k, RANGES[k].label]), range, {
    id: 'overview-range',
    on: { change: () => { range = rangeSel.value; sessionStorage.setItem('vigil.range', range); load(); } },
  });
  append(page, header('Overview', rangeSel), body);

  async function load() {
    const r = RANGES[range];
    const until = new Date();
    const since = new Date(until.getTime() - r.secs * 1000);
    const [act, open, agents, health, net, logs, analyzers, recent] = await Promise.all([
      api('/api/v1/activity' + query({ since: since.toISOString(), until: until.toISOString(), bucket: r.bucket })),
      api('/api/v1/incidents' + query({ status: 'open', limit: 1000 })),
      api('/api/v1/agents'),
      api('/api/v1/health'),
      api('/api/v1/network/status').catch((e) => ({ unavailable: e.message })),
      api('/api/v1/logs/status').catch((e) => ({ unavailable: e.message })),
      api('/api/v1/analyzers'),
      api('/api/v1/findings' + query({ limit: 8 })),
    ]);
    const buckets = act.buckets || [];
    const totalEvents = buckets.reduce((a, b) => a + b.events, 0);
    const totalFindings = buckets.reduce((a, b) => a + b.findings, 0);
    // events/s over the last 5 minutes (or the last bucket when buckets are longer).
    const recentBuckets = buckets.slice(-Math.max(1, Math.ceil(300 / act.bucket_secs)));
    const recentSecs = Math.min(
      recentBuckets.length * act.bucket_secs,
      (until.getTime() - new Date(recentBuckets[0] ? recentBuckets[0].start : until).getTime()) / 1000,
    ) || act.bucket_secs;
    const eps = recentBuckets.reduce((a, b) => a + b.events, 0) / Math.max(recentSecs, 1);
    const agentList = agents.agents || [];
    const online = agentList.filter((a) => a.status === 'online').length;
    const openCount = (open.incidents || []).length;

    const bySev = {};
    const byAnalyzer = {};
    for (const b of buckets) {
      for (const [k, v] of Object.entries(b.by_severity || {})) bySev[k] = (bySev[k] || 0) + v;
      for (const [k, v] of Object.entries(b.by_analyzer || {})) byAnalyzer[k] = (byAnalyzer[k] || 0) + v;
    }
    const topAnalyzers = Object.entries(byAnalyzer).sort((a, b) => b[1] - a[1]);
    const shown = topAnalyzers.slice(0, 6).map(([k]) => k);
    const analyzerSeries = shown.map((k, i) => ({ key: k, label: k, color: color(i) }));
    if (topAnalyzers.length > shown.length) analyzerSeries.push({ key: '(other)', label: 'other', color: '#b0b7c3' });

    const day = r.secs > 86400 / 2;
    const eventsPoints = buckets.map((b) => ({ t: b.start, values: { events: b.events } }));
    const sevPoints = buckets.map((b) => ({ t: b.start, values: b.by_severity || {} }));
    const anPoints = buckets.map((b) => {
      const values = {};
      for (const [k, v] of Object.entries(b.by_analyzer || {})) {
        const key = shown.includes(k) ? k : '(other)';
        values[key] = (values[key] || 0) + v;
      }
      return { t: b.start, values };
    });

    const stat = (id, label, value, sub, href) => h(href ? 'a' : 'div', { class: 'stat', id, href: href || null },
      h('span', { class: 'stat-label' }, label), h('strong', {}, value), h('small', {}, sub));

    replace(body,
      h('div', { class: 'stats' },
        stat('stat-eps', 'Events/s', num(eps, eps < 10 ? 2 : 0), `over the last ${Math.round(recentSecs / 60) || 1} min`),
        stat('stat-events', 'Events', num(totalEvents), r.label),
        stat('stat-findings', 'Findings', num(totalFindings), r.label, '#/live'),
        stat('stat-incidents', 'Open incidents', openCount >= 1000 ? '1000+' : num(openCount), 'status open', '#/incidents'),
        stat('stat-agents', 'Agents online', `${online} / ${agentList.length}`, 'heartbeat in the last minutes', '#/agents'),
        stat('stat-queue', 'Ingest queue', num(health.ingest_queue), `Vigil ${health.version}`)),
      h('div', { class: 'grid2' },
        card('Events per bucket', timeChart(eventsPoints, [{ key: 'events', label: `events per ${bucketLabel(act.bucket_secs)}`, color: '#3f6fd8' }], { label: 'events over time', dayLabels: day })),
        card('Findings by severity', timeChart(sevPoints, SEVERITIES.slice().reverse().map((k) => ({ key: k, label: k, color: SEVERITY_COLORS[k] })), { label: 'findings by severity over time', dayLabels: day })),
        card('Findings by analyzer', timeChart(anPoints, analyzerSeries, { label: 'findings by analyzer over time', dayLabels: day }),
          barList(topAnalyzers.slice(0, 10).map(([label, value], i) => ({ label, value, color: i < 6 ? color(i) : '#b0b7c3' })), { empty: 'No findings in this range.' })),
        card('Models and analyzers',
          h('h3', {}, 'Network detector'), net.unavailable ? notice(net.unavailable, 'warn') : kv(pick(net, ['enabled', 'model', 'connections_scored_since_start', 'drift', 'training_now'])),
          h('h3', {}, 'Log analyzer'), logs.unavailable ? notice(logs.unavailable, 'warn') : kv(pick(logs, ['active_version', 'active', 'detectors', 'open_sessions', 'templates', 'recorded_sessions', 'training'])),
          h('h3', {}, 'Analyzers running'), h('p', { class: 'chips' }, (analyzers.analyzers || []).map((a) => badge(a))))),
      card('Latest findings', findingsTable(recent.findings || [])));
  }
  await load().catch((e) => replace(body, errorNotice(e)));
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 15000);
  return () => clearInterval(timer);
}

function bucketLabel(secs) {
  if (secs % 3600 === 0) return `${secs / 3600} h`;
  if (secs % 60 === 0) return `${secs / 60} min`;
  return `${secs} s`;
}

// The named fields of a status object, or all of it when none of them is there.
function pick(obj, keys) {
  const out = {};
  for (const k of keys) if (obj && k in obj) out[k] = obj[k];
  return Object.keys(out).length ? out : obj;
}

const FINDING_COLUMNS = [
  { label: 'Time', cell: (f) => timeEl(f['@timestamp']) },
  { label: 'Severity', cell: (f) => severity(f.severity) },
  { label: 'Analyzer', cell: (f) => h('code', {}, f.analyzer) },
  { label: 'Host', cell: (f) => f['host.name'] || '—' },
  { label: 'Summary', class: 'wide', cell: (f) => findingSummary(f) },
];

function findingsTable(findings, opts = {}) {
  return table(FINDING_COLUMNS, findings, { empty: opts.empty || 'No findings.', id: opts.id });
}

function findingSummary(f) {
  const d = h('details', { class: 'finding' },
    h('summary', { class: 'finding-summary' }, f.summary || '(no summary)',
      (f.techniques || []).map((t) => badge(t, 'tech'))),
    h('div', { class: 'finding-detail' },
      h('p', {}, 'Score ', h('strong', {}, num(f.score, 1)), ' · events ', (f.event_ids || []).map((id) => h('a', { href: `#/events/${encodeURIComponent(id)}` }, h('code', {}, id), ' '))),
      jsonBlock(f.evidence ?? null, 'evidence')));
  return d;
}

// ---- Live findings -------------------------------------------------------------------------

async function live(page) {
  const analyzers = await api('/api/v1/analyzers').catch(() => ({ analyzers: [] }));
  const analyzerSel = select(['', ...(analyzers.analyzers || [])], '', { id: 'live-analyzer' });
  const sevSel = select(['', ...SEVERITIES], '', { id: 'live-severity' });
  const text = h('input', { id: 'live-text', type: 'search', placeholder: 'host, summary, technique…' });
  const status = h('span', { id: 'live-status', class: 'badge' }, 'connecting');
  const pauseBtn = button('Pause', () => { paused = !paused; pauseBtn.textContent = paused ? `Resume (${held.length})` : 'Pause'; if (!paused) { held.splice(0).forEach(add); } }, { id: 'live-pause', class: 'secondary' });
  const counter = h('span', { class: 'muted', id: 'live-count' }, '0 received');
  const tbody = h('tbody', { id: 'live-list' });
  const cols = FINDING_COLUMNS;
  const empty = h('tr', { class: 'placeholder' }, h('td', { colspan: 5, class: 'empty' }, 'Waiting for findings… new ones appear here the moment the pipeline makes them.'));
  tbody.append(empty);
  append(page,
    header('Live findings', status, counter, pauseBtn),
    h('div', { class: 'filters' },
      field('Analyzer', analyzerSel, 'filters on the server'),
      field('Severity at least', sevSel),
      field('Text', text)),
    h('table', { class: 'grid' }, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c.label)))), tbody));

  let ws = null;
  let closed = false;
  let paused = false;
  let received = 0;
  let retry = 500;
  let retryTimer = null;
  const held = [];
  const MAX_ROWS = 500;

  function visible(f) {
    if (sevSel.value && sevRank(f.severity) < sevRank(sevSel.value)) return false;
    const t = text.value.trim().toLowerCase();
    if (t && !JSON.stringify([f.summary, f['host.name'], f.analyzer, f.techniques]).toLowerCase().includes(t)) return false;
    return true;
  }
  function add(f) {
    if (empty.parentNode) empty.remove();
    const row = tableRow(cols, f, { rowAttrs: () => ({ class: 'finding-row', dataset: { severity: f.severity } }) });
    row._finding = f;
    row.hidden = !visible(f);
    tbody.prepend(row);
    while (tbody.children.length > MAX_ROWS) tbody.lastChild.remove();
  }
  function refilter() {
    for (const row of tbody.querySelectorAll('tr.finding-row')) row.hidden = !visible(row._finding);
  }
  sevSel.addEventListener('change', refilter);
  text.addEventListener('input', refilter);

  function connect() {
    if (closed) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = query({ analyzer: analyzerSel.value, access_token: session.token || undefined });
    ws = new WebSocket(`${proto}://${location.host}/api/v1/stream${q}`);
    status.textContent = 'connecting';
    status.className = 'badge';
    ws.onopen = () => { status.textContent = 'live'; status.className = 'badge ok'; retry = 500; };
    ws.onmessage = (m) => {
      let f;
      try { f = JSON.parse(m.data); } catch (_) { return; }
      received += 1;
      counter.textContent = `${received} received`;
      if (paused) { held.push(f); if (held.length > MAX_ROWS) held.shift(); pauseBtn.textContent = `Resume (${held.length})`; return; }
      add(f);
    };
    ws.onclose = () => {
      if (closed) return;
      status.textContent = 'reconnecting';
      status.className = 'badge warn';
      retryTimer = setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }
  analyzerSel.addEventListener('change', () => { if (ws) { ws.onclose = null; ws.close(); } connect(); });
  connect();
  return () => { closed = true; clearTimeout(retryTimer); if (ws) ws.close(); };
}

// ---- Incidents -----------------------------------------------------------------------------

async function incidents(page, id) {
  if (id) return incidentDetail(page, id);
  const statusSel = select(['', 'open', 'acknowledged', 'resolved', 'false_positive'], sessionStorage.getItem('vigil.inc.status') ?? 'open', { id: 'incident-status-filter' });
  const sevSel = select(['', ...SEVERITIES], '', { id: 'incident-severity-filter' });
  const host = h('input', { id: 'incident-host-filter', placeholder: 'host.name' });
  const out = h('div', {});
  const more = button('Load more', () => load(true), { class: 'secondary', hidden: true });
  let next = null;
  let rows = [];
  const cols = [
    { label: 'Severity', cell: (i) => severity(i.severity) },
    { label: 'Title', class: 'wide', cell: (i) => h('a', { class: 'incident-link', href: `#/incidents/${encodeURIComponent(i.id)}` }, i.title) },
    { label: 'Status', cell: (i) => badge(i.status, `st-${i.status}`) },
    { label: 'Host', cell: (i) => i['host.name'] || '—' },
    { label: 'Findings', cell: (i) => num((i.finding_ids || []).length) },
    { label: 'Last seen', cell: (i) => h('span', { title: i.last_seen }, ago(i.last_seen)) },
    { label: 'Assignee', cell: (i) => i.assignee || '—' },
  ];
  async function load(append_) {
    sessionStorage.setItem('vigil.inc.status', statusSel.value);
    try {
      const r = await api('/api/v1/incidents' + query({
        status: statusSel.value, severity: sevSel.value, 'host.name': host.value.trim(), limit: 100, next: append_ ? next : undefined,
      }));
      rows = append_ ? rows.concat(r.incidents) : r.incidents;
      next = r.next;
      more.hidden = !next;
      replace(out, table(cols, rows, { id: 'incident-list', empty: 'No incidents match.' }));
    } catch (e) { replace(out, errorNotice(e)); }
  }
  for (const el of [statusSel, sevSel]) el.addEventListener('change', () => load(false));
  host.addEventListener('change', () => load(false));
  append(page, header('Incidents'),
    h('div', { class: 'filters' }, field('Status', statusSel), field('Severity at least', sevSel), field('Host', host)),
    out, more);
  await load(false);
  return null;
}

async function incidentDetail(page, id) {
  const out = h('div', {}, spinner());
  append(page, h('p', {}, h('a', { href: '#/incidents' }, '← Incidents')), out);
  let inc;
  try {
    inc = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
  } catch (e) { replace(out, errorNotice(e)); return null; }

  const msg = h('div', { id: 'incident-message' });
  const statusSel = select(['open', 'acknowledged', 'resolved', 'false_positive'], inc.status, { id: 'incident-status', disabled: !isAdmin() });
  const assignee = h('input', { id: 'incident-assignee', value: inc.assignee || '', placeholder: 'who is on it', disabled: !isAdmin() });
  const note = h('textarea', { id: 'incident-note', rows: 3, placeholder: 'Add a note to the timeline', disabled: !isAdmin() });
  const save = h('button', {
    type: 'button', id: 'incident-save', disabled: !isAdmin(), title: isAdmin() ? null : needs('admin'),
    on: {
      click: () => busy(save, msg, async () => {
        const patch = {};
        if (statusSel.value !== inc.status) patch.status = statusSel.value;
        if (assignee.value.trim() !== (inc.assignee || '')) patch.assignee = assignee.value.trim();
        if (note.value.trim()) patch.note = note.value.trim();
        if (!Object.keys(patch).length) { replace(msg, notice('Nothing changed.', 'info')); return; }
        await api(`/api/v1/incidents/${encodeURIComponent(id)}`, { method: 'PATCH', json: patch });
        location.hash = `#/incidents/${encodeURIComponent(id)}`;
        replace(page); await incidentDetail(page, id);
      }),
    },
  }, 'Save');

  const reportBox = h('div', { id: 'incident-report', class: 'report' });
  const reportList = h('div', { class: 'chips' });
  const triageMsg = h('div', { id: 'incident-triage-message' });
  const triageBtn = h('button', {
    type: 'button', id: 'incident-triage', disabled: !canSubmit(), title: canSubmit() ? null : needs('agent or admin'),
    on: {
      click: () => busy(triageBtn, triageMsg, async () => {
        replace(triageMsg, notice('Triage running: tools are being called…', 'info'));
        const r = await api('/api/v1/triage', { method: 'POST', json: { incident_id: id } });
        await loadReports(r.id);
        replace(triageMsg, notice(`Triage done: ${r.verdict} (${num(r.confidence * 100)}% confidence).`, 'ok'));
      }),
    },
  }, 'Run triage');

  async function showReport(rid) {
    replace(reportBox, spinner('Loading the report…'));
    try {
      const html = await api(`/api/v1/reports/${encodeURIComponent(rid)}?format=html`, { as: 'text' });
      const article = h('article', { class: 'markdown' });
      // SAFE-HTML: rendered by the server from Markdown with every raw HTML tag escaped,
      // images and non-http links dropped (crates/vigil-server/src/markdown.rs); the CSP
      // forbids inline scripts besides.
      article.innerHTML = html;
      replace(reportBox, article);
    } catch (e) { replace(reportBox, errorNotice(e)); }
  }
  async function loadReports(selected) {
    const r = await api('/api/v1/reports' + query({ incident_id: id, limit: 20 }));
    const reports = r.reports || [];
    replace(reportList, reports.map((rep) => button(`${fmtTime(rep.created_at)} · ${rep.verdict}`, () => showReport(rep.id), { class: 'chip' })));
    if (!reports.length) replace(reportBox, h('p', { class: 'muted' }, 'No triage report yet. Incidents at high severity and above are triaged automatically; “Run triage” starts one now.'));
    else await showReport(selected || reports[0].id);
  }

  const timeline = h('ol', { class: 'timeline', id: 'incident-timeline' }, (inc.timeline || []).map((t) =>
    h('li', { class: `tl-${t.kind}` }, timeEl(t.at), ' ', badge(t.kind), ' ',
      t.kind === 'note' ? [h('strong', {}, t.author || ''), ': ', t.text] : (t.summary || t.text || ''))));

  replace(out,
    header(inc.title, severity(inc.severity), badge(inc.status, `st-${inc.status}`)),
    h('div', { class: 'grid2' },
      card('Incident', kv({
        id: inc.id, entity: inc.entity, host: inc['host.name'], score: inc.score,
        first_seen: fmtTime(inc.first_seen), last_seen: fmtTime(inc.last_seen),
        techniques: (inc.techniques || []).join(', ') || '—', assignee: inc.assignee || '—',
      }, { depth: 0 })),
      card('Work on it',
        isAdmin() ? null : notice(`Changing an incident ${needs('admin')}.`, 'info'),
        h('div', { class: 'form-row' }, field('Status', statusSel), field('Assignee', assignee)),
        field('Note', note), save, msg)),
    card('Timeline', timeline),
    card(`Findings (${(inc.findings || []).length})`, findingsTable(inc.findings || [], { id: 'incident-findings' })),
    card('Triage', h('div', { class: 'actions' }, triageBtn), triageMsg, reportList, reportBox));
  loadReports().catch((e) => replace(reportBox, errorNotice(e)));
  return null;
}

// ---- Events --------------------------------------------------------------------------------

async function events(page, id) {
  if (id) {
    const out = h('div', {}, spinner());
    append(page, h('p', {}, h('a', { href: '#/events' }, '← Events')), out);
    try {
      const [ev, f] = await Promise.all([
        api(`/api/v1/events/${encodeURIComponent(id)}`),
        api('/api/v1/findings' + query({ 'event.id': id, limit: 100 })),
      ]);
      replace(out, header(`Event ${id}`), card('Findings about it', findingsTable(f.findings || [])), card('Event', jsonBlock(ev, 'event-json')));
    } catch (e) { replace(out, errorNotice(e)); }
    return null;
  }
  const now = new Date();
  const since = h('input', { id: 'events-since', type: 'datetime-local', value: toLocalInput(new Date(now - 86400000)) });
  const until = h('input', { id: 'events-until', type: 'datetime-local' });
  const hostIn = h('input', { id: 'events-host', placeholder: 'host.name' });
  const cat = h('input', { id: 'events-category', placeholder: 'process, network, log…' });
  const ip = h('input', { id: 'events-ip', placeholder: '10.0.0.5' });
  const q = h('input', { id: 'events-q', type: 'search', placeholder: 'text anywhere in the event' });
  const out = h('div', { id: 'events-results' });
  const more = button('Load more', () => load(true), { class: 'secondary', hidden: true });
  let next = null;
  let rows = [];
  const cols = [
    { label: 'Time', cell: (e) => timeEl(e['@timestamp']) },
    { label: 'Host', cell: (e) => get(e, 'host.name') || '—' },
    { label: 'Category', cell: (e) => [].concat(get(e, 'event.category') || []).join(', ') || '—' },
    { label: 'Action', cell: (e) => get(e, 'event.action') || '—' },
    {
      label: 'Message', class: 'wide', cell: (e) => h('details', {},
        h('summary', { class: 'event-message' }, get(e, 'message') || get(e, 'process.command_line') || get(e, 'event.original') || '(no message)'),
        h('p', {}, h('a', { href: `#/events/${encodeURIComponent(get(e, 'event.id') || '')}` }, 'Open with its findings')),
        jsonBlock(e, 'event-json')),
    },
  ];
  async function load(more_) {
    try {
      const r = await api('/api/v1/events' + query({
        since: fromLocalInput(since.value), until: fromLocalInput(until.value), 'host.name': hostIn.value.trim(),
        'event.category': cat.value.trim(), ip: ip.value.trim(), q: q.value, limit: 100, next: more_ ? next : undefined,
      }));
      rows = more_ ? rows.concat(r.events) : r.events;
      next = r.next;
      more.hidden = !next;
      replace(out, table(cols, rows, { id: 'events-table', empty: 'No events match.', rowAttrs: () => ({ class: 'event-row' }) }));
    } catch (e) { replace(out, errorNotice(e)); }
  }
  const form = h('form', { class: 'filters', on: { submit: (e) => { e.preventDefault(); load(false); } } },
    field('From', since), field('To (empty: now)', until), field('Host', hostIn), field('Category', cat), field('IP', ip), field('Text', q),
    h('button', { type: 'submit', id: 'events-search' }, 'Search'));
  append(page, header('Events'), form, out, more);
  await load(false);
  return null;
}

// ---- Scripts -------------------------------------------------------------------------------

const SAMPLE_EVENT = {
  '@timestamp': new Date().toISOString(),
  event: { category: ['process'], action: 'process_started' },
  host: { name: 'ws-17' },
  process: { name: 'powershell.exe', command_line: 'powershell.exe -NoP -W Hidden -enc SQBFAFgA' },
};

const SAMPLE_SCRIPT = `// Flags PowerShell started with an encoded command.
fn analyze(event, config) {
    let cmd = event["process.command_line"];
    if cmd == () { return (); }
    if cmd.contains("-enc") {
        return #{ score: 80, summary: "PowerShell with an encoded command", technique: "T1059.001" };
    }
    ()
}
`;

async function scripts(page, name) {
  if (name) return scriptEditor(page, name === 'new' ? null : name);
  const out = h('div', {}, spinner());
  append(page, header('Scripts', isAdmin() ? h('a', { class: 'button', id: 'script-new', href: '#/scripts/new' }, 'New script') : null), out);
  async function load() {
    const r = await api('/api/v1/scripts');
    const cols = [
      { label: 'Name', cell: (sc) => h('a', { href: `#/scripts/${encodeURIComponent(sc.name)}`, class: 'script-link' }, sc.name) },
      { label: 'Version', cell: (sc) => `v${sc.version}` },
      { label: 'Language', cell: (sc) => sc.language || 'rhai' },
      { label: 'Runs on', cell: (sc) => (sc.categories || []).join(', ') },
      { label: 'State', cell: (sc) => sc.enabled ? badge('enabled', 'ok') : h('span', {}, badge('disabled', 'warn'), ' ', h('small', {}, sc.disabled_reason || '')) },
      { label: 'Failures in a row', cell: (sc) => num(sc.consecutive_failures) },
      { label: '', cell: (sc) => isAdmin() ? toggleButton(sc, load) : '' },
      { label: 'Description', class: 'wide', cell: (sc) => sc.description || '' },
    ];
    replace(out, table(cols, r.scripts || [], { id: 'script-list', empty: 'No scripts yet. A script runs on every event of its categories and can raise findings.' }));
  }
  await load().catch((e) => replace(out, errorNotice(e)));
  return null;
}

function toggleButton(sc, after) {
  const b = button(sc.enabled ? 'Disable' : 'Enable', () => busy(b, null, async () => {
    await api(`/api/v1/scripts/${encodeURIComponent(sc.name)}/${sc.enabled ? 'disable' : 'enable'}`, { method: 'POST' });
    await after();
  }), { class: 'secondary small' });
  return b;
}

async function scriptEditor(page, name) {
  let detail = null;
  if (name) {
    try { detail = await api(`/api/v1/scripts/${encodeURIComponent(name)}`); } catch (e) { append(page, errorNotice(e)); return null; }
  }
  const m = (detail && detail.manifest) || {};
  const admin = isAdmin();
  const nameIn = h('input', { id: 'script-name', value: name || '', placeholder: 'lowercase_name', disabled: !!name || !admin, pattern: '[a-z0-9_-]{1,64}' });
  const desc = h('input', { id: 'script-description', value: m.description || '', placeholder: 'what it looks for', disabled: !admin });
  const cats = h('input', { id: 'script-categories', value: (m.categories || ['process']).join(', '), disabled: !admin });
  const lang = select(['rhai', 'python'], m.language || 'rhai', { id: 'script-language', disabled: !admin });
  const timeout = h('input', { id: 'script-timeout', type: 'number', min: 1, value: m.timeout_ms || '', placeholder: 'default', disabled: !admin });
  const source = h('textarea', { id: 'script-source', spellcheck: 'false', wrap: 'off', disabled: !admin, value: detail ? detail.source : SAMPLE_SCRIPT });
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const errBox = h('div', { id: 'script-error' });
  const msg = h('div', { id: 'script-message' });
  let errLine = null;

  function renderGutter() {
    const lines = source.value.split('\n').length;
    clear(gutter);
    for (let i = 1; i <= lines; i++) gutter.append(h('div', { class: i === errLine ? 'error-line' : null, dataset: { line: i } }, String(i)));
    gutter.scrollTop = source.scrollTop;
  }
  source.addEventListener('input', () => { if (errLine) { errLine = null; replace(errBox); } renderGutter(); });
  source.addEventListener('scroll', () => { gutter.scrollTop = source.scrollTop; });
  source.addEventListener('keydown', (e) => {
    if (e.key === 'Tab') {
      e.preventDefault();
      const { selectionStart: a, selectionEnd: b } = source;
      source.setRangeText('    ', a, b, 'end');
      renderGutter();
    }
  });

  function body() {
    const b = {
      source: source.value,
      description: desc.value,
      categories: cats.value.split(',').map((c) => c.trim()).filter(Boolean),
      language: lang.value,
    };
    if (nameIn.value.trim()) b.name = nameIn.value.trim();
    if (timeout.value) b.timeout_ms = Number(timeout.value);
    return b;
  }
  function showError(e) {
    if (e instanceof ApiError && e.code === 'invalid_script' && e.line) {
      errLine = e.line;
      renderGutter();
      const where = `Line ${e.line}${e.column ? `, column ${e.column}` : ''}`;
      replace(errBox, h('div', { class: 'notice error', role: 'alert' }, h('strong', { class: 'where' }, where), ': ', e.message));
      // Put the caret on the line.
      const lines = source.value.split('\n');
      const offset = lines.slice(0, e.line - 1).reduce((a, l) => a + l.length + 1, 0) + Math.max(0, (e.column || 1) - 1);
      source.focus();
      source.setSelectionRange(offset, offset);
      const lh = source.scrollHeight / Math.max(lines.length, 1);
      source.scrollTop = Math.max(0, (e.line - 3) * lh);
    } else {
      errLine = null;
      renderGutter();
      replace(errBox, errorNotice(e));
    }
  }

  const eventIn = h('textarea', { id: 'script-event', rows: 8, spellcheck: 'false', value: JSON.stringify(SAMPLE_EVENT, null, 2) });
  const trialOut = h('div', { id: 'script-trial' });
  async function trial(showResult) {
    let ev;
    try { ev = JSON.parse(eventIn.value); } catch (e) { replace(trialOut, notice(`The event is not valid JSON: ${e.message}`, 'error')); return false; }
    try {
      const r = await api('/api/v1/scripts/trial', { method: 'POST', json: { script: body(), event: ev } });
      errLine = null; renderGutter(); replace(errBox, notice('Compiles.', 'ok'));
      if (showResult) {
        const errs = Object.entries(r.errors || {});
        replace(trialOut,
          r.matches ? notice('The pipeline would run this script on this event.', 'ok') : notice('The pipeline would not run this script on this event (its categories or agent tags do not match); it was run anyway.', 'warn'),
          errs.length ? errs.map(([, er]) => notice(`${er.code}: ${er.message}${er.line ? ` (line ${er.line})` : ''}`, 'error')) : null,
          h('h3', {}, 'Result'), jsonBlock(r.results || {}),
          h('h3', {}, `Findings (${(r.findings || []).length})`), findingsTable(r.findings || []),
          h('p', { class: 'muted' }, `took ${num(r.took_ms, 2)} ms`));
      }
      return true;
    } catch (e) {
      showError(e);
      if (showResult) replace(trialOut);
      return false;
    }
  }
  const checkBtn = h('button', { type: 'button', id: 'script-check', class: 'secondary', disabled: !admin, on: { click: () => busy(checkBtn, null, () => trial(false)) } }, 'Check');
  const runBtn = h('button', { type: 'button', id: 'script-run', disabled: !admin, on: { click: () => busy(runBtn, null, () => trial(true)) } }, 'Run on this event');
  const saveBtn = h('button', {
    type: 'button', id: 'script-save', disabled: !admin,
    on: {
      click: () => busy(saveBtn, null, async () => {
        replace(msg);
        try {
          const b = body();
          const r = name
            ? await api(`/api/v1/scripts/${encodeURIComponent(name)}`, { method: 'PUT', json: b })
            : await api('/api/v1/scripts', { method: 'POST', json: b });
          replace(errBox);
          replace(msg, notice(`Saved as version ${r.version}${r.enabled ? ', enabled' : ''}.`, 'ok'));
          if (!name) { location.hash = `#/scripts/${encodeURIComponent(r.name)}`; } else { replace(page); await scriptEditor(page, name); append(page.querySelector('#script-message') || page, notice(`Saved as version ${r.version}.`, 'ok')); }
        } catch (e) { showError(e); }
      }),
    },
  }, name ? 'Save new version' : 'Create');

  const versions = detail ? table([
    { label: 'Version', cell: (v) => `v${v.version}` },
    { label: 'Saved', cell: (v) => timeEl(v.created_at) },
    { label: '', cell: (v) => (v.version === detail.version || !admin) ? (v.version === detail.version ? badge('current', 'ok') : '') : rollbackButton(name, v.version, page) },
  ], (detail.versions || []).slice().reverse(), { id: 'script-versions' }) : h('p', { class: 'muted' }, 'Versions appear here once the script is created.');

  append(page,
    h('p', {}, h('a', { href: '#/scripts' }, '← Scripts')),
    header(name ? `Script ${name}` : 'New script',
      detail ? (detail.enabled ? badge(`v${detail.version} enabled`, 'ok') : badge(`v${detail.version} disabled`, 'warn')) : null,
      detail && admin ? toggleButton({ name, enabled: detail.enabled }, async () => { replace(page); await scriptEditor(page, name); }) : null),
    admin ? null : notice(`Editing scripts ${needs('admin')}.`, 'info'),
    detail && detail.disabled_reason ? notice(`Disabled: ${detail.disabled_reason}`, 'warn') : null,
    h('div', { class: 'form-row' }, field('Name', nameIn), field('Language', lang), field('Runs on categories (comma-separated, * for all)', cats), field('Timeout (ms)', timeout)),
    field('Description', desc),
    h('div', { class: 'editor' }, gutter, source),
    errBox,
    h('div', { class: 'actions' }, checkBtn, saveBtn), msg,
    h('div', { class: 'grid2' },
      card('Try it on an event', field('Event (JSON)', eventIn), runBtn, trialOut),
      card('Versions', versions)));
  renderGutter();
  return null;
}

function rollbackButton(name, version, page) {
  const b = button(`Roll back to v${version}`, () => busy(b, null, async () => {
    await api(`/api/v1/scripts/${encodeURIComponent(name)}/rollback`, { method: 'POST', json: { version } });
    replace(page);
    await scriptEditor(page, name);
  }), { class: 'secondary small rollback' });
  return b;
}

// ---- Files ---------------------------------------------------------------------------------

async function files(page, sha) {
  const input = h('input', { id: 'file-input', type: 'file' });
  const vt = h('input', { id: 'file-vt', type: 'checkbox' });
  const out = h('div', { id: 'file-report' });
  const upload = h('button', {
    type: 'button', id: 'file-upload', disabled: !canSubmit(), title: canSubmit() ? null : needs('agent or admin'),
    on: {
      click: () => busy(upload, out, async () => {
        const f = input.files && input.files[0];
        if (!f) { replace(out, notice('Choose a file first.', 'warn')); return; }
        replace(out, spinner(`Analysing ${f.name} (${num(f.size)} bytes)…`));
        const r = await api('/api/v1/files' + query({ virustotal: vt.checked ? 'true' : undefined }), {
          method: 'POST', body: f, contentType: 'application/octet-stream',
        });
        history.replaceState(null, '', `#/files/${r.sha256}`);
        replace(out, fileReport(r, f.name));
      }),
    },
  }, 'Analyse');
  const lookup = h('input', { id: 'file-sha', placeholder: 'sha256', size: 64 });
  const find = h('button', {
    type: 'button', class: 'secondary', on: {
      click: () => { if (lookup.value.trim()) location.hash = `#/files/${lookup.value.trim().toLowerCase()}`; },
    },
  }, 'Open report');
  append(page, header('Files'),
    h('div', { class: 'grid2' },
      card('Analyse a file', canSubmit() ? null : notice(`Uploading ${needs('agent or admin')}.`, 'info'),
        field('File', input, 'sent to this Vigil server only'), h('label', { class: 'check' }, vt, ' Also ask VirusTotal (when a key is configured)'), upload),
      card('Find a report', field('SHA-256', lookup), find)),
    out);
  if (sha) {
    replace(out, spinner());
    try { replace(out, fileReport(await api(`/api/v1/files/${encodeURIComponent(sha)}`))); } catch (e) { replace(out, errorNotice(e)); }
  }
  return null;
}

function fileReport(r, filename) {
  const verdictKind = r.verdict === 'malicious' ? 'bad' : r.verdict === 'suspicious' ? 'warn' : 'ok';
  const st = r.static || {};
  const yaraRows = (r.yara_matches && r.yara_matches.length ? r.yara_matches : (r.yara || []).map((rule) => ({ rule })));
  return h('div', {},
    card(filename ? `Report: ${filename}` : 'Report',
      h('div', { class: 'verdict-line' },
        h('span', { id: 'file-verdict', class: `verdict ${verdictKind}` }, r.verdict),
        h('span', {}, 'score ', h('strong', {}, num(r.score, 3)), ` (threshold ${num(r.threshold, 2)})`),
        h('span', {}, 'model ', h('strong', {}, r.model_score === null || r.model_score === undefined ? 'none loaded' : num(r.model_score, 3)))),
      kv({ sha256: r.sha256, analyzed_at: fmtTime(r.analyzed_at) }, { depth: 0 }),
      h('h3', {}, 'Why'),
      h('ul', { class: 'explanation' }, (r.explanation || []).map((x) => h('li', {}, x))),
      h('h3', {}, `YARA (${yaraRows.length})`),
      table([
        { label: 'Rule', cell: (m) => h('code', {}, m.rule || m.identifier || JSON.stringify(m)) },
        { label: 'Namespace', cell: (m) => m.namespace || '—' },
        { label: 'Meta', class: 'wide', cell: (m) => m.meta ? JSON.stringify(m.meta) : (m.description || '') },
      ], yaraRows, { empty: 'No rule matched.' }),
      h('h3', {}, 'VirusTotal'),
      r.virustotal ? kv(r.virustotal) : h('p', { class: 'muted' }, 'Not asked (no key, or not requested).')),
    card('Static features', staticView(st)));
}

function staticView(st) {
  const parts = [];
  const scalars = {};
  for (const [k, v] of Object.entries(st)) {
    if (v === null || typeof v !== 'object') scalars[k] = v;
  }
  parts.push(kv(scalars, { depth: 0 }));
  for (const [k, v] of Object.entries(st)) {
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v) && v.length && typeof v[0] === 'object' && v[0] !== null) {
      const keys = Object.keys(v[0]).slice(0, 8);
      parts.push(h('details', { open: k === 'sections' }, h('summary', {}, `${k} (${v.length})`),
        table(keys.map((kk) => ({ label: kk, cell: (row) => fmtCell(row[kk]) })), v.slice(0, 200))));
    } else {
      parts.push(h('details', {}, h('summary', {}, `${k}${Array.isArray(v) ? ` (${v.length})` : ''}`), jsonBlock(v)));
    }
  }
  return parts;
}

function fmtCell(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? num(v) : num(v, 3);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---- Network -------------------------------------------------------------------------------

async function network(page) {
  const hostIn = h('input', { id: 'net-host', placeholder: 'host.name' });
  const proc = h('input', { id: 'net-process', placeholder: 'process name' });
  const rangeSel = select(Object.keys(RANGES).map((k) => [k, RANGES[k].label]), '24h', { id: 'net-range' });
  const chart = h('div', {}, spinner());
  const anomalies = h('div', {});
  const status = h('div', {});
  const models = h('div', {});
  const msg = h('div', {});
  const trainBtn = h('button', {
    type: 'button', id: 'net-train', disabled: !isAdmin(), title: isAdmin() ? null : needs('admin'),
    on: {
      click: () => busy(trainBtn, msg, async () => {
        replace(msg, notice('Training on the stored connections…', 'info'));
        const r = await api('/api/v1/network/train', { method: 'POST', json: {} });
        replace(msg, notice(`Version ${r.version} trained on ${num(r.records)} connections: ${r.promoted ? 'promoted' : 'not promoted'} (${r.reason}).`, r.promoted ? 'ok' : 'warn'));
        await loadModels();
      }),
    },
  }, 'Retrain');

  async function loadSeries() {
    const r = RANGES[rangeSel.value];
    const until = new Date();
    const params = { 'host.name': hostIn.value.trim(), process: proc.value.trim(), since: new Date(until - r.secs * 1000).toISOString(), until: until.toISOString(), bucket: r.bucket };
    try {
      const [series, rows] = await Promise.all([
        api('/api/v1/network/series' + query(params)),
        api('/api/v1/network/connections' + query({ ...params, bucket: undefined, anomalies: 'true', limit: 50 })),
      ]);
      const points = (series.points || []).map((p) => ({ t: p.start, values: { normal: p.connections - p.anomalies, anomalies: p.anomalies, max_score: p.max_score } }));
      replace(chart, timeChart(points, [
        { key: 'normal', label: 'connections', color: '#9fb6e0' },
        { key: 'anomalies', label: 'anomalies', color: '#c62828' },
      ], { label: 'connections and anomalies over time', width: 1200, height: 220, lines: [{ key: 'max_score', label: 'max anomaly score', color: '#e0a526' }], dayLabels: r.secs > 43200 }));
      const list = rows.connections || rows.rows || rows.items || [];
      replace(anomalies, table([
        { label: 'Time', cell: (c) => timeEl(c['@timestamp'] || c.ts || c.timestamp) },
        { label: 'Host', cell: (c) => c['host.name'] || c.host || '—' },
        { label: 'Process', cell: (c) => c.process || c['process.name'] || '—' },
        { label: 'Remote', cell: (c) => [c.remote_ip || c['destination.ip'] || c.remote || '', c.remote_port || c['destination.port'] || ''].filter(Boolean).join(':') || '—' },
        { label: 'Score', cell: (c) => num(c.score, 3) },
      ], list, { empty: 'No anomalous connection in this range.' }));
    } catch (e) { replace(chart, errorNotice(e)); }
  }
  async function loadModels() {
    try {
      const [st, m] = await Promise.all([api('/api/v1/network/status'), api('/api/v1/network/models')]);
      replace(status, kv(st));
      replace(models, table([
        { label: 'Version', cell: (v) => `v${v.version}` },
        { label: 'Created', cell: (v) => timeEl(v.created_at) },
        { label: 'State', cell: (v) => v.active ? badge('active', 'ok') : (isAdmin() ? activateButton('network', v.version, loadModels) : '') },
        { label: 'Metrics', class: 'wide', cell: (v) => h('details', {}, h('summary', {}, metricSummary(v.metrics)), jsonBlock(v.metrics || {})) },
      ], m.models || [], { id: 'net-models', empty: 'No model trained yet: Retrain once connections are stored.' }));
    } catch (e) { replace(status, errorNotice(e)); }
  }
  for (const el of [hostIn, proc, rangeSel]) el.addEventListener('change', loadSeries);
  append(page, header('Network', trainBtn),
    h('div', { class: 'filters' }, field('Host', hostIn), field('Process', proc), field('Range', rangeSel)),
    card('Connections and anomalies', chart), msg,
    h('div', { class: 'grid2' }, card('Anomalous connections', anomalies), card('Detector', status)),
    card('Model versions', models));
  await Promise.all([loadSeries(), loadModels()]);
  return null;
}

function metricSummary(m) {
  if (!m || typeof m !== 'object') return '—';
  const parts = [];
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === 'number') parts.push(`${k} ${num(v, 3)}`);
    if (parts.length >= 4) break;
  }
  return parts.join(' · ') || 'details';
}

function activateButton(kind, version, after) {
  const b = button(`Activate v${version}`, () => busy(b, null, async () => {
    await api(`/api/v1/${kind}/models/${version}/activate`, { method: 'POST' });
    await after();
  }), { class: 'secondary small' });
  return b;
}

// ---- Logs ----------------------------------------------------------------------------------

async function logs(page) {
  const status = h('div', {}, spinner());
  const templates = h('div', {});
  const models = h('div', {});
  const msg = h('div', {});
  const filter = h('input', { id: 'log-template-filter', type: 'search', placeholder: 'filter templates' });
  let tpl = [];
  const trainBtn = h('button', {
    type: 'button', id: 'log-train', disabled: !isAdmin(), title: isAdmin() ? null : needs('admin'),
    on: {
      click: () => busy(trainBtn, msg, async () => {
        const r = await api('/api/v1/logs/train', { method: 'POST', json: { background: true } });
        replace(msg, notice(`Training started${r && r.version ? ` (version ${r.version})` : ''}; the status below shows its progress.`, 'info'));
        setTimeout(load, 2000);
      }),
    },
  }, 'Retrain');
  function renderTemplates() {
    const t = filter.value.trim().toLowerCase();
    const rows = t ? tpl.filter((x) => x.template.toLowerCase().includes(t)) : tpl;
    replace(templates, barList(rows.slice(0, 15).map((x, i) => ({ label: `${x.id}: ${x.template}`, value: x.count, color: color(i) }))),
      table([
        { label: 'Key', cell: (x) => String(x.id) },
        { label: 'Count', cell: (x) => num(x.count) },
        { label: 'Template', class: 'wide', cell: (x) => h('code', {}, x.template) },
      ], rows.slice(0, 500), { id: 'log-templates', empty: 'No log lines seen yet.' }));
  }
  filter.addEventListener('input', renderTemplates);
  async function load() {
    try {
      const [st, t, m] = await Promise.all([api('/api/v1/logs/status'), api('/api/v1/logs/templates?limit=1000'), api('/api/v1/logs/models')]);
      replace(status, kv(st));
      tpl = t.templates || [];
      renderTemplates();
      replace(models, table([
        { label: 'Version', cell: (v) => `v${v.version}` },
        { label: 'Created', cell: (v) => timeEl(v.created_at) },
        { label: 'Detectors', cell: (v) => [].concat(v.detectors || v.kinds || []).map((d) => (typeof d === 'string' ? d : d.kind || JSON.stringify(d))).join(', ') || '—' },
        { label: 'State', cell: (v) => v.version === m.active || v.active ? badge('active', 'ok') : (isAdmin() ? activateButton('logs', v.version, load) : '') },
        { label: 'Training', class: 'wide', cell: (v) => h('details', {}, h('summary', {}, metricSummary(v.training || v.metrics)), jsonBlock(v.training || v.metrics || v)) },
      ], m.models || [], { id: 'log-models', empty: 'No log model yet: Retrain once normal sessions are recorded.' }));
    } catch (e) { replace(status, errorNotice(e)); }
  }
  append(page, header('Logs', trainBtn), msg,
    h('div', { class: 'grid2' }, card('Log analyzer', status), card('Model versions', models)),
    card('Templates (live Drain)', filter, templates));
  await load();
  return null;
}

// ---- Agents --------------------------------------------------------------------------------

async function agents(page) {
  const out = h('div', {}, spinner());
  append(page, header('Agents'), out);
  async function load() {
    const r = await api('/api/v1/agents');
    replace(out, table([
      { label: 'Agent', cell: (a) => h('code', {}, a.id) },
      { label: 'Host', cell: (a) => a['host.name'] || '—' },
      { label: 'Status', cell: (a) => badge(a.status || 'unknown', a.status === 'online' ? 'ok' : 'warn') },
      { label: 'Last seen', cell: (a) => h('span', { title: a.last_seen }, ago(a.last_seen)) },
      { label: 'Events', cell: (a) => num(a.events) },
      { label: 'OS', cell: (a) => a.os || '—' },
      { label: 'Version', cell: (a) => a.version || '—' },
      { label: 'Tags', cell: (a) => (a.tags || []).map((t) => badge(t)) },
    ], r.agents || [], { id: 'agent-list', empty: 'No agent has sent anything yet.' }));
  }
  await load().catch((e) => replace(out, errorNotice(e)));
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 15000);
  return () => clearInterval(timer);
}

// ---- Settings ------------------------------------------------------------------------------

async function settings(page) {
  append(page, header('Settings'),
    card('You', kv({ subject: session.me.subject, role: session.me.role, server: `Vigil ${session.me.version}` }, { depth: 0 }),
      h('p', {}, 'API reference: ', h('a', { href: '/docs' }, '/docs'), ' · metrics: ', h('a', { href: '/metrics' }, '/metrics'))));
  if (!isAdmin()) {
    append(page, card('API keys', notice(`Managing API keys ${needs('admin')}.`, 'info')));
    return null;
  }
  const out = h('div', {});
  const created = h('div', { id: 'key-created' });
  const nameIn = h('input', { id: 'key-name', placeholder: 'e.g. edr-fleet', required: true });
  const roleSel = select(['viewer', 'agent', 'admin'], 'viewer', { id: 'key-role' });
  const createBtn = h('button', { type: 'submit', id: 'key-create' }, 'Create key');
  const form = h('form', {
    class: 'form-row', on: {
      submit: (ev) => {
        ev.preventDefault();
        busy(createBtn, created, async () => {
          const r = await api('/api/v1/keys', { method: 'POST', json: { name: nameIn.value.trim(), role: roleSel.value } });
          replace(created, h('div', { class: 'notice ok' }, `Key “${r.name}” (${r.role}) created. Copy it now; it is not shown again: `, h('code', { class: 'secret' }, r.key)));
          nameIn.value = '';
          await load();
        });
      },
    },
  }, field('Name', nameIn), field('Role', roleSel), createBtn);
  async function load() {
    const r = await api('/api/v1/keys');
    replace(out, table([
      { label: 'Id', cell: (k) => h('code', {}, k.id) },
      { label: 'Name', cell: (k) => k.name },
      { label: 'Role', cell: (k) => badge(k.role) },
      { label: 'Created', cell: (k) => timeEl(k.created_at) },
      { label: 'State', cell: (k) => (k.revoked_at ? badge(`revoked ${ago(k.revoked_at)}`, 'warn') : badge('active', 'ok')) },
      { label: '', cell: (k) => k.revoked_at ? '' : revokeButton(k, load) },
    ], r.keys || [], { id: 'key-list' }));
  }
  append(page, card('API keys', form, created, out));
  await load().catch((e) => replace(out, errorNotice(e)));
  return null;
}

function revokeButton(k, after) {
  const b = button('Revoke', () => {
    if (!confirm(`Revoke the key “${k.name}”? Clients using it stop working at once.`)) return;
    busy(b, null, async () => { await api(`/api/v1/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' }); await after(); });
  }, { class: 'danger small' });
  return b;
}

export const PAGES = {
  overview, live, incidents, events, scripts, files, network, logs, agents, settings,
};
