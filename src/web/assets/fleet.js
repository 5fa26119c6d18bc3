import {
  apiJson,
  download,
  el,
  fetchImage,
  formatBytes,
  formatDuration,
  formatTemperature,
  formatTime,
  liveStream,
  setText,
} from './common.js';

const nodes = new Map();
const cards = new Map();
const previews = new Map();
const selected = new Set();
const pendingShots = new Map();
let canShoot = true;

function clockText(clock) {
  if (!clock || clock.synchronized === null) return 'unknown';
  const offset = typeof clock.offset_ms === 'number' ? `, offset ${clock.offset_ms.toFixed(1)} ms` : '';
  return `${clock.synchronized ? 'synchronized' : 'NOT synchronized'}${clock.source ? ` (${clock.source})` : ''}${offset}`;
}

function facts(node) {
  const camera = node.camera;
  const storage = node.storage;
  const rows = [
    ['Status', node.status ?? '?'],
    [
      'Camera',
      camera
        ? camera.connected
          ? `${camera.sensor ?? '?'}${camera.simulated ? ' (simulated)' : ''} · ${camera.mode ?? '?'}`
          : 'not connected'
        : '?',
    ],
    ['Storage', storage ? `${storage.used_mb} / ${storage.limit_mb} MB · ${storage.image_count} images` : '?'],
    ['Temperature', formatTemperature(node.cpu_temperature)],
    ['Clock', clockText(node.clock)],
    ['Uptime', formatDuration(node.uptime)],
    ['Groups', node.groups.join(', ') || 'none'],
  ];
  return el('dl', { class: 'facts' }, ...rows.map(([name, value]) => el('div', {}, el('dt', {}, name), el('dd', {}, value))));
}

function renderNode(node) {
  nodes.set(node.node_id, node);
  let card = cards.get(node.node_id);
  if (!card) {
    const id = `select-${node.node_id}`;
    const checkbox = el('input', {
      type: 'checkbox',
      id,
      onchange: (event) => {
        if (event.target.checked) selected.add(node.node_id);
        else selected.delete(node.node_id);
        setText('selected-count', String(selected.size));
      },
    });
    card = {
      li: el('li', { class: 'node', 'aria-labelledby': `title-${node.node_id}` }),
      title: el('h3', { id: `title-${node.node_id}` }),
      badge: el('span', { class: 'badge' }),
      image: el('img', { alt: `No preview from ${node.node_id} yet`, width: 320, height: 240 }),
      facts: el('div'),
      select: el('label', { for: id }, checkbox, ` Select ${node.node_id}`),
    };
    card.title.append(el('span', {}, node.node_id), card.badge);
    card.li.append(card.title, card.image, card.facts, card.select);
    cards.set(node.node_id, card);
    const list = document.getElementById('nodes');
    const after = [...cards.keys()].sort().find((other) => other > node.node_id);
    list.insertBefore(card.li, after ? cards.get(after).li : null);
  }
  card.badge.textContent = node.availability;
  card.badge.classList.toggle('off', node.availability !== 'online');
  card.li.classList.toggle('offline', node.availability !== 'online');
  card.facts.replaceChildren(facts(node));
  if (node.preview_at && previews.get(node.node_id)?.at !== node.preview_at) refreshPreview(node);
  document.getElementById('nodes-empty').hidden = cards.size > 0;
  const online = [...nodes.values()].filter((n) => n.availability === 'online').length;
  setText('fleet-count', `(${online} of ${nodes.size} online)`);
  renderGroups();
}

async function refreshPreview(node) {
  const card = cards.get(node.node_id);
  const previous = previews.get(node.node_id);
  previews.set(node.node_id, { at: node.preview_at, url: previous?.url });
  const url = await fetchImage(`/api/nodes/${encodeURIComponent(node.node_id)}/preview.jpg`, previous?.url);
  if (!url) return;
  previews.set(node.node_id, { at: node.preview_at, url });
  card.image.src = url;
  card.image.alt = `Latest preview from ${node.node_id}, ${formatTime(node.preview_at)}`;
}

function renderGroups() {
  const select = document.getElementById('group');
  const groups = [...new Set([...nodes.values()].flatMap((n) => n.groups))].sort();
  const current = [...select.options].map((o) => o.value);
  if (groups.join('\n') === current.join('\n')) return;
  const value = select.value;
  select.replaceChildren(...groups.map((g) => el('option', { value: g, selected: g === value }, g)));
}

const targetText = (target) => (Array.isArray(target) ? target.join(', ') : target);
const ms = (value) => (typeof value === 'number' ? `${value.toFixed(1)} ms` : '–');

/** Links to the files received (`path` is relative to the shot's folder); a file not received is named, unlinked. */
function fileLinks(report, entry) {
  const files = Array.isArray(entry.files) ? entry.files : [];
  if (files.length === 0) return '–';
  return el(
    'span',
    { class: 'actions' },
    ...files.map((file) => {
      if (!file.path) return el('span', { class: 'muted' }, `${file.filename} (not received)`);
      const href = ['/files', report.folder ?? report.shot_id, ...file.path.split('/')]
        .map((part, i) => (i === 0 ? part : encodeURIComponent(part)))
        .join('/');
      return el(
        'a',
        { href, download: file.filename, onclick: (event) => download(event, href, file.filename).catch(() => undefined) },
        file.filename,
      );
    }),
  );
}

