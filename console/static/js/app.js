// The console's entry point: sign-in, the business field, and which page shows
// (the URL's fragment: #find, #business, #audience, #live).
import { session, metrics, APIError } from './api.js';
import { $, showError, notice } from './ui.js';
import * as find from './find.js';
import * as business from './business.js';
import * as audience from './audience.js';
import * as live from './live.js';

const pages = { find, business, audience, live };
let keysRequired = false;

// probe asks /metrics without a key: 401 means the server takes API keys.
async function needsKey() {
  const saved = session.key();
  session.setKey('');
  try {
    await metrics();
    return false;
  } catch (e) {
    if (e instanceof APIError && e.code === 'unauthenticated') return true;
    throw e;
  } finally {
    session.setKey(saved);
  }
}

function show(name) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'page-' + name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function route() {
  showError(null);
  notice('');
  if (keysRequired && !session.key()) {
    $('nav').hidden = true;
    $('who').hidden = true;
    show('signin');
    $('signin-business').value = session.business();
    $('signin-key').focus();
    return;
  }
  $('nav').hidden = false;
  $('who').hidden = false;
  $('sign-out').hidden = !keysRequired;
  live.start();
  let name = location.hash.slice(1);
  if (!pages[name]) name = 'find';
  show(name);
  pages[name].open();
}

async function signIn(ev) {
  ev.preventDefault();
  showError(null);
  const key = $('signin-key').value.trim();
  session.setKey(key);
  try {
    await metrics(); // any known key reads /metrics: an unknown one is refused
  } catch (e) {
    session.setKey('');
    showError(e);
    return;
  }
  $('signin-key').value = '';
  session.setBusiness($('signin-business').value.trim());
  $('business-id').value = session.business();
  route();
}

async function start() {
  for (const p of Object.values(pages)) p.init();
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => {
    session.setKey('');
    route();
  });
  const b = $('business-id');
  b.value = session.business();
  b.addEventListener('change', () => {
    session.setBusiness(b.value.trim());
    if (location.hash === '#business') route(); // the policy shown is the business's
  });
  window.addEventListener('hashchange', route);
  try {
    keysRequired = await needsKey();
  } catch (e) {
    showError(e);
    return;
  }
  document.body.dataset.ready = keysRequired ? 'keys' : 'open';
  route();
}

start();
