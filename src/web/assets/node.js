import { api, apiJson, download, el, formatBytes, formatDuration, formatTemperature, formatTime, liveStream, setText } from './common.js';

const LOG_LINES = 60;
let previewUrl = null;

function showStatus(status) {
  setText('node-id', status.node_id);
  document.title = `${status.node_id} · camera-node`;
  const camera = status.camera ?? {};
  setText(
    'camera',
    camera.connected
      ? `${camera.sensor ?? 'unknown sensor'}${camera.simulated ? ' (simulated)' : ''}`
      : `not connected${camera.last_error ? `: ${camera.last_error}` : ''}`,
  );
  setText('mode', `${camera.mode ?? '?'} · ${camera.queue ?? 0} queued`);
  const storage = status.storage ?? {};
  const meter = document.getElementById('storage-meter');
  meter.max = storage.limit_mb || 1;
  meter.value = storage.used_mb ?? 0;
  meter.high = meter.max * 0.9;
  setText(
    'storage-label',
    `${storage.used_mb ?? '?'} of ${storage.limit_mb ?? '?'} MB · ${storage.image_count ?? 0} images · ${storage.disk_free_mb ?? '?'} MB free on disk`,
  );
  setText('temperature', formatTemperature(status.system?.cpu_temperature));
  setText('uptime', formatDuration(status.system?.uptime));
  const mqtt = status.mqtt;
  setText(
    'mqtt',
    mqtt
      ? `${mqtt.connected ? 'connected' : 'disconnected'} · ${mqtt.broker}${mqtt.last_error && !mqtt.connected ? ` (${mqtt.last_error})` : ''}`
      : 'disabled',
  );
  const channels = Object.entries(status.delivery ?? {});
  setText(
    'pending',
    channels.length
      ? channels.map(([channel, d]) => `${channel}: ${d.pending}${d.failed ? ` (${d.failed} failed)` : ''}`).join(' · ')
      : 'no delivery channel',
  );
  const captures = status.captures ?? {};
  setText(
    'captures',
    `${captures.total ?? 0} taken, ${captures.failed ?? 0} failed${captures.last_error ? ` · last error: ${captures.last_error}` : ''}`,
  );
}

async function refreshPreview() {
  const image = document.getElementById('preview');
  const response = await api('/preview.jpg', { cache: 'no-cache' });
  if (!response.ok) return;
  const filename = response.headers.get('x-capture') ?? 'the latest capture';
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(await response.blob());
  image.src = previewUrl;
  image.alt = `Preview of ${filename}`;
  image.hidden = false;
  setText('preview-caption', filename);
}

/** `GET /images`: an array of items (older nodes: `{images, count}`). */
async function refreshImages() {
  const body = await apiJson('/images');
  const images = Array.isArray(body) ? body : (body?.images ?? []);
  const rows = images.map((image) => {
    const href = `/images/${encodeURIComponent(image.filename)}`;
    const delivered = Array.isArray(image.delivered) ? image.delivered.join(', ') || 'no' : image.delivered ? 'yes' : 'no';
    return el(
      'tr',
      {},
      el('td', {}, el('code', {}, image.filename)),
      el('td', {}, formatTime(image.captured_at ?? image.created ?? image.timestamp)),
      el('td', { class: 'num' }, formatBytes(image.size)),
      el('td', {}, delivered),
      el(
        'td',
        { class: 'actions' },
        el(
          'a',
          {
            href,
            download: image.filename,
            'aria-label': `Download ${image.filename}`,
            onclick: (event) => download(event, href, image.filename).catch(report),
          },
          'Download',
        ),
        el(
          'button',
          { type: 'button', class: 'danger', 'aria-label': `Delete ${image.filename}`, onclick: () => remove(image.filename) },
          'Delete',
        ),
      ),
    );
  });
  document.getElementById('images').replaceChildren(...rows);
  document.getElementById('images-empty').hidden = rows.length > 0;
  setText('image-count', `(${rows.length})`);
}

function report(error) {
  setText('images-result', `Failed: ${error.message}`);
}

async function remove(filename) {
  if (!confirm(`Delete ${filename} from the node?`)) return;
  try {
    await apiJson(`/images/${encodeURIComponent(filename)}`, { method: 'DELETE' });
    setText('images-result', `Deleted ${filename}.`);
    await refreshImages();
  } catch (error) {
    report(error);
  }
}

/** The fields that say what a structured entry was about (older nodes' logs are pino objects). */
const details = (entry) =>
  ['method', 'url', 'status', 'filename', 'code']
    .filter((key) => entry[key] !== undefined)
    .map((key) => ` ${key}=${entry[key]}`)
    .join('');

/** `GET /logs`: an array of readable lines (older nodes: `{logs: [pino entries]}`). */
async function refreshLog() {
  const body = await apiJson(`/logs?lines=${LOG_LINES}`);
  const entries = Array.isArray(body) ? body : (body?.logs ?? []);
  const levels = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARNING', 50: 'ERROR', 60: 'CRITICAL' };
  const lines = entries.map((entry) =>
    typeof entry === 'string'
      ? entry
      : `${new Date(entry.time).toISOString()} - ${entry.part ?? 'camera_node'} - ${levels[entry.level] ?? entry.level} - ${entry.msg ?? ''}${details(entry)}`,
  );
  const log = document.getElementById('log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = lines.join('\n');
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function capture() {
  const button = document.getElementById('capture');
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  setText('capture-result', 'Capturing…');
  try {
    const result = await apiJson('/capture', { method: 'POST' });
    const info = result.file_info;
    setText('capture-result', `Captured ${info.filename} (${formatBytes(info.size)}) in ${(result.duration_ms / 1000).toFixed(1)} s.`);
  } catch (error) {
    setText('capture-result', `Capture failed: ${error.message}`);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

const quietly = (promise) => promise.catch(report);

document.getElementById('capture').addEventListener('click', capture);
document.getElementById('log-refresh').addEventListener('click', () => quietly(refreshLog()));
liveStream(
  '/events',
  {
    status: showStatus,
    images: () => {
      quietly(refreshImages());
      quietly(refreshLog());
    },
    preview: () => quietly(refreshPreview()),
  },
  (connected) => {
    const live = document.getElementById('live');
    live.textContent = connected ? 'live' : 'reconnecting…';
    live.classList.toggle('off', !connected);
    if (connected) {
      // After a (re)connect: catch up on whatever happened while away.
      quietly(refreshImages());
      quietly(refreshLog());
    }
  },
);
