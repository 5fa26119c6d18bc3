// Shared by the node page and the fleet page: API calls with the token, the live stream, formatting.
// Plain ES modules, no framework, nothing from outside this server.

const TOKEN_KEY = 'camera-node.token';

/** The token typed once for this tab (sessionStorage: gone when the tab closes, never in a URL). */
export const savedToken = () => sessionStorage.getItem(TOKEN_KEY);

let asking = null;

/** Shows the token dialog (once, however many requests are waiting) and resolves when a token is entered. */
function askToken(refused) {
  asking ??= new Promise((resolve) => {
    const dialog = document.getElementById('token-dialog');
    const input = document.getElementById('token-input');
    document.getElementById('token-error').textContent = refused ? 'That token was refused: try again.' : '';
    input.value = '';
    dialog.addEventListener(
      'submit',
      (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        dialog.close();
        asking = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** fetch with the bearer token; a 401 asks for the token and tries again. */
export async function api(path, init = {}) {
  for (;;) {
    const token = savedToken();
    const headers = new Headers(init.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    await askToken(Boolean(token));
  }
}

/** The JSON body of a successful call; an error response throws its `detail`. */
export async function apiJson(path, init) {
  const response = await api(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body?.detail;
    throw new Error(typeof detail === 'string' ? detail : detail ? JSON.stringify(detail) : `${response.status} ${response.statusText}`);
  }
  return body;
}

/**
 * A server-sent event stream read with fetch, so it carries the bearer header like every other call
 * (EventSource cannot send headers, and a token in the URL would end up in access logs). Reconnects
 * after a break; `onState(true|false)` says whether it is connected.
 */
export function liveStream(path, handlers, onState) {
  let retryMs = 2000;
  let stopped = false;
  const controller = new AbortController();
  const dispatch = (block) => {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trim();
      else if (line.startsWith('retry:')) retryMs = Number(line.slice(6)) || retryMs;
    }
    if (data && handlers[event]) handlers[event](JSON.parse(data));
  };
  const run = async () => {
    while (!stopped) {
      try {
        const response = await api(path, { signal: controller.signal, headers: { accept: 'text/event-stream' } });
        if (!response.ok || !response.body) throw new Error(`${response.status}`);
        onState(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
          }
        }
      } catch {
        // A broken stream or a server away: wait and reconnect below.
      }
      if (stopped) return;
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  };
  run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

/**
 * Downloads through fetch when a token is needed (an `<a download>` cannot send the header), else
 * lets the browser stream the link itself.
 */
export async function download(event, href, filename) {
  if (!savedToken()) return;
  event.preventDefault();
  const response = await api(href);
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement('a'), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** An image fetched with the token into a blob URL (the previous one released); null when there is none. */
export async function fetchImage(path, previous) {
  const response = await api(path, { cache: 'no-cache' });
  if (!response.ok) return null;
  if (previous) URL.revokeObjectURL(previous);
  return URL.createObjectURL(await response.blob());
}

/** A DOM element: `el('td', { class: 'x' }, 'text', child)`; text is set as text, never as markup. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export const setText = (id, text) => {
  document.getElementById(id).textContent = text;
};

export function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '?';
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  if (typeof seconds !== 'number') return '?';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

/** A local date and time for an ISO string or `YYYYMMDD_HHMMSS` (the node's local time). */
export function formatTime(value) {
  if (!value) return '?';
  const compact = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(value);
  const date = compact ? new Date(+compact[1], compact[2] - 1, +compact[3], +compact[4], +compact[5], +compact[6]) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export const formatTemperature = (celsius) => (typeof celsius === 'number' ? `${celsius.toFixed(1)} °C` : 'no sensor');
