// The chat page: the client code of the App Engine chat it replaces (XHR
// login, goog.appengine.Channel(token).open({...}), XHR POST /post), with
// JSON.parse instead of eval and every value shown with textContent.
#pragma once

namespace {

constexpr const char kPage[] = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clio chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 46rem; padding: 1rem; color: #222; }
  header { display: flex; gap: 1rem; align-items: baseline; }
  #state { font-size: 13px; color: #666; }
  #state[data-state="open"] { color: #187a35; }
  #state[data-state="reconnecting"], #state[data-state="closed"] { color: #a33; }
  main { display: grid; grid-template-columns: 1fr 12rem; gap: 1rem; }
  #output { list-style: none; padding: .5rem; margin: 0; height: 22rem; overflow-y: auto; border: 1px solid #ccc; border-radius: 4px; }
  #output li { margin: .15rem 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  #output .who { color: #666; font-size: 12px; margin-right: .5rem; }
  #output .notice { color: #a33; font-style: italic; }
  #users { list-style: none; padding: 0; margin: 0; font-size: 13px; }
  #users li.me { font-weight: 600; }
  form[name=sendForm] { display: flex; gap: .5rem; margin-top: .75rem; }
  #message { flex: 1; padding: .4rem; }
</style>
</head>
<body>
<header>
  <h1>Clio chat</h1>
  <span id="state" data-state="idle">not joined</span>
</header>
<form name="loginForm"><button id="login" type="submit">Join the chat</button></form>
<main hidden>
  <ol id="output" aria-live="polite"></ol>
  <aside><h2>Here now</h2><ul id="users"></ul></aside>
</main>
<form name="sendForm" hidden>
  <input id="message" autocomplete="off" maxlength="2000" placeholder="Say something">
  <button type="submit">Send</button>
</form>
<script src="/channel.js"></script>
<script>
'use strict';
let token = null, client_id = null, refresh_key = null, socket = null;

document.loginForm.onsubmit = login;
document.sendForm.onsubmit = send;

function login(event) {
  event.preventDefault();
  const http = new XMLHttpRequest();
  http.open('GET', '/login', true);
  http.onreadystatechange = function () {
    if (http.readyState !== 4) return;
    try {
      const json = JSON.parse(http.responseText);
      token = String(json.token);
      client_id = String(json.client_id);
      refresh_key = String(json.refresh_key);
      initialize();
    } catch (err) {
      notice('login failed: ' + http.status);
    }
  };
  http.send();
  return false;
}

async function refreshToken() {
  const body = new URLSearchParams({ client_id, refresh_key });
  const r = await fetch('/token', { method: 'POST', body });
  if (!r.ok) throw new Error('token refresh failed: ' + r.status);
  return (await r.json()).token;
}

function initialize() {
  document.loginForm.hidden = true;
  document.querySelector('main').hidden = false;
  document.sendForm.hidden = false;
  const channel = new goog.appengine.Channel(token, { refreshToken });
  socket = channel.open({
    onopen: function () { document.getElementById('message').focus(); },
    onmessage: receive,
    onerror: function (error) { notice('channel error: ' + (error && error.description || '')); },
    onclose: function () { notice('disconnected; reload to join again'); },
  });
  socket.onstatechange = function (e) {
    const el = document.getElementById('state');
    el.dataset.state = e.state;
    el.textContent = e.state + (e.retryInMs !== undefined ? ' (retry in ' + Math.round(e.retryInMs / 100) / 10 + ' s)' : '');
  };
  socket.ongap = function (lost) {
    notice(lost === null ? 'some messages may have been missed' : lost + ' message(s) missed');
  };
}

function receive(event) {
  let json = null;
  try {
    json = JSON.parse(event.data);
  } catch (err) {
    return;
  }
  if (json.message) {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = String(json.message.client_id).slice(0, 8) + ' ' + String(json.message.datetime).slice(11, 19);
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = String(json.message.value);
    li.append(who, text);
    append(li);
  }
  if (json.users) {
    const ul = document.getElementById('users');
    ul.replaceChildren(...json.users.map(function (u) {
      const li = document.createElement('li');
      li.textContent = String(u.client_id).slice(0, 8);
      li.dataset.clientId = String(u.client_id);
      if (u.client_id === client_id) li.className = 'me';
      return li;
    }));
  }
}

function notice(text) {
  const li = document.createElement('li');
  li.className = 'notice';
  li.textContent = text;
  append(li);
}

function append(li) {
  const out = document.getElementById('output');
  out.append(li);
  while (out.children.length > 500) out.firstElementChild.remove();
  out.scrollTop = out.scrollHeight;
}

function send(event) {
  event.preventDefault();
  const input = document.getElementById('message');
  const value = input.value;
  if (!value) return false;
  const params = 'value=' + encodeURIComponent(value) + '&client_id=' + encodeURIComponent(client_id);
  const http = new XMLHttpRequest();
  http.open('POST', '/post?time=' + Date.now(), true);
  http.setRequestHeader('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
  http.onreadystatechange = function () {
    if (http.readyState === 4 && http.status !== 200) notice('send failed: ' + http.status);
  };
  http.send(params);
  input.value = '';
  return false;
}
</script>
</body>
</html>
)HTML";

}  // namespace
