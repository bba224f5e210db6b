// The chat page: plain JavaScript on the official socket.io client, no build step.
// Every string that came from the network is inserted with textContent, never as HTML.
(function () {
  "use strict";

  const MONTHS = ["January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"];

  function ordinal(day) {
    const tens = day % 100;
    if (tens >= 11 && tens <= 13) return day + "th";
    switch (day % 10) {
      case 1: return day + "st";
      case 2: return day + "nd";
      case 3: return day + "rd";
      default: return day + "th";
    }
  }

  // "November 27th 2026, 1:35:50 am", in the viewer's local time.
  function formatDate(value) {
    const date = new Date(value);
    if (isNaN(date.getTime())) return "";
    const hours = date.getHours();
    const twoDigits = (n) => String(n).padStart(2, "0");
    return MONTHS[date.getMonth()] + " " + ordinal(date.getDate()) + " " + date.getFullYear() + ", " +
      (hours % 12 === 0 ? 12 : hours % 12) + ":" + twoDigits(date.getMinutes()) + ":" +
      twoDigits(date.getSeconds()) + " " + (hours < 12 ? "am" : "pm");
  }
  window.formatChatDate = formatDate;

  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  const input = $("input");
  const statusLabel = $("status");
  const errorBox = $("error");
  const typingLine = $("typing");

  const params = new URLSearchParams(location.search);
  const state = {
    name: params.get("name") || localStorage.getItem("chat.name") || "",
    room: params.get("room") || localStorage.getItem("chat.room") || "general",
    rooms: [],
    seen: new Set(),          // message ids already shown (history + live + recovery overlap)
    pending: [],              // own messages shown before the server's answer: {text, item}
    typingPeople: new Map(),  // name -> timer
  };
  $("name-input").value = state.name;
  // Signed-in deployments (AUTH_JWT_*) hand the page a token; the name then comes from it.
  const token = params.get("token") || "";
  if (token) $("name-form").hidden = true;

  if (typeof io !== "function") {
    setStatus("error", "the socket.io client could not be loaded");
    return;
  }

  const socket = io({
    auth: (cb) => cb(token ? { token, room: state.room } : { name: state.name, room: state.room }),
    transports: params.get("transport") ? [params.get("transport")] : undefined,
  });
  window.chatSocket = socket;

  function setStatus(kind, text) {
    statusLabel.className = "status status-" + kind;
    statusLabel.textContent = text;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => { errorBox.hidden = true; }, 5000);
  }

  function isNearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  }

  function appendMessage(message, options) {
    if (message.id && state.seen.has(message.id)) return null;
    if (message.id) state.seen.add(message.id);
    const stick = isNearBottom();
    const item = document.createElement("li");
    item.className = "message" + (message.name && message.name === state.name ? " mine" : "");
    if (message.id) item.dataset.id = message.id;

    const meta = document.createElement("div");
    meta.className = "meta";
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = message.name || "anonymous";
    const time = document.createElement("time");
    time.className = "date";
    time.dateTime = message.date || "";
    time.textContent = formatDate(message.date);
    meta.append(author, time);

    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(message.text);
    item.append(meta, text);

    if (options && options.pending) {
      const delivery = document.createElement("span");
      delivery.className = "delivery pending";
      delivery.textContent = "sending…";
      meta.append(delivery);
    }
    messages.append(item);
    if (stick || (options && options.pending)) messages.scrollTop = messages.scrollHeight;
    return item;
  }

  function markDelivered(item, reply) {
    const delivery = item.querySelector(".delivery");
    state.pending = state.pending.filter((entry) => entry.item !== item);
    if (reply && reply.ok) {
      item.dataset.id = reply.id;
      state.seen.add(reply.id);
      item.querySelector(".date").textContent = formatDate(reply.date);
      item.querySelector(".date").dateTime = reply.date;
      delivery.className = "delivery delivered";
      delivery.textContent = "✓ delivered";
    } else {
      delivery.className = "delivery failed";
      delivery.textContent = "not sent";
      item.classList.add("failed");
      if (reply && reply.error) showError(reply.error.message);
    }
  }

  function renderRooms() {
    const list = $("rooms");
    list.replaceChildren();
    for (const room of state.rooms) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "#" + room;
      if (room === state.room) button.className = "current";
      button.addEventListener("click", () => joinRoom(room));
      item.append(button);
      list.append(item);
    }
  }

  // A crowded room sends only the first names (sorted) and the total.
  function renderMembers(members, count) {
    const total = typeof count === "number" ? count : members.length;
    const list = $("members");
    list.replaceChildren();
    for (const name of members) {
      const item = document.createElement("li");
      item.textContent = name;
      list.append(item);
    }
    if (total > members.length) {
      const more = document.createElement("li");
      more.className = "more";
      more.textContent = "and " + (total - members.length) + " more";
      list.append(more);
    }
    $("member-count").textContent = "(" + total + ")";
  }

  function renderTyping() {
    const names = [...state.typingPeople.keys()];
    typingLine.textContent = names.length === 0 ? "" :
      names.length === 1 ? names[0] + " is typing…" : names.join(", ") + " are typing…";
  }

  function enterRoom(snapshot) {
    state.room = snapshot.room;
    localStorage.setItem("chat.room", state.room);
    $("room-title").textContent = "#" + state.room;
    if (snapshot.name) {
      state.name = snapshot.name;
      $("name-input").value = state.name;
    }
    if (snapshot.rooms) state.rooms = snapshot.rooms;
    if (!state.rooms.includes(state.room)) state.rooms.push(state.room);
    messages.replaceChildren();
    state.seen.clear();
    state.pending = [];
    for (const message of snapshot.history || []) appendMessage(message);
    messages.scrollTop = messages.scrollHeight;
    renderRooms();
    renderMembers(snapshot.members || [], snapshot.memberCount);
    state.typingPeople.clear();
    renderTyping();
  }

  function joinRoom(room) {
    socket.timeout(5000).emit("join", { room }, (err, reply) => {
      if (err) return showError("the server did not answer, try again");
      if (!reply.ok) return showError(reply.error.message);
      enterRoom(reply);
    });
  }

  // --- server events ---------------------------------------------------------
  socket.on("connect", () => {
    setStatus("online", socket.recovered ? "online (recovered)" : "online");
  });
  socket.on("disconnect", (reason) => {
    setStatus("offline", reason === "io server disconnect" ? "disconnected by the server" : "reconnecting…");
  });
  socket.on("connect_error", (err) => {
    // A refused token is final (the client does not retry a middleware refusal).
    const refused = err && err.data && typeof err.data.code === "string" && err.data.code.startsWith("token_");
    setStatus(refused ? "error" : "offline", refused ? "sign-in refused" : "cannot reach the server, retrying…");
    if (err && err.data && err.data.message) showError(err.data.message);
  });
  socket.io.on("reconnect_attempt", () => setStatus("connecting", "reconnecting…"));

  // Sent once per (non-recovered) connection: who we are and where we are.
  socket.on("welcome", (snapshot) => enterRoom(snapshot));
  socket.on("message", (message) => {
    if (message.room && message.room !== state.room) return;
    // Our own broadcast may arrive before the ack: it is the line already shown as pending.
    const own = message.name === state.name && state.pending.find((entry) => entry.text === message.text);
    if (own) {
      markDelivered(own.item, { ok: true, id: message.id, date: message.date });
      return;
    }
    state.typingPeople.delete(message.name);
    renderTyping();
    appendMessage(message);
  });
  socket.on("presence", (presence) => {
    if (presence.room === state.room) renderMembers(presence.members, presence.count);
  });
  socket.on("rooms", (rooms) => { state.rooms = rooms; renderRooms(); });
  socket.on("typing", (event) => {
    if (event.room !== state.room || event.name === state.name) return;
    clearTimeout(state.typingPeople.get(event.name));
    if (event.typing) {
      state.typingPeople.set(event.name, setTimeout(() => {
        state.typingPeople.delete(event.name);
        renderTyping();
      }, 4000));
    } else {
      state.typingPeople.delete(event.name);
    }
    renderTyping();
  });
  socket.on("chat-error", (error) => showError(error.message));

  // --- user actions ------------------------------------------------------------
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const item = appendMessage({ text, name: state.name, date: new Date().toISOString() }, { pending: true });
    state.pending.push({ text, item });
    input.value = "";
    sendTyping(false);
    socket.timeout(10000).emit("message", text, (err, reply) => {
      markDelivered(item, err ? { ok: false, error: { message: "not acknowledged by the server" } } : reply);
    });
  });

  let typingSent = false;
  let typingTimer = null;
  function sendTyping(typing) {
    if (typing === typingSent) return;
    typingSent = typing;
    socket.volatile.emit("typing", typing);
  }
  input.addEventListener("input", () => {
    sendTyping(input.value.length > 0);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => sendTyping(false), 3000);
  });

  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("name-input").value.trim();
    socket.timeout(5000).emit("set-name", name, (err, reply) => {
      if (err) return showError("the server did not answer, try again");
      if (!reply.ok) return showError(reply.error.message);
      state.name = reply.name;
      localStorage.setItem("chat.name", state.name);
      $("name-input").value = state.name;
    });
  });

  $("room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room-input").value.trim();
    if (room) joinRoom(room);
    $("room-input").value = "";
  });

  const sidebar = $("sidebar");
  $("toggle-sidebar").addEventListener("click", () => {
    const open = sidebar.classList.toggle("open");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  });
})();