function renderReport(report) {
  const summary = report.summary ?? {};
  const rows = (report.nodes ?? []).map((entry) =>
    el(
      'tr',
      {},
      el('td', {}, entry.node_id),
      el(
        'td',
        { class: entry.status === 'ok' ? 'okay' : 'error' },
        entry.status ?? '?',
        entry.error ? `: ${entry.error.code} ${entry.error.message}` : '',
      ),
      el('td', {}, fileLinks(report, entry)),
      el('td', { class: 'num' }, formatBytes(entry.size)),
      el('td', {}, entry.delivered ? 'yes' : 'no'),
      el('td', { class: 'num' }, ms(entry.late_ms)),
      el('td', { class: 'num' }, ms(entry.exposure_late_ms)),
      el('td', {}, clockText(entry.clock)),
    ),
  );
  const missing = report.missing?.length ? el('p', { class: 'error' }, `No answer from: ${report.missing.join(', ')}`) : null;
  return el(
    'details',
    { class: 'shot', id: `shot-${report.shot_id}`, open: true },
    el(
      'summary',
      {},
      el('strong', {}, report.shot_id),
      ` · ${formatTime(report.created_at)} · ${targetText(report.target)} · answered ${summary.answered ?? '?'} of ${summary.asked ?? '?'}, delivered ${summary.delivered ?? '?'}`,
      typeof summary.trigger_spread_ms === 'number' ? ` · trigger spread ${ms(summary.trigger_spread_ms)}` : '',
      typeof summary.exposure_spread_ms === 'number' ? ` · exposure spread ${ms(summary.exposure_spread_ms)}` : '',
    ),
    el(
      'div',
      { class: 'scroll' },
      el(
        'table',
        {},
        el('caption', { class: 'sr-only' }, `Nodes of shot ${report.shot_id}`),
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...['Node', 'Result', 'Files', 'Size', 'Delivered', 'Trigger late', 'Exposure late', 'Clock'].map((h) =>
              el('th', { scope: 'col' }, h),
            ),
          ),
        ),
        el('tbody', {}, ...rows),
      ),
    ),
    missing,
  );
}

function showReport(report) {
  document.getElementById(`shot-${report.shot_id}`)?.remove();
  document.getElementById('shots').prepend(renderReport(report));
  document.getElementById('shots-empty').hidden = true;
}

async function loadShots() {
  const { reports } = await apiJson('/api/shots');
  document.getElementById('shots').replaceChildren(...reports.map(renderReport));
  document.getElementById('shots-empty').hidden = reports.length > 0;
}

function onShot(message) {
  const mine = pendingShots.has(message.ref);
  if (message.state === 'done') {
    showReport(message.report);
    const s = message.report.summary ?? {};
    if (mine)
      setText(
        'shot-result',
        `Shot ${message.report.shot_id}: ${s.answered ?? '?'} of ${s.asked ?? '?'} nodes answered, ${s.delivered ?? '?'} images delivered.`,
      );
  } else if (message.state === 'updated') {
    showReport(message.report);
  } else if (message.state === 'failed' && mine) {
    setText('shot-result', `Shot failed: ${message.error}`);
  }
  if (message.state !== 'running') {
    pendingShots.delete(message.ref);
    document.getElementById('shoot').disabled = !canShoot;
  }
}

function shotRequest(form) {
  const data = new FormData(form);
  const kind = data.get('target');
  const body = {};
  if (kind === 'all') body.target = 'all';
  else if (kind === 'group') {
    if (!data.get('group')) throw new Error('no group is known: the nodes announce theirs in their status');
    body.target = `group:${data.get('group')}`;
  } else {
    if (selected.size === 0) throw new Error('tick the nodes to capture on first');
    body.target = [...selected].sort();
  }
  const at = String(data.get('at') ?? '').trim();
  if (at) body.at = at;
  for (const name of ['count', 'interval_ms', 'timeout_s']) {
    const value = Number(data.get(name));
    if (String(data.get(name)).trim() !== '' && Number.isFinite(value)) body[name] = value;
  }
  return body;
}

document.getElementById('shot-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = document.getElementById('shoot');
  try {
    const body = shotRequest(event.target);
    button.disabled = true;
    setText('shot-result', `Capturing on ${targetText(body.target)}…`);
    const { ref } = await apiJson('/api/shots', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    pendingShots.set(ref, body);
  } catch (error) {
    setText('shot-result', `Not sent: ${error.message}`);
    button.disabled = !canShoot;
  }
});

liveStream(
  '/events',
  {
    nodes: (list) => {
      for (const node of list) renderNode(node);
    },
    node: renderNode,
    capabilities: ({ shots }) => {
      canShoot = shots;
      document.getElementById('shoot').disabled = !shots;
      if (!shots) setText('shot-result', 'This dashboard cannot run shots (fleet capture is not available in this build).');
    },
    shot: onShot,
    broker: ({ connected }) => {
      document.getElementById('broker').hidden = connected;
    },
  },
  (connected) => {
    const live = document.getElementById('live');
    live.textContent = connected ? 'live' : 'reconnecting…';
    live.classList.toggle('off', !connected);
    if (connected) loadShots().catch((error) => setText('shot-result', `Cannot list the shots: ${error.message}`));
  },
);
