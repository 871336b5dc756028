// The console's shell: log-in, navigation and the hash router. Pages live in pages.js.

import { session, h, replace, api, errorNotice, notice, button } from './ui.js';
import { PAGES } from './pages.js';

const root = document.getElementById('app');
let cleanup = null;

const NAV = [
  ['overview', 'Overview'],
  ['live', 'Live findings'],
  ['incidents', 'Incidents'],
  ['events', 'Events'],
  ['scripts', 'Scripts'],
  ['files', 'Files'],
  ['network', 'Network'],
  ['logs', 'Logs'],
  ['agents', 'Agents'],
  ['settings', 'Settings'],
];

function setToken(token) {
  session.token = token;
  if (token) sessionStorage.setItem('vigil.token', token);
  else sessionStorage.removeItem('vigil.token');
}

function logout(message) {
  if (cleanup) { try { cleanup(); } catch (_) { /* page already gone */ } cleanup = null; }
  setToken('');
  session.me = null;
  showLogin(message);
}

session.onUnauthorized = (message) => logout(`Signed out: ${message}`);

function showLogin(message) {
  document.title = 'Sign in · Vigil console';
  const input = h('input', {
    id: 'login-token', type: 'password', autocomplete: 'current-password', required: true,
    placeholder: 'vgl_… API key or a JWT', spellcheck: 'false',
  });
  const out = h('div', { id: 'login-error' }, message ? notice(message, 'error') : null);
  const submit = h('button', { id: 'login-submit', type: 'submit' }, 'Sign in');
  const form = h('form', {
    class: 'login', on: {
      submit: async (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        submit.disabled = true;
        setToken(token);
        try {
          session.me = await api('/api/v1/me', { noAuthRedirect: true });
          start();
        } catch (e) {
          setToken('');
          replace(out, errorNotice(e.status === 401
            ? { message: `Not accepted: ${e.message}. Use an API key (\`vigil keys create\`, or the key printed at first start) or a JWT from your identity provider.` }
            : e));
        } finally {
          submit.disabled = false;
        }
      },
    },
  },
  h('div', { class: 'brand big' }, h('img', { src: '/console/favicon.svg', alt: '' }), 'Vigil'),
  h('p', { class: 'muted' }, 'Sign in with an API key or a JWT. The credential stays in this tab only.'),
  h('label', { class: 'field' }, h('span', {}, 'Credential'), input),
  submit, out);
  replace(root, h('main', { class: 'login-page' }, form));
  input.focus();
}

function layout() {
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'Sections' },
    h('a', { class: 'brand', href: '#/overview' }, h('img', { src: '/console/favicon.svg', alt: '' }), 'Vigil'),
    NAV.map(([id, label]) => h('a', { href: `#/${id}`, dataset: { page: id } }, label)),
    h('div', { class: 'whoami', id: 'whoami' },
      h('span', {}, session.me.subject), ' ', h('span', { class: 'badge' }, session.me.role),
      session.me.auth_enabled ? button('Sign out', () => logout(), { class: 'link', id: 'logout' }) : null));
  const main = h('main', { id: 'page', tabindex: '-1' });
  const shell = h('div', { class: 'shell' }, nav, main);
  if (!session.me.auth_enabled) {
    main.before(notice('Authentication is off on this server: everyone who reaches it is an admin.', 'warn'));
  }
  replace(root, shell);
  return { nav, main };
}

let shell = null;

async function route() {
  if (!session.me) return;
  const parts = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const page = PAGES[parts[0]] ? parts[0] : 'overview';
  const arg = parts.slice(1).map(decodeURIComponent).join('/');
  if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
  for (const a of shell.nav.querySelectorAll('a[data-page]')) {
    a.classList.toggle('active', a.dataset.page === page);
  }
  const label = (NAV.find(([id]) => id === page) || [page, page])[1];
  document.title = `${label} · Vigil console`;
  replace(shell.main);
  try {
    cleanup = (await PAGES[page](shell.main, arg)) || null;
  } catch (e) {
    replace(shell.main, errorNotice(e));
  }
}

function start() {
  shell = layout();
  if (!location.hash) location.hash = '#/overview';
  route();
}

window.addEventListener('hashchange', route);

(async () => {
  try {
    // A stored credential, or a server with authentication off.
    session.me = await api('/api/v1/me', { noAuthRedirect: true });
    start();
  } catch (e) {
    setToken('');
    showLogin(e.status === 401 || e.status === 403 ? null : e.message);
  }
})();
